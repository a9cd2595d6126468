import type pg from 'pg';
import type { ItemRejection, ProcessingResult, TypeCounts } from '../../broker/types.js';
import { parseHaePayload } from '../hae/parse.js';
import type { ParsedPayload } from '../hae/types.js';
import { inTransaction } from '../store/pool.js';
import { monthOf, type PartitionManager } from '../store/partitions.js';
import {
  bloodPressureTable,
  heartRateTable,
  quantityTable,
  sleepTable,
  workoutTable,
  type SampleTable,
} from '../store/sample-tables.js';
import { writeSamples } from '../store/sample-writer.js';

// A payload with a million bad points must not produce a million-entry answer or row.
export const MAX_REPORTED_REJECTIONS = 1_000;

interface Job<R> {
  table: SampleTable<R>;
  rows: readonly R[];
}

function jobsOf(parsed: ParsedPayload): Job<unknown>[] {
  return [
    { table: quantityTable, rows: parsed.quantity },
    { table: heartRateTable, rows: parsed.heartRate },
    { table: bloodPressureTable, rows: parsed.bloodPressure },
    { table: sleepTable, rows: parsed.sleep },
    { table: workoutTable, rows: parsed.workouts },
  ] as Job<unknown>[];
}

export interface RejectionTally {
  type: string;
  reason: string;
  count: number;
}

export interface ProcessedPayload {
  result: ProcessingResult;
  /** Every rejection counted by type and reason (the result lists only the first ones). */
  rejectionTallies: RejectionTally[];
}

/** Turns one stored raw payload into samples, in one transaction with its status update. */
export class PayloadProcessor {
  readonly #pool: pg.Pool;
  readonly #partitions: PartitionManager;
  readonly #chunkRows: number;

  constructor(deps: { pool: pg.Pool; partitions: PartitionManager; chunkRows: number }) {
    this.#pool = deps.pool;
    this.#partitions = deps.partitions;
    this.#chunkRows = deps.chunkRows;
  }

  async process(ingestionId: string, userId: string, json: unknown): Promise<ProcessedPayload> {
    const parsed = parseHaePayload(json);
    const jobs = jobsOf(parsed);
    for (const { table, rows } of jobs) {
      if (rows.length === 0) continue;
      const months = new Set<string>();
      for (const row of rows) months.add(monthOf(table.time(row)));
      await this.#partitions.ensureMonths(table.table, months);
    }
    const counts: Record<string, TypeCounts> = {};
    const rejections: ItemRejection[] = parsed.rejections.slice(0, MAX_REPORTED_REJECTIONS);
    await inTransaction(this.#pool, async (client) => {
      for (const { table, rows } of jobs) {
        const received = parsed.received[table.kind];
        if (received === 0 && rows.length === 0) continue;
        const written = await writeSamples(client, table, rows, { userId, ingestionId, chunkRows: this.#chunkRows });
        counts[table.label] = { received, ...written, rejected: received - rows.length };
      }
      await client.query(
        `UPDATE raw_ingestions SET status = 'processed', processed_at = now(), attempts = attempts + 1, counts = $2,
           rejected_count = $3, rejections = $4, not_stored = $5, error = NULL WHERE id = $1`,
        [
          ingestionId,
          JSON.stringify(counts),
          parsed.rejections.length,
          JSON.stringify(rejections),
          JSON.stringify(parsed.notStored),
        ],
      );
    });
    const byReason = new Map<string, RejectionTally>();
    for (const r of parsed.rejections) {
      const key = `${r.type}\u0000${r.reason}`;
      const tally = byReason.get(key) ?? { type: r.type, reason: r.reason, count: 0 };
      tally.count++;
      byReason.set(key, tally);
    }
    return {
      result: { ingestionId, counts, rejections, notStored: parsed.notStored },
      rejectionTallies: [...byReason.values()],
    };
  }
}
