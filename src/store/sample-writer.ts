import type pg from 'pg';
import type { TypeCounts } from '../../broker/types.js';
import { BinaryArrayWriter, expectedArrayBytes, isElementType, type ElementType } from './binary-array.js';
import { NaturalKeyIndex, type Column, type SampleTable } from './sample-tables.js';

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
  const writer = new ChunkWriter(table, context);
  let next = 0;
  let failed = false;
  const lane = async (client: pg.ClientBase): Promise<void> => {
    while (!failed && next < unique.length) {
      const start = next;
      const chunk = encodeChunk(table.columns, unique, next, writer.maxRows, writer.maxBytes);
      next = chunk.end;
      try {
        await writer.write(client, chunk.arrays, chunk.end - start);
      } catch (err) {
        failed = true; // the other lanes stop after their statement in flight
        throw err;
      }
    }
  };
  const outcomes = await Promise.allSettled(clients.map(lane));
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure) throw failure.reason;
  return { inserted: writer.inserted, updated: writer.updated, unchanged: rows.length - writer.inserted - writer.updated };
}

/**
 * Writes the chunks of one table's rows (unique keys, see deduplicate) and counts inserted and
 * updated rows. A plain insert is cheaper than the upsert (no RETURNING rows to gather and count)
 * while every key is new, as in a first export. The first chunk that meets a stored key is
 * written again by the upsert, which leaves the rows just inserted unchanged, and every later
 * chunk goes straight to the upsert: a re-sent export costs one extra pass over one chunk.
 * Chunk boundaries do not change the counts.
 */
export class ChunkWriter<R> {
  inserted = 0;
  updated = 0;
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly #statements: Statements;
  readonly #context: WriteContext;
  #keysAllNew = true;

  constructor(table: SampleTable<R>, context: WriteContext) {
    this.#statements = statementsFor(table);
    this.#context = context;
    this.maxRows = Math.max(1, Math.min(context.chunkRows, table.maxChunkRows ?? Infinity));
    this.maxBytes = context.chunkBytes ?? MAX_CHUNK_BYTES;
  }

  /** One chunk of `rows` rows, its columns encoded by encodeChunk. */
  async write(client: pg.ClientBase, arrays: Buffer[], rows: number): Promise<void> {
    const values = [this.#context.userId, this.#context.ingestionId, ...arrays];
    if (this.#keysAllNew) {
      const { rowCount } = await client.query(this.#statements.insertNew, values);
      this.inserted += rowCount ?? 0;
      if (rowCount === rows) return;
      this.#keysAllNew = false;
    }
    const { rows: result } = await client.query<{ inserted: string; updated: string }>(this.#statements.upsert, values);
    this.inserted += Number(result[0]!.inserted);
    this.updated += Number(result[0]!.updated);
  }
}

/** The last row of each natural key, in first-seen order; the input itself when keys are unique. */
function deduplicate<R>(table: SampleTable<R>, rows: readonly R[]): readonly R[] {
  if (new KeyOrderCheck(table).extend(rows, 0, rows.length)) return rows;
  // One user per call: the index's user level holds a single entry.
  const index = new NaturalKeyIndex(table);
  const last: R[] = [];
  for (const row of rows) {
    const at = index.positionOf('', row, last.length);
    if (at === last.length) last.push(row);
    else last[at] = row;
  }
  return last.length === rows.length ? rows : last;
}

/**
 * Whether every group (see SampleTable.keyGroup) is one run of strictly increasing times, so no
 * two rows share a key: one pass over numbers, where a Map of key strings costs ~1 µs per row.
 * Rows may be checked a stretch at a time, as they are produced.
 */
export class KeyOrderCheck<R> {
  readonly #table: SampleTable<R>;
  readonly #finished = new Set<string>();
  #current: string | undefined;
  #last = -Infinity;
  #holds: boolean;

  constructor(table: SampleTable<R>) {
    this.#table = table;
    this.#holds = table.keyGroup !== undefined;
  }

  /** Checks rows[from…to) after every row checked before; false from the first row out of order on. */
  extend(rows: readonly R[], from: number, to: number): boolean {
    const group = this.#table.keyGroup;
    if (!this.#holds || !group) return false;
    for (let i = from; i < to; i++) {
      const row = rows[i]!;
      const g = group(row);
      const t = this.#table.time(row);
      if (g !== this.#current) {
        if (this.#current !== undefined) this.#finished.add(this.#current);
        if (this.#finished.has(g)) return (this.#holds = false);
        this.#current = g;
      } else if (!(t > this.#last)) {
        return (this.#holds = false);
      }
      this.#last = t;
    }
    return true;
  }
}

/** The columns of rows[start…end) as binary arrays, end cut by row count or by size. */
export function encodeChunk<R>(columns: readonly Column<R>[], rows: readonly R[], start: number, maxRows: number, maxBytes: number): { arrays: Buffer[]; end: number } {
  const limit = Math.min(rows.length, start + maxRows);
  // Sized for the rows at hand, so that a chunk's arrays are seldom grown (and copied) on the way.
  const writers = columns.map((c) => {
    const type = elementType(c);
    return new BinaryArrayWriter(type, Math.min(maxBytes, expectedArrayBytes(type, limit - start)));
  });
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
