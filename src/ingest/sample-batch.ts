import type pg from 'pg';
import type { ProcessingResult, TypeCounts } from '../../broker/types.js';
import type { ParsedPayload } from '../hae/types.js';
import { monthsOf, type PartitionManager } from '../store/partitions.js';
import { NaturalKeyIndex, type Column, type SampleTable } from '../store/sample-tables.js';
import { BinaryArrayWriter, expectedArrayBytes } from '../store/binary-array.js';
import { encodeChunk, MAX_CHUNK_BYTES } from '../store/sample-writer.js';
import { explainWriteError, reportedRejections, rowsFor, tablesInWriteOrder, tallyRejections, type ProcessedPayload } from './processor.js';

/** A row of the batch with the 1-based index of the payload it came from. */
interface BatchRow<R> {
  payload: number;
  row: R;
}

/**
 * The rows of several parsed payloads, per table, ready to be written in one transaction: each
 * row carries its own payload's user and ingestion id.
 *
 * Two rows with the same natural key collapse to the one of the latest payload (the highest
 * `order`: arrival order), as if the payloads had been processed one after another. The
 * superseded row counts as `unchanged` for its payload, since its value is not what the table
 * holds. Inserted and updated rows are counted for the payload whose ingestion id the written
 * row carries.
 */
export class SampleBatch {
  readonly #parsed: readonly ParsedPayload[];
  readonly #userIds: readonly string[];
  /** The tables of the data types some payload of the batch has items of, in write order. */
  readonly #tables: SampleTable<unknown>[];
  readonly #rowsByTable: BatchRow<unknown>[][];
  readonly #displacing = new Set<number>();

  /** `order[i]` ranks payload i among the others: the later export wins a shared key. */
  constructor(parsed: readonly ParsedPayload[], userIds: readonly string[], order: readonly number[]) {
    this.#parsed = parsed;
    this.#userIds = userIds;
    // A group commit builds one batch per few milliseconds, and most data types have no items in it.
    this.#tables = tablesInWriteOrder.filter((table) => parsed.some((p) => p.received[table.kind] !== 0));
    this.#rowsByTable = this.#tables.map((table) => {
      const rows: BatchRow<unknown>[] = [];
      for (let p = 0; p < parsed.length; p++) for (const row of rowsFor(parsed[p]!, table)) rows.push({ payload: p + 1, row });
      return rows.length === 0 ? rows : newestPerKey(table, rows, userIds, order, this.#displacing);
    });
  }

  /** Whether a row of payload `p` (0-based) took the place of another payload's row with the same key. */
  displacesOthers(p: number): boolean {
    return this.#displacing.has(p + 1);
  }

  /** The tables that receive rows, each with its rows' columns as binary arrays (`payload_index` first). */
  encodedTables(maxBytes: number): Array<{ table: SampleTable<unknown>; arrays: Buffer[] }> | null {
    const out: Array<{ table: SampleTable<unknown>; arrays: Buffer[] }> = [];
    for (let t = 0; t < this.#tables.length; t++) {
      const table = this.#tables[t]!;
      const rows = this.#rowsByTable[t]!;
      if (rows.length === 0) continue;
      if (rows.length > (table.maxChunkRows ?? Infinity)) return null;
      // The payload index apart, and the table's own columns read from the rows themselves: one call per value, not two.
      const index = new BinaryArrayWriter('int4', expectedArrayBytes('int4', rows.length));
      for (const r of rows) index.push(r.payload);
      const chunk = encodeChunk(table.columns, rows.map((r) => r.row), 0, rows.length, maxBytes - index.bytes);
      if (chunk.end < rows.length) return null;
      out.push({ table, arrays: [index.finish(), ...chunk.arrays] });
    }
    return out;
  }

  /**
   * Per payload, what the counts of write() are made of before the database answers: for each
   * data type with items, [received, rows the payload holds for its table].
   */
  countBases(): Array<Record<string, [number, number]>> {
    return this.#parsed.map((parsed) => {
      const base: Record<string, [number, number]> = {};
      for (const table of this.#tables) {
        const received = parsed.received[table.kind];
        const stored = rowsFor(parsed, table).length;
        if (received !== 0 || stored !== 0) base[table.label] = [received, stored];
      }
      return base;
    });
  }

  /**
   * Per payload, its counts when no key of the batch is stored yet: each row kept in the batch is
   * inserted, and a row displaced by a later payload's row with the same key is unchanged.
   */
  countsIfAllNew(): Array<Record<string, TypeCounts>> {
    // Built table by table, in write order, as countBases and typeCountsOf would: one count per payload and table, no Map per payload.
    const counts = this.#parsed.map((): Record<string, TypeCounts> => ({}));
    const kept = new Int32Array(this.#parsed.length);
    this.#tables.forEach((table, t) => {
      kept.fill(0);
      for (const r of this.#rowsByTable[t]!) kept[r.payload - 1]!++;
      for (let p = 0; p < this.#parsed.length; p++) {
        const parsed = this.#parsed[p]!;
        const received = parsed.received[table.kind];
        const rows = rowsFor(parsed, table).length;
        if (received === 0 && rows === 0) continue;
        counts[p]![table.label] = typeCounts(received, rows, kept[p]!, 0);
      }
    });
    return counts;
  }

  get rowCount(): number {
    return this.#rowsByTable.reduce((n, rows) => n + rows.length, 0);
  }

  /** Partitions for every month of the batch, made ready in short transactions of their own. */
  async ensurePartitions(partitions: PartitionManager): Promise<void> {
    await Promise.all(
      this.#tables.map((table, t) => {
        const rows = this.#rowsByTable[t]!;
        return rows.length === 0 ? undefined : partitions.ensureMonths(table.table, monthsOf(rows, (r) => table.time(r.row)));
      }),
    );
  }

  /** Whether the partition of every month of the batch is known to exist (no DDL needed to write it). */
  partitionsReady(partitions: PartitionManager): boolean {
    return this.#tables.every((table, t) => {
      const rows = this.#rowsByTable[t]!;
      return rows.length === 0 || partitions.hasMonths(table.table, monthsOf(rows, (r) => table.time(r.row)));
    });
  }

  /** Upserts every table's rows on `client` (inside the caller's transaction); the counts per payload. */
  async write(client: pg.ClientBase, ingestionIds: readonly string[], chunkRows: number): Promise<Array<Record<string, TypeCounts>>> {
    const written = new Map<string, Map<string, { inserted: number; updated: number }>>();
    for (let t = 0; t < this.#tables.length; t++) {
      const table = this.#tables[t]!;
      const byPayload = new Map<string, { inserted: number; updated: number }>();
      written.set(table.label, byPayload);
      if (this.#rowsByTable[t]!.length === 0) continue;
      await writeBatchRows(client, table, this.#rowsByTable[t]!, this.#userIds, ingestionIds, chunkRows, byPayload).catch((err: unknown) => {
        throw explainWriteError(table.label, err);
      });
    }
    return this.countBases().map((base, p) => typeCountsOf(base, (label) => written.get(label)?.get(ingestionIds[p]!)));
  }
}

/**
 * A payload's counts per data type from its count base (countBases) and what the database wrote
 * for it per data type (inserted and updated rows; none when absent). Unchanged rows are those of
 * the payload not written; rejected items those that gave no row.
 */
export function typeCountsOf(
  base: Record<string, [number, number]>,
  written: (label: string) => { inserted: number; updated: number } | undefined,
): Record<string, TypeCounts> {
  const counts: Record<string, TypeCounts> = {};
  for (const [label, [received, rows]] of Object.entries(base)) {
    const w = written(label);
    counts[label] = typeCounts(received, rows, w?.inserted ?? 0, w?.updated ?? 0);
  }
  return counts;
}

/** One data type's counts: of `received` items, `rows` gave rows, of which `inserted` and `updated` were written. */
function typeCounts(received: number, rows: number, inserted: number, updated: number): TypeCounts {
  return { received, inserted, updated, unchanged: rows - inserted - updated, rejected: received - rows };
}

/**
 * Marks every payload of the batch processed with its own counts, rejections and not-stored items:
 * one prepared statement (its text never changes), each column a binary array, so neither side
 * formats or parses array literals with escaped JSON inside.
 */
const MARK_PROCESSED = {
  name: 'ss_batch_mark_processed',
  text: `UPDATE raw_ingestions AS r SET status = 'processed', processed_at = now(), attempts = r.attempts + 1, counts = u.counts,
           rejected_count = u.rejected_count, rejections = u.rejections, not_stored = u.not_stored, error = NULL
         FROM unnest($1::int8[], $2::jsonb[], $3::int4[], $4::jsonb[], $5::jsonb[]) AS u(id, counts, rejected_count, rejections, not_stored)
         WHERE r.id = u.id`,
};

export async function markProcessed(
  client: pg.ClientBase,
  parsed: readonly ParsedPayload[],
  ingestionIds: readonly string[],
  counts: ReadonlyArray<Record<string, TypeCounts>>,
): Promise<void> {
  const columns = [
    new BinaryArrayWriter('int8', 12 * parsed.length),
    new BinaryArrayWriter('jsonb', 256 * parsed.length),
    new BinaryArrayWriter('int4', 8 * parsed.length),
    new BinaryArrayWriter('jsonb', 16 * parsed.length),
    new BinaryArrayWriter('jsonb', 16 * parsed.length),
  ] as const;
  parsed.forEach((p, i) => {
    columns[0].push(ingestionIds[i]!);
    columns[1].push(counts[i]!);
    columns[2].push(p.rejections.length);
    columns[3].push(reportedRejections(p));
    columns[4].push(p.notStored);
  });
  await client.query({ ...MARK_PROCESSED, values: columns.map((c) => c.finish()) });
}

/** `reported`: each payload's reportedRejections, when the caller has them already. */
export function processedResults(
  parsed: readonly ParsedPayload[],
  ingestionIds: readonly string[],
  counts: ReadonlyArray<Record<string, TypeCounts>>,
  reported: ReadonlyArray<ProcessingResult['rejections']> = parsed.map(reportedRejections),
): ProcessedPayload[] {
  return parsed.map((p, i) => ({
    result: { ingestionId: ingestionIds[i]!, counts: counts[i]!, rejections: reported[i]!, notStored: p.notStored } satisfies ProcessingResult,
    rejectionTallies: tallyRejections(p.rejections),
  }));
}

/**
 * A payload's counts as JSON text, the same text JSON.stringify makes, at a fifth of its cost:
 * the group commit stores one per payload.
 */
export function countsJson(counts: Record<string, TypeCounts>): string {
  let json = '';
  for (const label in counts) {
    const c = counts[label]!;
    json += `${json === '' ? '{' : ','}${JSON.stringify(label)}:{"received":${c.received},"inserted":${c.inserted},"updated":${c.updated},"unchanged":${c.unchanged},"rejected":${c.rejected}}`;
  }
  return json === '' ? '{}' : `${json}}`;
}

/**
 * One row per user and natural key: the row of the latest payload, and within one payload the
 * last one (as the single-payload writer keeps it).
 */
function newestPerKey<R>(table: SampleTable<R>, rows: BatchRow<R>[], userIds: readonly string[], order: readonly number[], displacing: Set<number>): BatchRow<R>[] {
  const index = new NaturalKeyIndex(table);
  const kept: BatchRow<R>[] = [];
  for (const r of rows) {
    const at = index.positionOf(userIds[r.payload - 1]!, r.row, kept.length);
    if (at === kept.length) {
      kept.push(r);
      continue;
    }
    const previous = kept[at]!;
    const wins = order[r.payload - 1]! >= order[previous.payload - 1]!;
    if (previous.payload !== r.payload) displacing.add(wins ? r.payload : previous.payload);
    if (wins) kept[at] = r;
  }
  return kept.length === rows.length ? rows : kept;
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
    // Prepared once per connection: planning this upsert costs as much as writing a few dozen rows.
    const { rows: result } = await client.query<{ ingestion_id: string; inserted: string; updated: string }>({
      name: `ss_batch_upsert_${table.table}`,
      text: sql,
      values: [userIds, ingestionIds, ...chunk.arrays],
    });
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
  const sql = `WITH written AS (
      ${payloadRowsUpsertSql(table, { firstParam: 3, userId: '($1::int8[])[u.payload_index]', ingestionId: '($2::int8[])[u.payload_index]' })}
    )
    SELECT ingestion_id, count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated
    FROM written GROUP BY ingestion_id`;
  sqlCache.set(table, sql);
  return sql;
}

/** Where a table's rows come from in a statement: see payloadRowsUpsertSql. */
export interface PayloadRowsSource {
  firstParam: number;
  userId: string;
  ingestionId: string;
  join?: string;
  where?: string;
}

/**
 * The upsert of a table's rows unnested from binary arrays ($firstParam: the payload index of each
 * row, then one array per column), returning each written row's ingestion id and whether it was
 * inserted. `userId` and `ingestionId` are expressions over `u.payload_index` and whatever `join`
 * adds to the FROM list (with its conditions in `where`).
 */
export function payloadRowsUpsertSql<R>(table: SampleTable<R>, at: PayloadRowsSource): string {
  const names = table.columns.map((c) => c.name);
  const valueColumns = names.filter((n) => !table.conflict.includes(n));
  return `${payloadRowsInsertSql(table, at)}
      ON CONFLICT (${table.conflict.join(', ')}) DO UPDATE
        SET ${[...valueColumns, 'ingestion_id'].map((n) => `${n} = excluded.${n}`).join(', ')}, revision = t.revision + 1
        WHERE t.ingestion_id <= excluded.ingestion_id
          AND (${valueColumns.map((n) => `t.${n}`).join(', ')}) IS DISTINCT FROM (${valueColumns.map((n) => `excluded.${n}`).join(', ')})
      RETURNING t.ingestion_id, t.revision = 1 AS inserted`;
}

/**
 * The same rows as a plain INSERT: no conflict check, no returned rows. A key already stored
 * fails the statement with a unique violation.
 */
export function payloadRowsInsertSql<R>(table: SampleTable<R>, at: PayloadRowsSource): string {
  const names = table.columns.map((c) => c.name);
  const unnestArgs = ['int4', ...table.columns.map((c) => c.type)].map((type, i) => `$${i + at.firstParam}::${type}[]`).join(', ');
  const selected = table.columns.map((c) => (c.select ? c.select(`u.${c.name}`) : `u.${c.name}`)).join(', ');
  return `INSERT INTO ${table.table} AS t (user_id, ingestion_id, ${names.join(', ')})
      SELECT ${at.userId}, ${at.ingestionId}, ${selected}
      FROM unnest(${unnestArgs}) AS u(payload_index, ${names.join(', ')})${at.join ? `, ${at.join}` : ''}
      ${at.where ? `WHERE ${at.where}` : ''}`;
}
