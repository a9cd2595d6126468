import type { IngestRequest } from '../../broker/types.js';
import { errorMessage, isTransientDatabaseError } from '../errors.js';
import type { Component } from '../lifecycle.js';
import type { Logger } from '../log.js';
import type { DatabaseOutage } from './outage.js';
import type { SpoolMetrics } from './spool-metrics.js';
import type { Spool, SpooledRecord } from './spool.js';

export interface ReplayTarget {
  /** Commits one payload in raw_ingestions (idempotent) and queues it for processing. */
  storeReplayed(request: IngestRequest): Promise<void>;
  /** Resolves when the processing backlog has room. */
  waitForRoom(): Promise<void>;
}

export interface SpoolReplayerOptions {
  /** How often to look at the database while the spool holds payloads or an outage is on. */
  intervalMs: number;
  /** Records stored per round trip (they share one group commit). */
  batchRecords: number;
  batchBytes: number;
}

/**
 * Moves spooled payloads into PostgreSQL once it answers again (and at start), oldest first.
 * A segment is deleted only after every record in it is committed; a crash before that replays
 * the segment again, which stores nothing twice (raw_ingestions is unique on user and sha256).
 * The outage ends only when the spool is empty, so newer payloads never overtake spooled ones.
 */
export class SpoolReplayer implements Component {
  readonly #spool: Spool;
  readonly #outage: DatabaseOutage;
  readonly #target: ReplayTarget;
  readonly #probe: () => Promise<boolean>;
  readonly #metrics: SpoolMetrics;
  readonly #logger: Logger;
  readonly #options: SpoolReplayerOptions;
  #timer: NodeJS.Timeout | null = null;
  #pass: Promise<void> | null = null;
  #stopped = true;
  #unsubscribe: (() => void) | null = null;

  constructor(deps: {
    spool: Spool;
    outage: DatabaseOutage;
    target: ReplayTarget;
    probe: () => Promise<boolean>;
    metrics: SpoolMetrics;
    logger: Logger;
    options: SpoolReplayerOptions;
  }) {
    this.#spool = deps.spool;
    this.#outage = deps.outage;
    this.#target = deps.target;
    this.#probe = deps.probe;
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
    this.#options = deps.options;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    // Payloads left from an earlier run go first: new ones queue behind them in the spool.
    if (!this.#spool.isEmpty) this.#outage.begin('the spool holds payloads from an earlier run');
    this.#unsubscribe = this.#outage.onChange(() => this.#schedule(this.#options.intervalMs));
    this.#schedule(0);
  }

  /** Stops after the batch under way; what is left stays in the spool for the next start. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#pass;
  }

  /** Runs one pass now (tests) and resolves when it is done. */
  async replayNow(): Promise<void> {
    await this.#pass;
    this.#pass = this.#run();
    await this.#pass;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped || this.#timer || this.#pass) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#pass = this.#run().finally(() => {
        this.#pass = null;
        if (this.#outage.active || !this.#spool.isEmpty) this.#schedule(this.#options.intervalMs);
      });
    }, delayMs);
  }

  async #run(): Promise<void> {
    if (!this.#outage.active && this.#spool.isEmpty) return;
    if (!(await this.#probe().catch(() => false))) return;
    try {
      // Several rounds: payloads may keep arriving in the spool while the outage is still on.
      for (let round = 0; round < 100 && !this.#stopped; round++) {
        await this.#spool.seal();
        const segments = this.#spool.sealedSegments();
        if (segments.length === 0) break;
        for (const segment of segments) {
          if (this.#stopped) return;
          const replayed = await this.#replaySegment(segment);
          if (replayed === null) return;
          await this.#spool.remove(segment);
          this.#logger.info({ seq: segment.seq, records: replayed }, 'spool segment replayed into the database and deleted');
        }
      }
    } catch (err) {
      this.#logger.warn({ error: errorMessage(err) }, 'spool replay interrupted; will try again');
      return;
    }
    // Same tick as the emptiness check: no append can slip in between (accept() decides synchronously).
    if (!this.#stopped && this.#spool.isEmpty) this.#outage.end();
  }

  /** Returns the number of records committed, or null when stopped half-way. */
  async #replaySegment(segment: Parameters<Spool['read']>[0]): Promise<number | null> {
    let batch: SpooledRecord[] = [];
    let bytes = 0;
    let total = 0;
    for await (const record of this.#spool.read(segment)) {
      batch.push(record);
      bytes += record.request.body.length;
      if (batch.length >= this.#options.batchRecords || bytes >= this.#options.batchBytes) {
        if (this.#stopped) return null;
        total += await this.#storeBatch(batch);
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) {
      if (this.#stopped) return null;
      total += await this.#storeBatch(batch);
    }
    return total;
  }

  async #storeBatch(batch: SpooledRecord[]): Promise<number> {
    await this.#target.waitForRoom();
    // Handed over together so they share one commit; queued for processing in spool order.
    const results = await Promise.allSettled(batch.map((r) => this.#target.storeReplayed(r.request)));
    for (const [i, result] of results.entries()) {
      if (result.status === 'fulfilled') continue;
      // Transient: the whole segment is replayed again later (what did commit is not stored twice).
      if (isTransientDatabaseError(result.reason)) throw result.reason;
      const record = batch[i]!;
      this.#logger.error(
        { error: result.reason instanceof Error ? result.reason.message : String(result.reason), user: record.request.identity.userName, receivedAt: record.request.receivedAt },
        'the database refuses a spooled payload for good; kept in spool/quarantine.seg-rejected',
      );
      await this.#spool.quarantine(record.request);
    }
    this.#metrics.replayed.inc(results.filter((r) => r.status === 'fulfilled').length);
    return batch.length;
  }
}
