import type pg from 'pg';
import type { ProcessingResult, TypeCounts } from '../../broker/types.js';
import { parseHaePayload } from '../hae/parse.js';
import type { ValidationLimits } from '../hae/limits.js';
import type { ParsedPayload } from '../hae/types.js';
import { inTransactions } from '../store/pool.js';
import { monthsOf, type PartitionManager } from '../store/partitions.js';
import type { Column, SampleTable } from '../store/sample-tables.js';
import { encodeChunk, MAX_CHUNK_BYTES } from '../store/sample-writer.js';
import { explainWriteError, jobsOf, MAX_REPORTED_REJECTIONS, tallyRejections, type ProcessedPayload } from './processor.js';

/** Payloads from this size on are processed alone (processor.ts), never in a batch. */
export const SMALL_PAYLOAD_BYTES = 1024 * 1024;

/** A batch ends at whichever bound comes first. */
export const MAX_BATCH_PAYLOADS = 500;
export const MAX_BATCH_ROWS = 50_000;
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;

export interface BatchItem {
  ingestionId: string;
  userId: string;
  json: unknown;
  mayContainNul: boolean;
}

/** A row of the batch with the 1-based index of the payload it came from. */
interface BatchRow<R> {
  payload: number;
  row: R;
}

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
      const p = parseHaePayload(item.json, { limits: this.#limits, mayContainNul: item.mayContainNul, releaseInput: true });
      item.json = undefined;
      parsed.push(p);
      for (const { rows } of jobsOf(p)) rowCount += rows.length;
    }
    const taken = items.slice(0, parsed.length);
    const perPayloadJobs = parsed.map(jobsOf);
    const tables = perPayloadJobs[0]!.map((j) => j.table);
    const userIds = taken.map((i) => i.userId);
    const ingestionIds = taken.map((i) => i.ingestionId);
    const order = ingestionIds.map((id) => BigInt(id));

    const rowsByTable = tables.map((table, t) =>
      newestPerKey(
        table,
        perPayloadJobs.flatMap((jobs, p) => jobs[t]!.rows.map((row) => ({ payload: p + 1, row }))),
        userIds,
        order,
      ),
    );
    await Promise.all(
      tables.map((table, t) =>
        rowsByTable[t]!.length === 0 ? undefined : this.#partitions.ensureMonths(table.table, monthsOf(rowsByTable[t]!, (r) => table.time(r.row))),
      ),
    );

    // written[t] maps an ingestion id to the rows of table t that the batch inserted or updated for it.
    const written: Array<Map<string, { inserted: number; updated: number }>> = [];
    const counts: Array<Record<string, TypeCounts>> = taken.map(() => ({}));
    await inTransactions(this.#pool, 1, async ([client]) => {
      for (let t = 0; t < tables.length; t++) {
        const table = tables[t]!;
        const byPayload = new Map<string, { inserted: number; updated: number }>();
        written.push(byPayload);
        if (rowsByTable[t]!.length === 0) continue;
        await writeBatchRows(client!, table, rowsByTable[t]!, userIds, ingestionIds, this.#chunkRows, byPayload).catch((err: unknown) => {
          throw explainWriteError(table.label, err);
        });
      }
      for (let p = 0; p < taken.length; p++) {
        for (let t = 0; t < tables.length; t++) {
          const table = tables[t]!;
          const received = parsed[p]!.received[table.kind];
          const stored = perPayloadJobs[p]![t]!.rows.length;
          if (received === 0 && stored === 0) continue;
          const w = written[t]!.get(ingestionIds[p]!) ?? { inserted: 0, updated: 0 };
          counts[p]![table.label] = { received, inserted: w.inserted, updated: w.updated, unchanged: stored - w.inserted - w.updated, rejected: received - stored };
        }
      }
      await client!.query(
        `UPDATE raw_ingestions AS r SET status = 'processed', processed_at = now(), attempts = r.attempts + 1, counts = u.counts,
           rejected_count = u.rejected_count, rejections = u.rejections, not_stored = u.not_stored, error = NULL
         FROM unnest($1::int8[], $2::jsonb[], $3::int4[], $4::jsonb[], $5::jsonb[]) AS u(id, counts, rejected_count, rejections, not_stored)
         WHERE r.id = u.id`,
        [
          ingestionIds,
          counts.map((c) => JSON.stringify(c)),
          parsed.map((p) => p.rejections.length),
          parsed.map((p) => JSON.stringify(p.rejections.slice(0, MAX_REPORTED_REJECTIONS))),
          parsed.map((p) => JSON.stringify(p.notStored)),
        ],
      );
    });
    return parsed.map((p, i) => ({
      result: { ingestionId: ingestionIds[i]!, counts: counts[i]!, rejections: p.rejections.slice(0, MAX_REPORTED_REJECTIONS), notStored: p.notStored } satisfies ProcessingResult,
      rejectionTallies: tallyRejections(p.rejections),
    }));
  }
}

/**
 * One row per user and natural key: the row of the newest payload, and within one payload the
 * last one (as the single-payload writer keeps it).
 */
function newestPerKey<R>(table: SampleTable<R>, rows: BatchRow<R>[], userIds: readonly string[], order: readonly bigint[]): BatchRow<R>[] {
  const kept = new Map<string, BatchRow<R>>();
  for (const r of rows) {
    const key = `${userIds[r.payload - 1]}\u0000${table.key(r.row)}`;
    const previous = kept.get(key);
    if (!previous || order[r.payload - 1]! >= order[previous.payload - 1]!) kept.set(key, r);
  }
  return kept.size === rows.length ? rows : [...kept.values()];
}

async function writeBatchRows<R>(
  client: pg.ClientBase,
  table: SampleTable<R>,
  rows: BatchRow<R>[],
  userIds: readonly string[],
  ingestionIds: readonly string[],
  chunkRows: number,
  byPayload: Map<string, { inserted: number; updated: number }>,
): Promise<void> {
  const columns = batchColumns(table);
  const sql = batchUpsertSql(table);
  const maxRows = Math.max(1, Math.min(chunkRows, table.maxChunkRows ?? Infinity));
  for (let next = 0; next < rows.length; ) {
    const chunk = encodeChunk(columns, rows, next, maxRows, MAX_CHUNK_BYTES);
    next = chunk.end;
    const { rows: result } = await client.query<{ ingestion_id: string; inserted: string; updated: string }>(sql, [userIds, ingestionIds, ...chunk.arrays]);
    for (const r of result) {
      const id = String(r.ingestion_id);
      const tally = byPayload.get(id) ?? { inserted: 0, updated: 0 };
      tally.inserted += Number(r.inserted);
      tally.updated += Number(r.updated);
      byPayload.set(id, tally);
    }
  }
}

const columnsCache = new WeakMap<object, Column<BatchRow<unknown>>[]>();

/** The table's columns read from a batch row, after the index of the row's payload. */
function batchColumns<R>(table: SampleTable<R>): Column<BatchRow<R>>[] {
  const cached = columnsCache.get(table) as Column<BatchRow<R>>[] | undefined;
  if (cached) return cached;
  const columns: Column<BatchRow<R>>[] = [
    { name: 'payload_index', type: 'int4', value: (r) => r.payload },
    ...table.columns.map((c): Column<BatchRow<R>> => ({ ...c, value: (r) => c.value(r.row) })),
  ];
  columnsCache.set(table, columns as Column<BatchRow<unknown>>[]);
  return columns;
}

const sqlCache = new WeakMap<object, string>();

/**
 * The writer's upsert (sample-writer.ts) with user and ingestion id looked up per row from the
 * payload index ($1 and $2 hold them per payload), counting written rows per ingestion id.
 */
function batchUpsertSql<R>(table: SampleTable<R>): string {
  const cached = sqlCache.get(table);
  if (cached) return cached;
  const names = table.columns.map((c) => c.name);
  const unnestArgs = ['int4', ...table.columns.map((c) => c.type)].map((type, i) => `$${i + 3}::${type}[]`).join(', ');
  const selected = table.columns.map((c) => (c.select ? c.select(`u.${c.name}`) : `u.${c.name}`)).join(', ');
  const valueColumns = names.filter((n) => !table.conflict.includes(n));
  const sql = `WITH written AS (
      INSERT INTO ${table.table} AS t (user_id, ingestion_id, ${names.join(', ')})
      SELECT ($1::int8[])[u.payload_index], ($2::int8[])[u.payload_index], ${selected}
      FROM unnest(${unnestArgs}) AS u(payload_index, ${names.join(', ')})
      ON CONFLICT (${table.conflict.join(', ')}) DO UPDATE
        SET ${[...valueColumns, 'ingestion_id'].map((n) => `${n} = excluded.${n}`).join(', ')}, revision = t.revision + 1
        WHERE t.ingestion_id <= excluded.ingestion_id
          AND (${valueColumns.map((n) => `t.${n}`).join(', ')}) IS DISTINCT FROM (${valueColumns.map((n) => `excluded.${n}`).join(', ')})
      RETURNING t.ingestion_id, t.revision = 1 AS inserted
    )
    SELECT ingestion_id, count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated
    FROM written GROUP BY ingestion_id`;
  sqlCache.set(table, sql);
  return sql;
}
