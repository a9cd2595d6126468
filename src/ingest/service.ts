import type pg from 'pg';
import type {
  AcceptOutcome,
  IngestRequest,
  IngestSink,
  ProcessingResult,
  Transport,
  TypeCounts,
} from '../../broker/types.js';
import { AppError, errorMessage, isTransientDatabaseError } from '../errors.js';
import type { Component } from '../lifecycle.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { MAX_BATCH_BYTES, MAX_BATCH_PAYLOADS, SMALL_PAYLOAD_BYTES, type BatchItem, type BatchProcessor } from './batch-processor.js';
import { collectAfterPoints, collectGarbage } from './collect-garbage.js';
import { mayContainNul, parseJsonBody, parseJsonBodyYielding, parseStoredJson, type JsonParseOutcome } from './json-body.js';
import { DEFAULT_JSON_LIMITS, type JsonLimits } from './json-limits.js';
import { sha256Of } from './payload-digest.js';
import type { InCommitOutcome } from './process-in-commit.js';
import type { PayloadInput, PayloadProcessor, ProcessedPayload } from './processor.js';
import type { DatabaseOutage } from './outage.js';
import type { ParsedJson, RawIngestionStore, StoredRaw } from './raw-store.js';
import type { SpoolMetrics } from './spool-metrics.js';
import { SpoolFullError, type Spool } from './spool.js';
import { readStoredPayload, readStoredPayloads } from '../store/payload-encoding.js';

/** From this size on, memory is reclaimed at once after each stage of processing (collect-garbage.ts). */
const LARGE_PAYLOAD_BYTES = 32 * 1024 * 1024;
/**
 * From this size on, the raw bytes go to the database while the JSON is parsed (and the INSERT
 * commits once the JSON is known valid) instead of after: for a 100 MB export the server's
 * second or two of compressing and writing overlaps the parse.
 */
const STORE_WHILE_PARSING_BYTES = 8 * 1024 * 1024;
/**
 * From this size on, the metrics' rows are written while the rest of the payload is parsed
 * (processor.ts): a 100 MB export's second of parsing overlaps its writes.
 */
const WRITE_WHILE_PARSING_BYTES = 8 * 1024 * 1024;
/** Four full processing batches: enough to keep batches full, small enough to keep RSS flat. */
export const DEFAULT_MAX_QUEUED_PAYLOADS = 4 * MAX_BATCH_PAYLOADS;
/** While the backlog holds less than this, small payloads wait as parsed trees (~10× the bytes). */
const SMALL_TREES_QUEUED_BYTES = 2 * 1024 * 1024;
/** About 50–60 MB of parsed tree: one full collection (~0.1–0.2 s) per this many points read. */
const RELEASED_POINTS_PER_COLLECTION = 250_000;

export type ProcessedOutcome = ProcessingResult | { ingestionId: string; error: string };

interface Job {
  ingestionId: string;
  userId: string;
  transport: Transport;
  /** The parsed payload when it is still in memory; otherwise it is read back from raw_ingestions. */
  json: unknown;
  hasJson: boolean;
  /**
   * A small payload's raw bytes (its own compact copy), parsed when its turn comes: a parsed tree
   * takes several times the bytes, and the backlog is bounded by raw bytes.
   */
  body: Buffer | undefined;
  /** False when the JSON text has no `\u0000` escape (the parser then skips its U+0000 search). */
  mayContainNul: boolean;
  /** Raw payload size, counted in the backlog until the job is done for good. */
  bytes: number;
  /** Counted in the backlog's payloads until the job is done for good. */
  queued: boolean;
  settle: (outcome: ProcessedOutcome) => void;
  settled: boolean;
  attempt: number;
  /** The database refused it before (not merely unreachable): it is retried alone, never in a batch. */
  refused: boolean;
}

export interface IngestServiceOptions {
  /** After this many failed attempts a payload is marked failed and no longer retried. */
  maxAttempts: number;
  /** First retry delay; doubles each attempt up to 30 s. */
  retryBaseMs: number;
  /**
   * Backlog bound: parsed JSON is kept in memory only while the queued payload bytes stay under
   * it, and above it accept() waits before storing (the acknowledgement is held, so clients slow down).
   */
  maxQueuedBytes: number;
  /**
   * Backlog bound in payloads (default DEFAULT_MAX_QUEUED_PAYLOADS): above it accept() waits in
   * the same way. Each queued payload also holds a few kB of bookkeeping that maxQueuedBytes does
   * not count, and a machine that acknowledges faster than it processes would otherwise grow the
   * backlog (and RSS) until that far larger bound.
   */
  maxQueuedPayloads?: number;
  /** Nesting depth and string length a new payload may have; over them it is refused as a whole. */
  jsonLimits?: JsonLimits;
  /**
   * Large payloads whose raw bytes may be on their way to the database while their JSON is
   * parsed, at once (each holds a connection meanwhile); others are parsed first. Default 0.
   */
  maxStoresWhileParsing?: number;
}

/** What a stored payload may keep in memory until it is processed. */
interface Held {
  /** The parsed JSON. */
  tree?: { value: unknown };
  /** False when the JSON text has no `\u0000` escape. */
  mayContainNul?: boolean;
  /** Keep a small payload's bytes (parsed again at its turn) instead of its tree: batched payloads wait so. */
  keepSmallBody?: boolean;
}

/** Where payloads go while the database is unreachable. Absent in tests that do not need it. */
export interface SpoolPath {
  spool: Spool;
  outage: DatabaseOutage;
  metrics: SpoolMetrics;
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
  readonly #spool: SpoolPath | null;
  readonly #batches: BatchProcessor | null;
  readonly #collectGarbage: () => void;
  #working = false;
  #stopped = false;
  #idleWaiters: Array<() => void> = [];
  #queuedBytes = 0;
  #queuedPayloads = 0;
  #roomWaiters: Array<() => void> = [];
  #unsubscribeOutage: (() => void) | null = null;
  #storesWhileParsing = 0;

  constructor(deps: {
    pool: pg.Pool;
    raw: RawIngestionStore;
    processor: PayloadProcessor;
    logger: Logger;
    metrics: Metrics;
    options: IngestServiceOptions;
    spool?: SpoolPath;
    /** Processes queued small payloads together; without it every payload is processed alone. */
    batches?: BatchProcessor;
    /** The full collection run around large payloads; collect-garbage.ts unless a test watches it. */
    collectGarbage?: () => void;
  }) {
    this.#pool = deps.pool;
    this.#raw = deps.raw;
    this.#processor = deps.processor;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    this.#options = deps.options;
    this.#spool = deps.spool ?? null;
    this.#batches = deps.batches ?? null;
    this.#collectGarbage = deps.collectGarbage ?? collectGarbage;
  }

  /** Resumes payloads that were stored but not processed (the daemon stopped or crashed). */
  async start(): Promise<void> {
    this.#stopped = false;
    // Waiters for room give way to the spool as soon as an outage begins: processing cannot drain then.
    this.#unsubscribeOutage = this.#spool?.outage.onChange(() => this.#wakeRoomWaiters()) ?? null;
    const { rows } = await this.#pool.query<{ id: string; user_id: string; transport: Transport; size_bytes: number; attempts: number }>(
      `SELECT id, user_id, transport, size_bytes, attempts FROM raw_ingestions WHERE status = 'received' ORDER BY id`,
    );
    // Attempts carry over from earlier runs, so a payload that fails at every start still ends failed.
    for (const row of rows) {
      this.#enqueue({ ingestionId: String(row.id), userId: String(row.user_id), transport: row.transport, bytes: Number(row.size_bytes), attempts: Number(row.attempts) }, {});
    }
    if (rows.length > 0) this.#logger.info({ payloads: rows.length }, 'resuming stored payloads that were not processed');
  }

  async accept(request: IngestRequest): Promise<AcceptOutcome> {
    const started = performance.now();
    const transport = request.transport;
    this.#metrics.payloadBytes.inc({ transport }, request.body.length);
    // Transports hand over large bodies with dead copies behind them (gzip or WebSocket pieces):
    // reclaimed while the heap is still small, before the parsed tree joins the body.
    if (request.body.length >= LARGE_PAYLOAD_BYTES) this.#collectGarbage();
    const limits = this.#options.jsonLimits ?? DEFAULT_JSON_LIMITS;
    const storeWhileParsing = request.body.length >= STORE_WHILE_PARSING_BYTES && this.#storesWhileParsing < (this.#options.maxStoresWhileParsing ?? 0);
    const early = storeWhileParsing ? await this.#storeWhileParsing(request, limits) : null;
    const parsed = early ? early.parsed : parseJsonBody(request.body, limits);
    if (!parsed.ok) {
      this.#metrics.payloads.inc({ transport, outcome: parsed.code === 'SS_INVALID_JSON' ? 'invalid_json' : 'json_limit' });
      this.#logger.warn(
        { transport, user: request.identity.userName, bytes: request.body.length, position: parsed.position, code: parsed.code, error: parsed.message },
        parsed.code === 'SS_INVALID_JSON' ? 'payload is not valid JSON; not stored' : 'payload is over the JSON limits; not stored',
      );
      return { kind: 'invalid_json', message: parsed.message, position: parsed.position, code: parsed.code };
    }
    // From here on the tree is reached through `json` only: the group commit may take it (raw-store.ts).
    const json: ParsedJson = { value: parsed.value, mayContainNul: mayContainNul(request.body) };
    let stored: InCommitOutcome;
    if (early?.stored) {
      stored = early.stored;
    } else if (early?.failure) {
      return this.#storeFailed(request, early.failure.error, started);
    } else {
      // Backpressure: hold this payload (and its acknowledgement) while the backlog is over the
      // limit (a payload stored while parsed has waited already).
      // Checked here first: an await of #waitForRoom costs every payload a few promise turns.
      if (!early && this.#backlogFull()) await this.#waitForRoom(true);
      if (this.#spool?.outage.active) return this.#toSpool(request, started);
      try {
        stored = await this.#raw.store(request, sha256Of(request.body), json);
      } catch (err) {
        return this.#storeFailed(request, err, started);
      }
    }
    this.#metrics.ingestDuration.observe({ transport, stage: 'accept' }, (performance.now() - started) / 1000);
    this.#metrics.payloads.inc({ transport, outcome: stored.inserted ? 'stored' : 'duplicate' });
    if (stored.processed) {
      // Processed by the statement that stored it (process-in-commit.ts); a second copy in the same group shares that.
      if (stored.inserted) this.#recordProcessed(stored.id, transport, stored.processed, stored.processingSeconds ?? 0);
      return { kind: 'stored', ingestionId: stored.id, duplicatePayload: !stored.inserted, processed: Promise.resolve(stored.processed.result) };
    }
    const tree = json.value === undefined ? undefined : { value: json.value };
    const processed = this.#processedFor(stored, request, { tree, mayContainNul: json.mayContainNul, keepSmallBody: this.#batches !== null });
    return { kind: 'stored', ingestionId: stored.id, duplicatePayload: !stored.inserted, processed };
  }

  /**
   * A large body is sent to the database while its JSON is parsed: the server receives,
   * compresses and writes it while this process parses, and the transaction commits only if the
   * JSON is valid and within the JSON limits (raw-store.ts); the limits are checked by the walk
   * that cuts the body into pieces, before JSON.parse sees anything past them. While the
   * database is unreachable, the body is only parsed (and then spooled by the caller).
   */
  async #storeWhileParsing(request: IngestRequest, limits: JsonLimits): Promise<{ parsed: JsonParseOutcome; stored?: StoredRaw; failure?: { error: unknown } }> {
    // Counted before the first await: the caller's check and this count are one step.
    this.#storesWhileParsing++;
    try {
      await this.#waitForRoom(true);
      if (this.#spool?.outage.active) return { parsed: await parseJsonBodyYielding(request.body, limits) };
      const sha256 = sha256Of(request.body);
      let settle!: (valid: boolean) => void;
      const valid = new Promise<boolean>((resolve) => (settle = resolve));
      const storing = this.#raw.storeWhileChecked(request, sha256, valid).then(
        (stored) => ({ stored: stored ?? undefined }),
        (error: unknown) => ({ failure: { error } }),
      );
      let parsed: JsonParseOutcome | undefined;
      try {
        parsed = await parseJsonBodyYielding(request.body, limits);
      } finally {
        settle(parsed?.ok === true);
      }
      return { parsed, ...(await storing) };
    } finally {
      this.#storesWhileParsing--;
    }
  }

  /** A payload the database would not store: spooled when the database is unreachable, else refused. */
  #storeFailed(request: IngestRequest, err: unknown, started: number): Promise<AcceptOutcome> {
    const transport = request.transport;
    if (this.#spool && isTransientDatabaseError(err)) {
      this.#metrics.dbErrors.inc({ kind: 'transient' });
      this.#spool.outage.begin(errorMessage(err));
      return this.#toSpool(request, started);
    }
    this.#metrics.payloads.inc({ transport, outcome: 'failed' });
    this.#metrics.dbErrors.inc({ kind: isTransientDatabaseError(err) ? 'transient' : 'permanent' });
    this.#logger.error({ transport, user: request.identity.userName, error: errorMessage(err) }, 'could not store raw payload');
    return Promise.reject(err);
  }

  /** Appends to the spool (fsynced) so that the caller may acknowledge while the database is away. */
  async #toSpool(request: IngestRequest, started: number): Promise<AcceptOutcome> {
    const spool = this.#spool!;
    const transport = request.transport;
    try {
      await spool.spool.append(request);
    } catch (err) {
      this.#metrics.payloads.inc({ transport, outcome: 'failed' });
      if (err instanceof SpoolFullError) {
        // Logged once per change of state by the spool itself; counted here per payload.
        spool.metrics.refusedFull.inc();
        throw new AppError('SS_DB_UNAVAILABLE', 'The database is unavailable and the local spool is full; retry later', undefined, { cause: err });
      }
      this.#logger.error({ transport, user: request.identity.userName, error: errorMessage(err) }, 'could not spool payload while the database is unavailable');
      throw new AppError('SS_DB_UNAVAILABLE', 'The database is unavailable and the payload could not be spooled; retry later', undefined, { cause: err });
    }
    spool.metrics.spooled.inc();
    this.#metrics.payloads.inc({ transport, outcome: 'spooled' });
    this.#metrics.ingestDuration.observe({ transport, stage: 'accept' }, (performance.now() - started) / 1000);
    return { kind: 'spooled' };
  }

  /**
   * Stores a payload replayed from the spool and queues it for processing. Rejects when the
   * database refuses it (the replayer tries again later). Re-storing bytes already committed only
   * bumps receive_count (unique on user and sha256), so a replay after a crash stores nothing twice.
   */
  async storeReplayed(request: IngestRequest): Promise<void> {
    const sha256 = sha256Of(request.body);
    const stored = await this.#raw.store(request, sha256);
    this.#metrics.payloads.inc({ transport: request.transport, outcome: stored.inserted ? 'stored' : 'duplicate' });
    // The JSON is read back from raw_ingestions when its turn comes: a replay can be large.
    void this.#processedFor(stored, request);
  }

  /**
   * Resolves once the processing backlog is at or under maxQueuedBytes. With `yieldToOutage`,
   * also as soon as the database is unreachable (the payload then goes to the spool instead).
   */
  async waitForRoom(): Promise<void> {
    await this.#waitForRoom(false);
  }

  async #waitForRoom(yieldToOutage: boolean): Promise<void> {
    while (this.#backlogFull() && !(yieldToOutage && this.#spool?.outage.active)) {
      if (this.#stopped) throw new AppError('SS_SHUTTING_DOWN');
      await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    }
  }

  #backlogFull(): boolean {
    return this.#queuedBytes > this.#options.maxQueuedBytes || this.#queuedPayloads >= (this.#options.maxQueuedPayloads ?? DEFAULT_MAX_QUEUED_PAYLOADS);
  }

  #wakeRoomWaiters(): void {
    for (const wake of this.#roomWaiters.splice(0)) wake();
  }

  #release(job: Job): void {
    this.#queuedBytes -= job.bytes;
    if (job.queued) this.#queuedPayloads--;
    job.queued = false;
    job.bytes = 0;
    job.body = undefined;
    this.#metrics.processingQueueBytes.set(this.#queuedBytes);
    if (!this.#backlogFull()) this.#wakeRoomWaiters();
  }

  #processedFor(stored: StoredRaw, request: IngestRequest, held: Held = {}): Promise<ProcessedOutcome> {
    const bytes = request.body.length;
    const enqueue = (): Promise<ProcessedOutcome> => {
      // A small payload waits as its tree while the backlog is short (no second parse), and as its
      // bytes behind a longer one: a tree takes several times the bytes, and the backlog is
      // bounded by raw bytes.
      const asBytes = held.keepSmallBody && bytes < SMALL_PAYLOAD_BYTES && this.#queuedBytes + bytes > SMALL_TREES_QUEUED_BYTES;
      const body = asBytes ? compactCopy(request.body) : undefined;
      const mayContainNul = held.mayContainNul ?? true;
      const payload = body ? { body, mayContainNul } : held.tree ? { tree: held.tree, mayContainNul } : {};
      return this.#enqueue({ ingestionId: stored.id, userId: request.identity.userId, transport: request.transport, bytes }, payload);
    };
    if (stored.inserted || stored.status === 'failed') return enqueue();
    if (stored.status === 'processed') return Promise.resolve(duplicateResult(stored));
    // Same bytes still waiting: share the job already queued (or queue it, after a restart).
    return this.#pendingById.get(stored.id) ?? enqueue();
  }

  /** Queues a stored payload; without a tree or bytes in `held`, it is read back from raw_ingestions when its turn comes. */
  #enqueue(
    row: { ingestionId: string; userId: string; transport: Transport; bytes: number; attempts?: number },
    held: { tree?: { value: unknown }; body?: Buffer; mayContainNul?: boolean },
  ): Promise<ProcessedOutcome> {
    const existing = this.#pendingById.get(row.ingestionId);
    if (existing) return existing;
    // Over the budget the parsed JSON is dropped and read back from raw_ingestions when its turn comes.
    const keepJson = held.tree !== undefined && this.#queuedBytes + row.bytes <= this.#options.maxQueuedBytes;
    this.#queuedBytes += row.bytes;
    this.#queuedPayloads++;
    this.#metrics.processingQueueBytes.set(this.#queuedBytes);
    const job: Job = {
      ingestionId: row.ingestionId,
      userId: row.userId,
      transport: row.transport,
      json: keepJson ? held.tree!.value : undefined,
      hasJson: keepJson,
      body: held.body,
      mayContainNul: held.mayContainNul ?? true,
      bytes: row.bytes,
      queued: true,
      settled: false,
      attempt: row.attempts ?? 0,
      refused: false,
      settle: () => undefined,
    };
    this.#queue.push(job);
    return this.#track(job);
  }

  /**
   * The job's outcome. Built apart from #enqueue on purpose: a closure created there would keep
   * #enqueue's `json` argument (the whole parsed payload) alive for as long as the job lives.
   */
  #track(job: Job): Promise<ProcessedOutcome> {
    const promise = new Promise<ProcessedOutcome>((resolve) => {
      job.settle = (outcome) => {
        if (job.settled) return;
        job.settled = true;
        resolve(outcome);
      };
    });
    this.#pendingById.set(job.ingestionId, promise);
    this.#metrics.processingQueue.set(this.#queue.length);
    // Not inline, and not before the transport's own callbacks queued by the same turn: the
    // acknowledgement leaves (and MQTT lets go of the packet) before parsing blocks the loop.
    setTimeout(() => void this.#work(), 0);
    return promise;
  }

  async #work(): Promise<void> {
    if (this.#working) return;
    this.#working = true;
    try {
      while (this.#queue.length > 0 && !this.#stopped) {
        const batch = this.#takeBatch();
        this.#metrics.processingQueue.set(this.#queue.length);
        if (batch.length > 1) await this.#runBatch(batch);
        else await this.#run(batch[0]!);
      }
    } finally {
      this.#working = false;
      if (this.#queue.length === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
    }
  }

  async #run(job: Job): Promise<void> {
    const started = performance.now();
    job.attempt++;
    // Read before #finish releases the job's bytes from the backlog (which zeroes them).
    const large = job.bytes >= LARGE_PAYLOAD_BYTES;
    try {
      const input: PayloadInput = job.hasJson
        ? { json: job.json, mayContainNul: job.mayContainNul }
        : job.body
          ? parseStoredJson(job.body)
          : await this.#loadPayload(job.ingestionId);
      // The job no longer pins the parsed tree: it can be collected once its rows are built. A
      // retry parses the kept bytes again or reads the payload back from raw_ingestions.
      job.json = undefined;
      job.hasJson = false;
      // A large payload's bytes and string are garbage by now, and its tree once its rows exist.
      input.writeWhileParsing = job.bytes >= WRITE_WHILE_PARSING_BYTES;
      if (large) {
        this.#collectGarbage();
        // The tree shrinks while its rows are built: reclaimed on the way, not only at the end,
        // so the tree and all the rows are never resident at once (a 100 MB payload peaked there).
        input.onInputReleased = collectAfterPoints(RELEASED_POINTS_PER_COLLECTION, this.#collectGarbage);
        input.onRowsBuilt = this.#collectGarbage;
      }
      const processed = await this.#processor.processPayload(job.ingestionId, job.userId, input);
      this.#metrics.batchPayloads.observe({}, 1);
      this.#finish(job, processed, (performance.now() - started) / 1000);
    } catch (err) {
      await this.#handleFailure(job, err);
    } finally {
      // The last collection above runs while the rows are still live. Once they are written, the
      // heap holds the whole payload's garbage (~160 MB for 100 MB), which V8 collects only when
      // the old generation has grown by about as much again: under steady small payloads, not
      // for minutes, and the process stays that much larger. Collected on the next turn, when
      // this frame no longer refers to the tree or the rows.
      if (large) setImmediate(this.#collectGarbage);
    }
  }

  #finish(job: Job, processed: ProcessedPayload, seconds: number): void {
    this.#pendingById.delete(job.ingestionId);
    this.#release(job);
    job.settle(processed.result);
    this.#recordProcessed(job.ingestionId, job.transport, processed, seconds);
  }

  /** Metrics and log line of a processed payload. */
  #recordProcessed(ingestionId: string, transport: Transport, { result, rejectionTallies, writtenAfterParseBecause }: ProcessedPayload, seconds: number): void {
    this.#metrics.ingestDuration.observe({ transport, stage: 'process' }, seconds);
    for (const [type, c] of Object.entries(result.counts)) {
      if (c.inserted) this.#metrics.samples.inc({ transport, type, result: 'inserted' }, c.inserted);
      if (c.updated) this.#metrics.samples.inc({ transport, type, result: 'updated' }, c.updated);
      if (c.unchanged) this.#metrics.samples.inc({ transport, type, result: 'unchanged' }, c.unchanged);
    }
    for (const t of rejectionTallies) this.#metrics.rejections.inc({ transport, type: t.type, reason: t.reason }, t.count);
    // The log line's counts are built only when it is written: thousands of payloads a second pass here.
    if (!this.#logger.isLevelEnabled('info')) return;
    this.#logger.info(
      {
        ingestionId,
        transport,
        ms: Math.round(seconds * 1000),
        counts: summarize(result.counts),
        rejected: rejectionTallies.reduce((n, t) => n + t.count, 0),
        ...(writtenAfterParseBecause !== undefined && { writtenWhileParsed: writtenAfterParseBecause === null, writtenAfterParseBecause: writtenAfterParseBecause ?? undefined }),
      },
      'payload processed',
    );
  }

  /**
   * The next job, and when it is small, the small jobs queued right behind it (up to the batch
   * bounds). A job the database refused before is processed alone, so it cannot fail a batch again.
   */
  #takeBatch(): Job[] {
    const first = this.#queue.shift()!;
    const batch = [first];
    if (!this.#batches || !batchable(first)) return batch;
    let bytes = first.bytes;
    while (batch.length < MAX_BATCH_PAYLOADS && this.#queue.length > 0) {
      const next = this.#queue[0]!;
      if (!batchable(next) || bytes + next.bytes > MAX_BATCH_BYTES) break;
      batch.push(this.#queue.shift()!);
      bytes += next.bytes;
    }
    return batch;
  }

  /**
   * Several small payloads in one transaction (batch-processor.ts). A permanent error (a row the
   * database refuses) sends each of them through the single-payload path, so only the payload at
   * fault fails; a transient one is handled as for single payloads (retry, outage → spool).
   */
  async #runBatch(jobs: Job[]): Promise<void> {
    const started = performance.now();
    let processed: ProcessedPayload[];
    try {
      const items = await this.#batchItems(jobs);
      processed = await this.#batches!.processBatch(items);
    } catch (err) {
      if (isTransientDatabaseError(err)) {
        for (const job of jobs) {
          job.attempt++;
          await this.#handleFailure(job, err);
        }
        return;
      }
      this.#metrics.batchFallbacks.inc();
      this.#logger.warn({ payloads: jobs.length, error: errorMessage(err) }, 'batch of payloads failed; processing them one by one');
      for (const job of jobs) {
        if (this.#stopped) job.settle({ ingestionId: job.ingestionId, error: 'shutting down; the payload is stored and will be processed at the next start' });
        else await this.#run(job);
      }
      return;
    }
    // Payloads past the batch's row bound go back to the front of the queue, in order.
    this.#queue.unshift(...jobs.slice(processed.length));
    this.#metrics.batchPayloads.observe({}, processed.length);
    const seconds = (performance.now() - started) / 1000;
    for (let i = 0; i < processed.length; i++) this.#finish(jobs[i]!, processed[i]!, seconds);
  }

  async #batchItems(jobs: Job[]): Promise<BatchItem[]> {
    // Payloads resumed at start (or after an outage) have neither tree nor bytes in memory.
    const missing = jobs.filter((j) => !j.hasJson && !j.body).map((j) => j.ingestionId);
    const loaded = missing.length > 0 ? await readStoredPayloads(this.#pool, missing) : new Map<string, Buffer>();
    return jobs.map((job) => {
      const base = { ingestionId: job.ingestionId, userId: job.userId };
      if (job.hasJson) {
        const item = { ...base, json: job.json, mayContainNul: job.mayContainNul };
        job.json = undefined;
        job.hasJson = false;
        return item;
      }
      const body = job.body ?? loaded.get(job.ingestionId);
      if (!body) throw new Error(`raw ingestion ${job.ingestionId} does not exist`);
      // Parsed by the batch processor, which lets I/O in between payloads.
      return { ...base, body };
    });
  }

  async #handleFailure(job: Job, err: unknown): Promise<void> {
    const transient = isTransientDatabaseError(err);
    const message = errorMessage(err);
    this.#metrics.processingFailures.inc();
    this.#metrics.dbErrors.inc({ kind: transient ? 'transient' : 'permanent' });
    const giveUp = !transient && job.attempt >= this.#options.maxAttempts;
    if (!transient) job.refused = true;
    // New payloads go to the spool rather than wait for a backlog that cannot drain now.
    if (transient) this.#spool?.outage.begin(message);
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
      this.#release(job);
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

  async #loadPayload(ingestionId: string): Promise<{ json: unknown; mayContainNul: boolean }> {
    return parseStoredJson(await readStoredPayload(this.#pool, ingestionId));
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
    this.#unsubscribeOutage?.();
    this.#unsubscribeOutage = null;
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    for (const job of this.#queue.splice(0)) job.settle({ ingestionId: job.ingestionId, error: 'shutting down; the payload is stored and will be processed at the next start' });
    this.#pendingById.clear();
    // Jobs waiting for a retry are dropped too; all of them stay 'received' and resume at next start.
    this.#wakeRoomWaiters(); // they see #stopped and refuse: no acknowledgement, the client re-sends
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

/** Small, and not refused before (such a payload is retried alone). */
function batchable(job: Job): boolean {
  return job.bytes < SMALL_PAYLOAD_BYTES && !job.refused;
}

/**
 * The body in a buffer of its own: a transport's buffer can be a view into a larger one (a whole
 * socket read), which would stay alive as long as the queued job.
 */
function compactCopy(body: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(body.length);
  body.copy(copy);
  return copy;
}

function summarize(counts: Record<string, TypeCounts>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [type, c] of Object.entries(counts)) out[type] = `+${c.inserted} ~${c.updated} =${c.unchanged} x${c.rejected}`;
  return out;
}
