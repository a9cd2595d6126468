import type pg from 'pg';
import type { TypeCounts } from '../../broker/types.js';
import { BinaryArrayWriter, isElementType, type ElementType } from './binary-array.js';
import type { Column, SampleTable } from './sample-tables.js';

/**
 * Upper bound of the encoded arrays of one chunk (all columns). Rows are cut by bytes as well as
 * by count, so a chunk of ECG readings stays as bounded as one of heart rates, and memory per
 * chunk in flight does not depend on the row shape.
 */
export const MAX_CHUNK_BYTES = 8 * 1024 * 1024;

export interface WriteContext {
  userId: string;
  ingestionId: string;
  chunkRows: number;
  /** Defaults to MAX_CHUNK_BYTES. */
  chunkBytes?: number;
}

/**
 * Writes rows of one table idempotently: in-payload duplicates collapse to the last one, then
 * chunks go in as one `INSERT … SELECT FROM unnest(arrays)` each, so the statement has one
 * parameter per column whatever the row count (no 65,535 bind-parameter ceiling). Each parameter
 * is an array in PostgreSQL's binary format (binary-array.ts). Array-valued
 * columns travel as one jsonb/text value per row and are converted by the column's `select`.
 * A conflicting row is updated only when a value differs and the payload is not older than the
 * one the row came from (raw ingestion ids grow with arrival): the latest export wins, and
 * reprocessing or retrying an old payload never puts an older value back. That also tells
 * inserted, updated and unchanged rows apart.
 *
 * With several connections (`lanes`, each in its own open transaction) every lane takes the next
 * chunk as soon as its previous one is written, so Node encodes one chunk while PostgreSQL
 * inserts another. Lanes never touch the same row: keys are unique after de-duplication.
 */
export async function writeSamples<R>(
  lanes: pg.ClientBase | readonly pg.ClientBase[],
  table: SampleTable<R>,
  rows: readonly R[],
  context: WriteContext,
): Promise<Omit<TypeCounts, 'received' | 'rejected'>> {
  const clients = Array.isArray(lanes) ? (lanes as readonly pg.ClientBase[]) : [lanes as pg.ClientBase];
  const unique = deduplicate(table, rows);
  const statements = statementsFor(table);
  const maxRows = Math.max(1, Math.min(context.chunkRows, table.maxChunkRows ?? Infinity));
  const maxBytes = context.chunkBytes ?? MAX_CHUNK_BYTES;
  let next = 0;
  let failed = false;
  let inserted = 0;
  let updated = 0;
  // A plain insert is cheaper than the upsert (no RETURNING rows to gather and count) while every
  // key is new, as in a first export. The first chunk that meets a stored key is written again by
  // the upsert, which leaves the rows just inserted unchanged, and every later chunk goes straight
  // to the upsert: a re-sent export costs one extra pass over one chunk.
  let keysAllNew = true;
  const lane = async (client: pg.ClientBase): Promise<void> => {
    while (!failed && next < unique.length) {
      const start = next;
      const chunk = encodeChunk(table.columns, unique, next, maxRows, maxBytes);
      next = chunk.end;
      const values = [context.userId, context.ingestionId, ...chunk.arrays];
      try {
        if (keysAllNew) {
          const { rowCount } = await client.query(statements.insertNew, values);
          inserted += rowCount ?? 0;
          if (rowCount === chunk.end - start) continue;
          keysAllNew = false;
        }
        const { rows: result } = await client.query<{ inserted: string; updated: string }>(statements.upsert, values);
        inserted += Number(result[0]!.inserted);
        updated += Number(result[0]!.updated);
      } catch (err) {
        failed = true; // the other lanes stop after their statement in flight
        throw err;
      }
    }
  };
  const outcomes = await Promise.allSettled(clients.map(lane));
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure) throw failure.reason;
  return { inserted, updated, unchanged: rows.length - inserted - updated };
}

/** The last row of each natural key, in first-seen order; the input itself when keys are unique. */
function deduplicate<R>(table: SampleTable<R>, rows: readonly R[]): readonly R[] {
  if (inKeyOrder(table, rows)) return rows;
  const index = new Map<string, number>();
  let duplicates = false;
  for (let i = 0; i < rows.length; i++) {
    const key = table.key(rows[i]!);
    if (index.has(key)) duplicates = true;
    index.set(key, i);
  }
  if (!duplicates) return rows;
  const last: R[] = [];
  for (const i of index.values()) last.push(rows[i]!);
  return last;
}

/**
 * True when every group (see SampleTable.keyGroup) is one run of strictly increasing times, so no
 * two rows share a key: one pass over numbers, where a Map of key strings costs ~1 µs per row.
 */
function inKeyOrder<R>(table: SampleTable<R>, rows: readonly R[]): boolean {
  const group = table.keyGroup;
  if (!group) return false;
  const finished = new Set<string>();
  let current: string | undefined;
  let last = -Infinity;
  for (const row of rows) {
    const g = group(row);
    const t = table.time(row);
    if (g !== current) {
      if (current !== undefined) finished.add(current);
      if (finished.has(g)) return false;
      current = g;
    } else if (!(t > last)) {
      return false;
    }
    last = t;
  }
  return true;
}

/** The columns of rows[start…end) as binary arrays, end cut by row count or by size. */
export function encodeChunk<R>(columns: readonly Column<R>[], rows: readonly R[], start: number, maxRows: number, maxBytes: number): { arrays: Buffer[]; end: number } {
  const limit = Math.min(rows.length, start + maxRows);
  // Sized for the rows at hand (a small payload's columns need a few bytes, not 64 KB each); grows.
  const initialBytes = Math.min(64 * 1024, 64 + (limit - start) * 16);
  const writers = columns.map((c) => new BinaryArrayWriter(elementType(c), initialBytes));
  let end = start;
  let bytes = 0;
  while (end < limit && bytes < maxBytes) {
    const row = rows[end++]!;
    bytes = 0;
    for (let c = 0; c < columns.length; c++) {
      const writer = writers[c]!;
      writer.push(columns[c]!.value(row));
      bytes += writer.bytes;
    }
  }
  return { arrays: writers.map((w) => w.finish()), end };
}

function elementType<R>(column: Column<R>): ElementType {
  if (!isElementType(column.type)) throw new Error(`column ${column.name}: no binary encoding for type ${column.type}`);
  return column.type;
}

interface Statements {
  /** The rows whose keys are not stored yet; its row count says how many. */
  insertNew: string;
  /** Every row, counted as inserted or updated (unchanged rows are not written). */
  upsert: string;
}

const statementsCache = new WeakMap<object, Statements>();

function statementsFor<R>(table: SampleTable<R>): Statements {
  const cached = statementsCache.get(table);
  if (cached) return cached;
  const names = table.columns.map((c) => c.name);
  const unnestArgs = table.columns.map((c, i) => `$${i + 3}::${c.type}[]`).join(', ');
  // A column with `select` (an array carried as jsonb or text) is converted per row here.
  const selected = table.columns.map((c) => (c.select ? c.select(`u.${c.name}`) : `u.${c.name}`)).join(', ');
  const insert = `INSERT INTO ${table.table} AS t (user_id, ingestion_id, ${names.join(', ')})
      SELECT $1::bigint, $2::bigint, ${selected} FROM unnest(${unnestArgs}) AS u(${names.join(', ')})
      ON CONFLICT (${table.conflict.join(', ')})`;
  const valueColumns = names.filter((n) => !table.conflict.includes(n));
  const statements: Statements = {
    insertNew: `${insert} DO NOTHING`,
    upsert: `WITH written AS (
      ${insert} DO UPDATE
        SET ${[...valueColumns, 'ingestion_id'].map((n) => `${n} = excluded.${n}`).join(', ')}, revision = t.revision + 1
        WHERE t.ingestion_id <= excluded.ingestion_id
          AND (${valueColumns.map((n) => `t.${n}`).join(', ')}) IS DISTINCT FROM (${valueColumns.map((n) => `excluded.${n}`).join(', ')})
      RETURNING t.revision = 1 AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM written`,
  };
  statementsCache.set(table, statements);
  return statements;
}
