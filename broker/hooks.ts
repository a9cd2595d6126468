import type { AedesOptions, AuthenticateError, Client } from 'aedes';
import type { Logger } from '../src/log.js';
import type { Metrics } from '../src/metrics.js';
import type { AcceptOutcome, AuthFailureReason, Authenticator, Identity, IngestSink, Transport } from './types.js';
import type { InflightTracker } from './inflight.js';
import type { PublishThrottle } from './publish-throttle.js';
import type { TopicMatcher } from './topic-filter.js';

/**
 * The Aedes hooks: authentication, and the ingest path that holds each PUBACK until the sink
 * has stored the payload durably. Kept apart from the broker's lifecycle so they can be
 * exercised without sockets.
 */

export interface ConnectionInfo {
  transport: Transport;
  remoteAddress: string | undefined;
}

/** What we learnt about a client at CONNECT. */
export interface Session {
  identity: Identity;
  /** MQTT user name as sent (free text), for logs only. */
  userName: string | undefined;
  /** Set when the key was revoked or expired while connected: publishes are refused from then on. */
  invalidated: boolean;
}

export interface HookContext {
  logger: Logger;
  metrics: Metrics;
  authenticator: Authenticator;
  sink: IngestSink;
  matchesIngestTopic: TopicMatcher;
  inflight: InflightTracker;
  connectionInfo(client: Client): ConnectionInfo;
  /** True once shutdown has begun: new publishes are then refused without an ack. */
  isDraining(): boolean;
  /** Holds publishes over the key's rate limit (absent: no limit). */
  throttle?: PublishThrottle | undefined;
  /** The connected client registered under this MQTT client id, if any. */
  clientHoldingId(clientId: string): Client | undefined;
}

type Hook<K extends keyof AedesOptions> = NonNullable<AedesOptions[K]>;

export interface BrokerHooks {
  preConnect: Hook<'preConnect'>;
  authenticate: Hook<'authenticate'>;
  authorizePublish: Hook<'authorizePublish'>;
  sessionOf(client: Client): Session | undefined;
  /**
   * Remembers keys that just stopped being valid, for a short while, so that a connection whose
   * check was already under way when the news came is refused too.
   */
  noteInvalidatedKeys(keyIds: readonly string[]): void;
  isKeyInvalidated(keyId: string): boolean;
}

// Longer than any authentication can take (argon2 queue plus the longest throttle delay).
const INVALIDATION_MEMORY_MS = 60_000;

/** CONNACK return codes of MQTT 3.1.1 that we send. */
type ConnackRefusal = 2 | 3 | 4 | 5;

const MAX_LOGGED_USERNAME = 64;

export function connackCodeFor(reason: AuthFailureReason): ConnackRefusal {
  switch (reason) {
    case 'missing':
    case 'malformed':
    case 'unknown_key':
    case 'wrong_secret':
    case 'ambiguous':
      return 4; // bad user name or password
    case 'revoked':
    case 'expired':
    case 'insufficient_scope':
    case 'throttled':
      return 5; // not authorized: the key exists but may not be used, or this client is blocked for now
  }
}

function authError(message: string, returnCode: ConnackRefusal): AuthenticateError {
  return Object.assign(new Error(message), { returnCode });
}

/** The user name is free text; never log it when it might be the key itself. */
function loggableUserName(userName: string | undefined, password: string | undefined): string | undefined {
  if (userName === undefined) return undefined;
  if (password !== undefined && userName === password) return '[same as password]';
  return userName.length > MAX_LOGGED_USERNAME ? `${userName.slice(0, MAX_LOGGED_USERNAME)}…` : userName;
}

export function createBrokerHooks(ctx: HookContext): BrokerHooks {
  const sessions = new WeakMap<Client, Session>();
  const recentlyInvalidated = new Map<string, number>();
  const log = ctx.logger;

  const preConnect: Hook<'preConnect'> = (client, packet, done) => {
    // A Last Will would later be published on the client's behalf through authorizePublish and
    // be stored as if the phone had sent it; nobody can subscribe here, so wills have no use.
    if (packet.will) {
      log.debug({ clientId: packet.clientId, transport: ctx.connectionInfo(client).transport }, 'mqtt: ignoring Last Will');
      delete packet.will;
    }
    done(null, true);
  };

  const authenticate: Hook<'authenticate'> = (client, username, password, done) => {
    const { transport, remoteAddress } = ctx.connectionInfo(client);
    const clientId = client.id;
    const presented = password?.toString('utf8');
    const refuse = (reason: string, code: ConnackRefusal): void => {
      log.warn({ reason, transport, clientId, remoteAddress, returnCode: code }, 'mqtt: connection refused');
      done(authError(`connection refused: ${reason}`, code), false);
    };
    ctx.authenticator.verify(presented, { transport, remoteAddress, clientId, requiredScope: 'ingest' }).then(
      (outcome) => {
        if (!outcome.ok) return refuse(outcome.reason, connackCodeFor(outcome.reason));
        // MQTT lets a new CONNECT with a client id take over the connection holding it. Within one
        // user that is a phone reconnecting; across users it would let anyone with a key cut
        // another user's phone off by reusing its client id.
        const holder = ctx.clientHoldingId(clientId);
        const holderUser = holder && holder !== client ? sessions.get(holder)?.identity.userId : undefined;
        if (holderUser !== undefined && holderUser !== outcome.identity.userId) {
          ctx.metrics.mqttRefused.inc({ transport, reason: 'client_id_taken' });
          return refuse('client_id_taken_by_another_user', 2); // identifier rejected
        }
        if (recentlyInvalidated.has(outcome.identity.keyId)) return refuse('revoked', connackCodeFor('revoked'));
        sessions.set(client, { identity: outcome.identity, userName: loggableUserName(username, presented), invalidated: false });
        done(null, true);
      },
      (err: unknown) => {
        log.warn({ error: errorSummary(err), transport, clientId, remoteAddress }, 'mqtt: authenticator failed');
        refuse('authenticator_unavailable', 3);
      },
    );
  };

  const authorizePublish: Hook<'authorizePublish'> = (client, packet, done) => {
    if (client === null) return done(null); // broker-internal ($SYS heartbeats)
    const { transport, remoteAddress } = ctx.connectionInfo(client);
    const clientId = client.id;
    const topic = packet.topic;

    if (topic.startsWith('$')) {
      refuseTopic(ctx, { transport, remoteAddress, clientId, topic });
      return done(new Error('topics starting with $ are reserved')); // Aedes' default guard, kept
    }
    if (!ctx.matchesIngestTopic(topic)) {
      // Ack without storing: in MQTT 3.1.1 an error only disconnects, and the client would then
      // re-send the same message forever.
      refuseTopic(ctx, { transport, remoteAddress, clientId, topic });
      ctx.metrics.payloads.inc({ transport, outcome: 'topic_refused' });
      return done(null);
    }
    // Never keep retained copies of health data in broker memory.
    packet.retain = false;

    const session = sessions.get(client);
    if (!session) return done(new Error('publish from a client that is not authenticated'));
    // In MQTT 3.1.1 an error here closes the connection: nothing more is stored for this key.
    if (session.invalidated || !session.identity.scopes.includes('ingest')) {
      log.warn({ clientId, transport, remoteAddress, keyId: session.identity.keyId }, 'mqtt: publish with a key that is no longer valid; not stored');
      return done(new Error('the key of this connection is no longer valid'));
    }
    if (ctx.isDraining()) return done(new Error('server is shutting down')); // no ack: re-sent later

    const body = typeof packet.payload === 'string' ? Buffer.from(packet.payload, 'utf8') : packet.payload;
    const receivedAt = new Date();
    const store = (): Promise<AcceptOutcome> => ctx.sink.accept({ identity: session.identity, transport, topic, body, receivedAt, clientId, remoteAddress });
    const ended = ctx.inflight.begin();
    // Called from one reaction, not a chain of then/catch/finally: thousands of publishes a second pass here.
    const answer = (err: Error | null, outcome?: AcceptOutcome): void => {
      try {
        if (err) {
          log.warn({ error: errorSummary(err), clientId, transport, remoteAddress, topic, bytes: body.length }, 'mqtt: payload not stored; withholding the ack so the client re-sends');
        } else {
          log.debug({ clientId, transport, topic, bytes: body.length, outcome: outcome?.kind }, 'mqtt: payload accepted');
        }
        done(err); // with null, the PUBACK leaves now, after the raw payload is committed
      } catch (callbackError) {
        log.error({ error: errorSummary(callbackError), clientId }, 'mqtt: publish callback failed');
      } finally {
        ended();
      }
    };
    // Within its budget (nearly always) the publish goes to the sink in this turn, without a promise in between.
    const held = ctx.throttle?.admit(client, session.identity);
    void (held ? held.then(store) : rejectingOnThrow(store)).then(
      (outcome) => answer(null, outcome),
      (err: unknown) => answer(err instanceof Error ? err : new Error(String(err))),
    );
  };

  return {
    preConnect,
    authenticate,
    authorizePublish,
    sessionOf: (client) => sessions.get(client),
    noteInvalidatedKeys(keyIds) {
      const now = Date.now();
      for (const [id, at] of recentlyInvalidated) if (now - at > INVALIDATION_MEMORY_MS) recentlyInvalidated.delete(id);
      for (const id of keyIds) recentlyInvalidated.set(id, now);
    },
    isKeyInvalidated: (keyId) => {
      const at = recentlyInvalidated.get(keyId);
      return at !== undefined && Date.now() - at <= INVALIDATION_MEMORY_MS;
    },
  };
}

function refuseTopic(
  ctx: HookContext,
  fields: { transport: Transport; remoteAddress: string | undefined; clientId: string; topic: string },
): void {
  ctx.logger.warn(fields, 'mqtt: publish to a topic outside the ingest filter; not stored');
  ctx.metrics.mqttRefused.inc({ transport: fields.transport, reason: 'topic' });
}

/** `start()`'s promise, or a rejected one when it throws before making one. */
function rejectingOnThrow<T>(start: () => Promise<T>): Promise<T> {
  try {
    return start();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** One-line error description for logs: no stack, no payload. */
export function errorSummary(err: unknown): { message: string; code?: string } {
  if (!(err instanceof Error)) return { message: String(err) };
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? { message: err.message, code } : { message: err.message };
}
