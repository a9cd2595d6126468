import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { parseJsonBody } from '../ingest/json-body.js';
import { PayloadProcessor, type ProcessedPayload } from '../ingest/processor.js';
import type { Logger } from '../log.js';
import { PartitionManager } from '../store/partitions.js';
import { readStoredPayload } from '../store/payload-encoding.js';
import { errorMessage } from '../errors.js';

export type RunOutcome = { ok: true; processed: ProcessedPayload } | { ok: false; error: string };

/**
 * Processes payloads already stored in raw_ingestions, in the CLI process, with the daemon's own
 * PayloadProcessor and limits: one payload per transaction, idempotent upserts, so it is safe to
 * run while the daemon works (rows are upserts; the two only wait on each other's row locks).
 */
export class StoredPayloadRunner {
  readonly #pool: pg.Pool;
  readonly #processor: PayloadProcessor;

  constructor(pool: pg.Pool, config: Config, log: Logger) {
    this.#pool = pool;
    // Partitions are ensured by process() for every month a payload touches.
    const partitions = new PartitionManager(pool, log.child({ component: 'partitions' }));
    this.#processor = new PayloadProcessor({ pool, partitions, chunkRows: config.ingest.chunkRows, limits: config.validation });
  }

  /**
   * On success the processor marks the row processed (attempts + 1, counts, rejections) in the
   * same transaction as the rows. On failure the transaction was rolled back; the row is marked
   * failed with the error and attempts + 1, as the daemon does when it gives up.
   */
  async run(ingestionId: string, userId: string): Promise<RunOutcome> {
    try {
      const json = await this.#load(ingestionId);
      return { ok: true, processed: await this.#processor.process(ingestionId, userId, json) };
    } catch (err) {
      const error = errorMessage(err);
      await this.#pool.query(`UPDATE raw_ingestions SET status = 'failed', attempts = attempts + 1, error = $2 WHERE id = $1`, [ingestionId, error]);
      return { ok: false, error };
    }
  }

  async #load(ingestionId: string): Promise<unknown> {
    const parsed = parseJsonBody(await readStoredPayload(this.#pool, ingestionId));
    if (!parsed.ok) throw new Error(`stored payload is not valid JSON: ${parsed.message}`);
    return parsed.value;
  }
}

export interface CountTotals {
  inserted: number;
  updated: number;
  unchanged: number;
  rejected: number;
}

/** Sums the per-type counts of one processed payload; rejections include those outside any table. */
export function totalsOf(processed: ProcessedPayload): CountTotals {
  const totals: CountTotals = { inserted: 0, updated: 0, unchanged: 0, rejected: 0 };
  for (const c of Object.values(processed.result.counts)) {
    totals.inserted += c.inserted;
    totals.updated += c.updated;
    totals.unchanged += c.unchanged;
  }
  totals.rejected = processed.rejectionTallies.reduce((n, t) => n + t.count, 0);
  return totals;
}

export function totalsText(t: CountTotals): string {
  return `inserted ${t.inserted}, updated ${t.updated}, unchanged ${t.unchanged}, rejected ${t.rejected}`;
}
