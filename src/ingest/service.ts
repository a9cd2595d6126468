import { createHash } from 'node:crypto';
import type pg from 'pg';
import type {
  AcceptOutcome,
  IngestRequest,
  IngestSink,
  ProcessingResult,
  Transport,
  TypeCounts,
} from '../../broker/types.js';
import { isTransientDatabaseError } from '../errors.js';
import type { Component } from '../lifecycle.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { parseJsonBody } from './json-body.js';
import type { PayloadProcessor } from './processor.js';
import type { RawIngestionStore, StoredRaw } from './raw-store.js';

export type ProcessedOutcome = ProcessingResult | { ingestionId: string; error: string };

interface Job {
  ingestionId: string;
  userId: string;
  transport: Transport;
  /** The parsed payload when it is still in memory; otherwise it is read back from raw_ingestions. */
  json: unknown;
  hasJson: boolean;
  settle: (outcome: ProcessedOutcome) => void;
  settled: boolean;
  attempt: number;
}

export interface IngestServiceOptions {
  /** After this many failed attempts a payload is marked failed and no longer retried. */
  maxAttempts: number;
  /** First retry delay; doubles each attempt up to 30 s. */
  retryBaseMs: number;
}

/**
 * The one path every transport shares: parse the JSON, store the raw payload durably (the caller
 * acknowledges after that), then turn it into samples in the background, one payload at a time
 * in arrival order (so that the latest export wins).
 */
export class IngestService implements IngestSink, Component {
  readonly #pool: pg.Pool;
  readonly #raw: RawIngestionStore;
  readonly #processor: PayloadProcessor;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #options: IngestServiceOptions;
  readonly #queue: Job[] = [];
  readonly #pendingById = new Map<string, Promise<ProcessedOutcome>>();
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  #working = false;
  #stopped = false;
  #idleWaiters: Array<() => void> = [];

  constructor(deps: {
    pool: pg.Pool;
    raw: RawIngestionStore;
    processor: PayloadProcessor;
    logger: Logger;
    metrics: Metrics;
    options: IngestServiceOptions;
  }) {
    this.#pool = deps.pool;
    this.#raw = deps.raw;
    this.#processor = deps.processor;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    this.#options = deps.options;
  }

  /** Resumes payloads that were stored but not processed (the daemon stopped or crashed). */
  async start(): Promise<void> {
    this.#stopped = false;
    const { rows } = await this.#pool.query<{ id: string; user_id: string; transport: Transport }>(
      `SELECT id, user_id, transport FROM raw_ingestions WHERE status = 'received' ORDER BY id`,
    );
    for (const row of rows) this.#enqueue(String(row.id), String(row.user_id), row.transport, undefined, false);
    if (rows.length > 0) this.#logger.info({ payloads: rows.length }, 'resuming stored payloads that were not processed');
  }

  async accept(request: IngestRequest): Promise<AcceptOutcome> {
    const started = performance.now();
    const transport = request.transport;
    this.#metrics.payloadBytes.inc({ transport }, request.body.length);
    const parsed = parseJsonBody(request.body);
    if (!parsed.ok) {
      this.#metrics.payloads.inc({ transport, outcome: 'invalid_json' });
      this.#logger.warn(
        { transport, user: request.identity.userName, bytes: request.body.length, position: parsed.position, error: parsed.message },
        'payload is not valid JSON; not stored',
      );
      return { kind: 'invalid_json', message: parsed.message, position: parsed.position };
    }
    const sha256 = createHash('sha256').update(request.body).digest();
    let stored: StoredRaw;
    try {
      stored = await this.#raw.store(request, sha256);
    } catch (err) {
      this.#metrics.payloads.inc({ transport, outcome: 'failed' });
      this.#metrics.dbErrors.inc({ kind: isTransientDatabaseError(err) ? 'transient' : 'permanent' });
      this.#logger.error({ transport, user: request.identity.userName, error: errorText(err) }, 'could not store raw payload');
      throw err;
    }
    this.#metrics.ingestDuration.observe({ transport, stage: 'accept' }, (performance.now() - started) / 1000);
    this.#metrics.payloads.inc({ transport, outcome: stored.inserted ? 'stored' : 'duplicate' });
    const processed = this.#processedFor(stored, request, parsed.value);
    return { kind: 'stored', ingestionId: stored.id, duplicatePayload: !stored.inserted, processed };
  }

  #processedFor(stored: StoredRaw, request: IngestRequest, json: unknown): Promise<ProcessedOutcome> {
    if (stored.inserted || stored.status === 'failed') {
      return this.#enqueue(stored.id, request.identity.userId, request.transport, json, true);
    }
    if (stored.status === 'processed') return Promise.resolve(duplicateResult(stored));
    // Same bytes still waiting: share the job already queued (or queue it, after a restart).
    return this.#pendingById.get(stored.id) ?? this.#enqueue(stored.id, request.identity.userId, request.transport, json, true);
  }

  #enqueue(ingestionId: string, userId: string, transport: Transport, json: unknown, hasJson: boolean): Promise<ProcessedOutcome> {
    const existing = this.#pendingById.get(ingestionId);
    if (existing) return existing;
    const promise = new Promise<ProcessedOutcome>((resolve) => {
      const job: Job = { ingestionId, userId, transport, json, hasJson, settled: false, attempt: 0, settle: () => undefined };
      job.settle = (outcome) => {
        if (job.settled) return;
        job.settled = true;
        resolve(outcome);
      };
      this.#queue.push(job);
    });
    this.#pendingById.set(ingestionId, promise);
    this.#metrics.processingQueue.set(this.#queue.length);
    void this.#work();
    return promise;
  }

  async #work(): Promise<void> {
    if (this.#working) return;
    this.#working = true;
    try {
      while (this.#queue.length > 0 && !this.#stopped) {
        const job = this.#queue.shift()!;
        this.#metrics.processingQueue.set(this.#queue.length);
        await this.#run(job);
      }
    } finally {
      this.#working = false;
      if (this.#queue.length === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
    }
  }

  async #run(job: Job): Promise<void> {
    const started = performance.now();
    job.attempt++;
    try {
      const json = job.hasJson ? job.json : await this.#loadPayload(job.ingestionId);
      const { result, rejectionTallies } = await this.#processor.process(job.ingestionId, job.userId, json);
      this.#pendingById.delete(job.ingestionId);
      const seconds = (performance.now() - started) / 1000;
      this.#metrics.ingestDuration.observe({ transport: job.transport, stage: 'process' }, seconds);
      for (const [type, c] of Object.entries(result.counts)) {
        if (c.inserted) this.#metrics.samples.inc({ transport: job.transport, type, result: 'inserted' }, c.inserted);
        if (c.updated) this.#metrics.samples.inc({ transport: job.transport, type, result: 'updated' }, c.updated);
        if (c.unchanged) this.#metrics.samples.inc({ transport: job.transport, type, result: 'unchanged' }, c.unchanged);
      }
      for (const t of rejectionTallies) this.#metrics.rejections.inc({ transport: job.transport, type: t.type, reason: t.reason }, t.count);
      this.#logger.info(
        { ingestionId: job.ingestionId, transport: job.transport, ms: Math.round(seconds * 1000), counts: summarize(result.counts), rejected: rejectionTallies.reduce((n, t) => n + t.count, 0) },
        'payload processed',
      );
      job.settle(result);
    } catch (err) {
      await this.#handleFailure(job, err);
    }
  }

  async #handleFailure(job: Job, err: unknown): Promise<void> {
    const transient = isTransientDatabaseError(err);
    const message = errorText(err);
    this.#metrics.processingFailures.inc();
    this.#metrics.dbErrors.inc({ kind: transient ? 'transient' : 'permanent' });
    const giveUp = !transient && job.attempt >= this.#options.maxAttempts;
    this.#logger.error({ ingestionId: job.ingestionId, attempt: job.attempt, transient, error: message }, giveUp ? 'payload processing failed; marked failed' : 'payload processing failed; will retry');
    await this.#pool
      .query(
        `UPDATE raw_ingestions SET attempts = attempts + 1, error = $2, status = CASE WHEN $3 THEN 'failed' ELSE status END WHERE id = $1`,
        [job.ingestionId, message, giveUp],
      )
      .catch(() => undefined);
    // Callers (the REST answer) learn of the failure at once; the payload itself is safe.
    job.settle({ ingestionId: job.ingestionId, error: message });
    if (giveUp) {
      this.#pendingById.delete(job.ingestionId);
      return;
    }
    const delay = Math.min(30_000, this.#options.retryBaseMs * 2 ** (job.attempt - 1));
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer);
      if (this.#stopped) return;
      this.#queue.push(job);
      void this.#work();
    }, delay);
    this.#retryTimers.add(timer);
  }

  async #loadPayload(ingestionId: string): Promise<unknown> {
    const { rows } = await this.#pool.query<{ payload: Buffer }>('SELECT payload FROM raw_ingestions WHERE id = $1', [ingestionId]);
    if (!rows[0]) throw new Error(`raw ingestion ${ingestionId} does not exist`);
    const parsed = parseJsonBody(rows[0].payload);
    if (!parsed.ok) throw new Error(`stored payload is not valid JSON: ${parsed.message}`);
    return parsed.value;
  }

  /** Waits until the processing queue is empty, or the deadline passes. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.#queue.length === 0 && !this.#working) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  get queueLength(): number {
    return this.#queue.length + (this.#working ? 1 : 0);
  }

  /** Payloads left in the queue stay 'received' in the database and are resumed at next start. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    for (const job of this.#queue.splice(0)) job.settle({ ingestionId: job.ingestionId, error: 'shutting down; the payload is stored and will be processed at the next start' });
    this.#pendingById.clear();
    await this.drain(60_000);
  }
}

function duplicateResult(stored: StoredRaw): ProcessingResult {
  const counts: Record<string, TypeCounts> = {};
  for (const [type, c] of Object.entries(stored.counts ?? {})) {
    counts[type] = { received: c.received, inserted: 0, updated: 0, unchanged: c.received - c.rejected, rejected: c.rejected };
  }
  return {
    ingestionId: stored.id,
    counts,
    rejections: (stored.rejections ?? []) as ProcessingResult['rejections'],
    notStored: (stored.notStored ?? []) as ProcessingResult['notStored'],
  };
}

function summarize(counts: Record<string, TypeCounts>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [type, c] of Object.entries(counts)) out[type] = `+${c.inserted} ~${c.updated} =${c.unchanged} x${c.rejected}`;
  return out;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
