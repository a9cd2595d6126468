/**
 * What the broker needs from the rest of the daemon. The broker knows nothing of PostgreSQL:
 * it is given an authenticator and an ingest sink.
 */

export type Transport = 'mqtt-ws' | 'mqtt-tcp' | 'http' | 'file';

/** What a key may be used for: sending data, reading it back (future read API), managing keys. */
export type Scope = 'ingest' | 'read' | 'admin';

/** Who a verified API key belongs to. */
export interface Identity {
  userId: string;
  userName: string;
  keyId: string;
  keyPrefix: string;
  scopes: readonly Scope[];
}

export interface AuthContext {
  transport: Transport;
  remoteAddress?: string | undefined;
  clientId?: string | undefined;
  /** The scope the caller is about to use; a valid key without it fails with insufficient_scope. */
  requiredScope?: Scope | undefined;
  /**
   * The request carried two different keys (HTTP only): refused as 'ambiguous' whatever they are,
   * and counted as a failed attempt, since a guesser could otherwise try two keys per request.
   */
  ambiguousKey?: boolean | undefined;
}

export type AuthFailureReason =
  | 'missing'
  | 'malformed'
  | 'unknown_key'
  | 'wrong_secret'
  | 'revoked'
  | 'expired'
  | 'insufficient_scope'
  /** Two different keys in one request. */
  | 'ambiguous'
  /** Too many failed attempts from this address or for this key: refused without checking the key. */
  | 'throttled';

export type AuthOutcome =
  | { ok: true; identity: Identity }
  | { ok: false; reason: AuthFailureReason; /** Set with 'throttled': when to try again. */ retryAfterSeconds?: number };

export interface Authenticator {
  /** Verifies a presented API key. Rejects only on infrastructure failure (database down). */
  verify(presentedKey: string | undefined, context: AuthContext): Promise<AuthOutcome>;
  /**
   * Calls `listener` with the ids of keys that stopped being valid (revoked, expired, deleted),
   * so that holders of long-lived connections can drop them. Returns the unsubscribe function.
   */
  onKeysInvalidated?(listener: (keyIds: readonly string[]) => void): () => void;
}

export interface IngestRequest {
  identity: Identity;
  transport: Transport;
  /** MQTT topic; null for HTTP and file import. */
  topic: string | null;
  body: Buffer;
  receivedAt: Date;
  clientId?: string | undefined;
  remoteAddress?: string | undefined;
}

/** Counts for one data type in one payload. */
export interface TypeCounts {
  received: number;
  inserted: number;
  updated: number;
  unchanged: number;
  rejected: number;
}

export interface ItemRejection {
  /** Data type, e.g. "metrics", "workouts". */
  type: string;
  /** Position in the payload, e.g. "data.metrics[3].data[17]". */
  path: string;
  /** Metric name or workout name where there is one. */
  name?: string | undefined;
  field?: string | undefined;
  reason: string;
  message: string;
}

export interface ProcessingResult {
  ingestionId: string;
  /** Counts per data type (e.g. "quantity", "heart_rate", "workouts"). */
  counts: Record<string, TypeCounts>;
  rejections: ItemRejection[];
  /** Top-level keys or data types that were kept in the raw payload but not stored in tables. */
  notStored: Array<{ type: string; items: number; reason: string }>;
}

export type AcceptOutcome =
  | {
      kind: 'stored';
      ingestionId: string;
      /** True when these exact bytes were already stored for this user; nothing is processed again. */
      duplicatePayload: boolean;
      /** Settles once the samples are written (or the payload is marked failed). Never rejects. */
      processed: Promise<ProcessingResult | { ingestionId: string; error: string }>;
    }
  | {
      kind: 'invalid_json';
      message: string;
      position: number | null;
      /** SS_INVALID_JSON, or the limit the payload crossed (SS_JSON_TOO_DEEP, SS_JSON_STRING_TOO_LONG). */
      code?: 'SS_INVALID_JSON' | 'SS_JSON_TOO_DEEP' | 'SS_JSON_STRING_TOO_LONG';
    }
  /** The database is unreachable: the payload is written and fsynced to the local spool, and replayed into the database later. */
  | { kind: 'spooled' };

export interface IngestSink {
  /**
   * Stores the raw payload durably, then resolves. The caller acknowledges only after this
   * resolves. Rejects only on a transient failure (the caller withholds the acknowledgement).
   */
  accept(request: IngestRequest): Promise<AcceptOutcome>;
}

/** A per-key publish budget, shared with the HTTP per-key limit. */
export interface PublishDecision {
  allowed: boolean;
  retryAfterMs: number;
}

export interface PublishRateLimiter {
  /**
   * Takes one publish from the key's budget; when it is spent, how long until one is free. At once
   * when the limiter needs no I/O (in this process's memory).
   */
  take(keyId: string): PublishDecision | Promise<PublishDecision>;
  /** A publish had to wait for its budget, or a client was disconnected for staying over it. */
  report(event: 'delayed' | 'disconnected'): void;
}

export interface PublishThrottleOptions {
  /** A client whose publishes have been held back this long without a break is disconnected. */
  maxWaitMs: number;
  /** A client with more publishes than this held back at once is disconnected. */
  maxWaiting: number;
}
