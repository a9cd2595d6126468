import pg from 'pg';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Component } from '../lifecycle.js';
import { errorMessage } from '../errors.js';

export interface DatabaseOptions {
  connectionString: string;
  poolMax: number;
  applicationName?: string;
  /**
   * Opens one more connection, for the group commit that stores small payloads with their
   * samples: its lock waits end after this long (lock_timeout), so a sample table held by
   * someone else delays acknowledgements by at most that much (the group is then stored without
   * its samples, by the shared pool).
   */
  groupCommitLockTimeoutMs?: number;
}

/** The shared pg pool. Idle-client errors (server restart) are logged instead of crashing. */
export class Database implements Component {
  #pool: pg.Pool | null = null;
  #groupCommitPool: pg.Pool | null = null;
  readonly #options: DatabaseOptions;
  readonly #logger: Logger;
  readonly #metrics: Metrics | undefined;
  #lastCheck: { at: number; ok: boolean; detail?: string } = { at: 0, ok: false };

  constructor(options: DatabaseOptions, logger: Logger, metrics?: Metrics) {
    this.#options = options;
    this.#logger = logger;
    this.#metrics = metrics;
  }

  get pool(): pg.Pool {
    if (!this.#pool) throw new Error('Database used before start()');
    return this.#pool;
  }

  /** The group commit's own connection (see DatabaseOptions.groupCommitLockTimeoutMs). */
  get groupCommitPool(): pg.Pool {
    if (!this.#groupCommitPool) throw new Error('Database used before start(), or without groupCommitLockTimeoutMs');
    return this.#groupCommitPool;
  }

  async start(): Promise<void> {
    if (this.#pool) return;
    const pool = this.#newPool(this.#options.poolMax, this.#options.applicationName ?? 'self-sensored');
    this.#pool = pool;
    this.#metrics?.observePool(() => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }));
    const client = await pool.connect();
    client.release();
    const lockTimeoutMs = this.#options.groupCommitLockTimeoutMs;
    if (lockTimeoutMs !== undefined) {
      this.#groupCommitPool = this.#newPool(1, `${this.#options.applicationName ?? 'self-sensored'} group commit`, `-c lock_timeout=${Math.round(lockTimeoutMs)}`);
    }
  }

  #newPool(max: number, applicationName: string, options?: string): pg.Pool {
    const pool = new pg.Pool({
      connectionString: this.#options.connectionString,
      max,
      application_name: applicationName,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      ...(options !== undefined && { options }),
    });
    pool.on('error', (err) => this.#logger.warn({ error: err.message }, 'idle database connection failed'));
    // The pool listens for errors only on idle clients. A connection lost while checked out
    // (mid-transaction) would emit 'error' with no listener and end the process; the query in
    // flight rejects anyway and takes the transient-error path (retry, spool).
    pool.on('connect', (client) => {
      client.on('error', (err) => this.#logger.warn({ error: err.message }, 'database connection lost while in use'));
    });
    return pool;
  }

  /** Whether the database answers; cached briefly so probes cannot flood it. */
  async check(maxAgeMs = 1_000): Promise<{ ok: boolean; detail?: string }> {
    if (!this.#pool) return { ok: false, detail: 'not started' };
    if (Date.now() - this.#lastCheck.at < maxAgeMs) return this.#lastCheck;
    let result: { ok: boolean; detail?: string };
    try {
      await withTimeout(this.#pool.query('SELECT 1'), 2_000);
      result = { ok: true };
    } catch (err) {
      result = { ok: false, detail: errorMessage(err) };
    }
    this.#lastCheck = { at: Date.now(), ...result };
    return result;
  }

  async stop(): Promise<void> {
    const pools = [this.#pool, this.#groupCommitPool];
    this.#pool = null;
    this.#groupCommitPool = null;
    await Promise.all(pools.map((pool) => pool?.end()));
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs `fn` with `count` clients, each inside its own BEGIN. They commit only after `fn` succeeds,
 * the first client last (callers put the statement that marks the work done on it); any error
 * before rolls every one of them back.
 */
export async function inTransactions<T>(pool: pg.Pool, count: number, fn: (clients: pg.PoolClient[]) => Promise<T>): Promise<T> {
  const clients: pg.PoolClient[] = [];
  try {
    for (let i = 0; i < count; i++) {
      clients.push(await pool.connect());
      await clients[i]!.query('BEGIN');
    }
    const result = await fn(clients);
    for (let i = clients.length - 1; i >= 0; i--) await clients[i]!.query('COMMIT');
    return result;
  } catch (err) {
    await Promise.all(clients.map((c) => c.query('ROLLBACK').catch(() => undefined)));
    throw err;
  } finally {
    for (const c of clients) c.release();
  }
}
