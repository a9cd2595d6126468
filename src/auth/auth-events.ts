import type pg from 'pg';
import type { Transport } from '../../broker/types.js';
import { errorMessage, isTransientDatabaseError } from '../errors.js';
import type { Component } from '../lifecycle.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

export type AuthEventOutcome = 'success' | 'failure' | 'throttled';

/** One authentication attempt. Holds no secret: keyPrefix is the public lookup value. */
export interface AuthEvent {
  at: Date;
  outcome: AuthEventOutcome;
  reason: string | null;
  transport: Transport;
  remoteAddress: string | null;
  clientId: string | null;
  keyPrefix: string | null;
  keyId: string | null;
  userId: string | null;
}

/** Where the authenticator reports attempts; must never block or throw. */
export interface AuthEventSink {
  record(event: AuthEvent): void;
}

export interface AuthEventLogOptions {
  retentionDays: number;
  flushIntervalMs: number;
  /** Rows per INSERT; a queue this long is flushed at once rather than at the next tick. */
  batchRows: number;
  /** Events held in memory at most; more are dropped (and counted) while the database lags. */
  maxQueued: number;
  pruneIntervalMs: number;
}

export const DEFAULT_AUTH_EVENT_LOG_OPTIONS: Omit<AuthEventLogOptions, 'retentionDays'> = {
  flushIntervalMs: 1_000,
  batchRows: 500,
  maxQueued: 10_000,
  pruneIntervalMs: 60 * 60_000,
};

const MAX_CLIENT_ID_CHARS = 256;
const PRUNE_BATCH_ROWS = 10_000;

/**
 * The auth_events table, written in batches from a bounded in-memory queue so that recording an
 * attempt costs an array push. A flood larger than the queue drops events (counted in
 * self_sensored_auth_events_dropped_total, logged once per flood) rather than slowing anyone down.
 */
export class AuthEventLog implements AuthEventSink, Component {
  readonly #pool: pg.Pool;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #options: AuthEventLogOptions;
  #queue: AuthEvent[] = [];
  #flushTimer: NodeJS.Timeout | null = null;
  #pruneTimer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  #overflowing = false;
  #failing = false;

  constructor(deps: { pool: pg.Pool; logger: Logger; metrics: Metrics; options: AuthEventLogOptions }) {
    this.#pool = deps.pool;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    this.#options = deps.options;
  }

  get queued(): number {
    return this.#queue.length;
  }

  record(event: AuthEvent): void {
    if (this.#queue.length >= this.#options.maxQueued) {
      this.#metrics.authEventsDropped.inc();
      if (!this.#overflowing) {
        this.#overflowing = true;
        this.#logger.warn({ maxQueued: this.#options.maxQueued }, 'auth events arrive faster than they are written; dropping some (counted in self_sensored_auth_events_dropped_total)');
      }
      return;
    }
    this.#queue.push({ ...event, clientId: storableClientId(event.clientId) });
    if (this.#queue.length >= this.#options.batchRows && this.#flushTimer) void this.flush();
  }

  async start(): Promise<void> {
    if (this.#flushTimer) return;
    this.#flushTimer = setInterval(() => void this.flush(), this.#options.flushIntervalMs);
    this.#flushTimer.unref();
    this.#pruneTimer = setInterval(() => void this.#pruneQuietly(), this.#options.pruneIntervalMs);
    this.#pruneTimer.unref();
    void this.#pruneQuietly();
  }

  async stop(): Promise<void> {
    if (this.#flushTimer) clearInterval(this.#flushTimer);
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#flushTimer = null;
    this.#pruneTimer = null;
    await this.flush();
  }

  /** Writes what is queued. Concurrent calls share one write. */
  flush(): Promise<void> {
    this.#flushing ??= this.#flushAll().finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }

  async #flushAll(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#options.batchRows);
      try {
        await this.#insert(batch);
        if (this.#failing) this.#logger.info('auth events are written again');
        this.#failing = false;
      } catch (err) {
        if (!isTransientDatabaseError(err)) {
          // Retrying a batch the database refuses would block the log for good: drop it, counted.
          this.#metrics.authEventsDropped.inc(batch.length);
          this.#logger.error({ error: errorMessage(err), events: batch.length }, 'auth events refused by the database; dropped');
          continue;
        }
        // Keep them for the next tick as far as the queue allows; the rest is dropped and counted.
        const room = Math.max(0, this.#options.maxQueued - this.#queue.length);
        this.#queue.unshift(...batch.slice(0, room));
        if (batch.length > room) this.#metrics.authEventsDropped.inc(batch.length - room);
        if (!this.#failing) this.#logger.warn({ error: errorMessage(err) }, 'writing auth events failed; retrying');
        this.#failing = true;
        return;
      }
    }
    if (this.#overflowing && this.#queue.length < this.#options.maxQueued / 2) this.#overflowing = false;
  }

  async #insert(batch: AuthEvent[]): Promise<void> {
    const column = <K extends keyof AuthEvent>(k: K) => batch.map((e) => e[k]);
    await this.#pool.query(
      `INSERT INTO auth_events (at, outcome, reason, transport, remote_address, client_id, key_prefix, key_id, user_id)
       SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::uuid[], $9::bigint[])`,
      [
        column('at'),
        column('outcome'),
        column('reason'),
        column('transport'),
        column('remoteAddress'),
        column('clientId'),
        column('keyPrefix'),
        column('keyId'),
        column('userId'),
      ],
    );
  }

  /** Deletes events older than the retention, in batches so that no lock is held for long. */
  async prune(): Promise<number> {
    let deleted = 0;
    for (;;) {
      const { rowCount } = await this.#pool.query(
        `DELETE FROM auth_events WHERE id IN (
           SELECT id FROM auth_events WHERE at < now() - make_interval(days => $1) ORDER BY at LIMIT $2)`,
        [this.#options.retentionDays, PRUNE_BATCH_ROWS],
      );
      deleted += rowCount ?? 0;
      if ((rowCount ?? 0) < PRUNE_BATCH_ROWS) return deleted;
    }
  }

  async #pruneQuietly(): Promise<void> {
    try {
      const deleted = await this.prune();
      if (deleted > 0) this.#logger.info({ deleted, retentionDays: this.#options.retentionDays }, 'old auth events pruned');
    } catch (err) {
      this.#logger.warn({ error: errorMessage(err) }, 'pruning auth events failed; retrying at the next interval');
    }
  }
}

/**
 * A client id as PostgreSQL can store it: the peer chooses it freely, and one U+0000 (which text
 * columns refuse) would otherwise fail the whole batch. Cut to the column's 256 characters.
 */
function storableClientId(clientId: string | null): string | null {
  if (clientId === null) return null;
  const clean = clientId.replaceAll('\u0000', '\ufffd');
  return clean.length > MAX_CLIENT_ID_CHARS ? clean.slice(0, MAX_CLIENT_ID_CHARS) : clean;
}
