import { setImmediate } from 'node:timers/promises';
import type pg from 'pg';
import { parseHaePayload } from '../hae/parse.js';
import type { ValidationLimits } from '../hae/limits.js';
import type { ParsedPayload } from '../hae/types.js';
import { inTransactions } from '../store/pool.js';
import type { PartitionManager } from '../store/partitions.js';
import { parseStoredJson } from './json-body.js';
import { rowCountOf, type ProcessedPayload } from './processor.js';
import { markProcessed, processedResults, SampleBatch } from './sample-batch.js';

/** Payloads from this size on are processed alone (processor.ts), never in a batch. */
export const SMALL_PAYLOAD_BYTES = 1024 * 1024;

/** A batch ends at whichever bound comes first. */
export const MAX_BATCH_PAYLOADS = 500;
export const MAX_BATCH_ROWS = 50_000;
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;

/** A payload's parsed JSON, or its stored bytes (parsed when its turn in the batch comes). */
export type BatchItem = { ingestionId: string; userId: string } & ({ json: unknown; mayContainNul: boolean } | { body: Buffer });

/**
 * Parsing a batch takes milliseconds: every this many payloads, pending I/O (acknowledgements
 * released by a commit, new publishes) goes first, so it does not wait for the whole batch.
 */
const PAYLOADS_BETWEEN_IO = 32;

/**
 * Turns many small stored payloads into samples in ONE transaction: the rows of every payload
 * are written per table with the chunked unnest upsert, each row carrying its own payload's
 * user and ingestion id, and every payload's raw_ingestions row is marked processed by one
 * statement. One commit (one fsync) instead of one per payload.
 *
 * Two rows of the batch with the same natural key collapse to the one of the newest payload
 * (highest ingestion id), as if the payloads had been processed one after another: the latest
 * export wins. The superseded row counts as `unchanged` for its payload, since its value is not
 * what the table holds. Inserted and updated rows are counted for the payload whose ingestion
 * id the written row carries.
 *
 * Any error rolls the whole batch back; the caller then processes the payloads one by one, so a
 * payload the database refuses fails alone.
 */
export class BatchProcessor {
  readonly #pool: pg.Pool;
  readonly #partitions: PartitionManager;
  readonly #chunkRows: number;
  readonly #limits: ValidationLimits;

  constructor(deps: { pool: pg.Pool; partitions: PartitionManager; chunkRows: number; limits: ValidationLimits }) {
    this.#pool = deps.pool;
    this.#partitions = deps.partitions;
    this.#chunkRows = deps.chunkRows;
    this.#limits = deps.limits;
  }

  /**
   * Processes a prefix of `items` (in arrival order) and returns one result per payload of that
   * prefix: the batch stops after the payload that brings it to MAX_BATCH_ROWS rows. The caller
   * queues the rest again. Each item's `json` is released once parsed.
   */
  async processBatch(items: BatchItem[]): Promise<ProcessedPayload[]> {
    const parsed: ParsedPayload[] = [];
    let rowCount = 0;
    for (const item of items) {
      if (parsed.length > 0 && rowCount >= MAX_BATCH_ROWS) break;
      if (parsed.length > 0 && parsed.length % PAYLOADS_BETWEEN_IO === 0) await setImmediate();
      const input = 'body' in item ? parseStoredJson(item.body) : item;
      const p = parseHaePayload(input.json, { limits: this.#limits, mayContainNul: input.mayContainNul, releaseInput: true });
      if ('json' in item) item.json = undefined;
      parsed.push(p);
      rowCount += rowCountOf(p);
    }
    const taken = items.slice(0, parsed.length);
    const ingestionIds = taken.map((i) => i.ingestionId);
    // Ingestion ids grow with arrival: the newest payload wins a key the batch holds twice.
    const batch = new SampleBatch(parsed, taken.map((i) => i.userId), ingestionIds.map(Number));
    await batch.ensurePartitions(this.#partitions);
    const counts = await inTransactions(this.#pool, 1, async ([client]) => {
      const counts = await batch.write(client!, ingestionIds, this.#chunkRows);
      await markProcessed(client!, parsed, ingestionIds, counts);
      return counts;
    });
    return processedResults(parsed, ingestionIds, counts);
  }
}
