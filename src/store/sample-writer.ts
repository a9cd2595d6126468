import type pg from 'pg';
import type { TypeCounts } from '../../broker/types.js';
import type { SampleTable } from './sample-tables.js';

/**
 * Writes rows of one table idempotently: in-payload duplicates collapse to the last one, then
 * chunks go in as one `INSERT … SELECT FROM unnest(arrays)` each, so the statement has one
 * parameter per column whatever the row count (no 65,535 bind-parameter ceiling). Array-valued
 * columns travel as one jsonb/text value per row and are converted by the column's `select`.
 * A conflicting row is updated only when a value differs and the payload is not older than the
 * one the row came from (raw ingestion ids grow with arrival): the latest export wins, and
 * reprocessing or retrying an old payload never puts an older value back. That also tells
 * inserted, updated and unchanged rows apart.
 */
export async function writeSamples<R>(
  client: pg.PoolClient,
  table: SampleTable<R>,
  rows: readonly R[],
  context: { userId: string; ingestionId: string; chunkRows: number },
): Promise<Omit<TypeCounts, 'received' | 'rejected'>> {
  const unique = new Map<string, R>();
  for (const row of rows) unique.set(table.key(row), row);
  const deduped = [...unique.values()];
  let inserted = 0;
  let updated = 0;
  const sql = upsertSql(table);
  const chunkRows = Math.max(1, Math.min(context.chunkRows, table.maxChunkRows ?? Infinity));
  for (let start = 0; start < deduped.length; start += chunkRows) {
    const chunk = deduped.slice(start, start + chunkRows);
    const arrays = table.columns.map((col) => chunk.map(col.value));
    const { rows: result } = await client.query<{ inserted: string; updated: string }>(sql, [
      context.userId,
      context.ingestionId,
      ...arrays,
    ]);
    inserted += Number(result[0]!.inserted);
    updated += Number(result[0]!.updated);
  }
  return { inserted, updated, unchanged: rows.length - inserted - updated };
}

const sqlCache = new WeakMap<object, string>();

function upsertSql<R>(table: SampleTable<R>): string {
  const cached = sqlCache.get(table);
  if (cached) return cached;
  const names = table.columns.map((c) => c.name);
  const unnestArgs = table.columns.map((c, i) => `$${i + 3}::${c.type}[]`).join(', ');
  // A column with `select` (an array carried as jsonb or text) is converted per row here.
  const selected = table.columns.map((c) => (c.select ? c.select(`u.${c.name}`) : `u.${c.name}`)).join(', ');
  const valueColumns = names.filter((n) => !table.conflict.includes(n));
  const sql = `WITH written AS (
      INSERT INTO ${table.table} AS t (user_id, ingestion_id, ${names.join(', ')})
      SELECT $1::bigint, $2::bigint, ${selected} FROM unnest(${unnestArgs}) AS u(${names.join(', ')})
      ON CONFLICT (${table.conflict.join(', ')}) DO UPDATE
        SET ${[...valueColumns, 'ingestion_id'].map((n) => `${n} = excluded.${n}`).join(', ')}, revision = t.revision + 1
        WHERE t.ingestion_id <= excluded.ingestion_id
          AND (${valueColumns.map((n) => `t.${n}`).join(', ')}) IS DISTINCT FROM (${valueColumns.map((n) => `excluded.${n}`).join(', ')})
      RETURNING t.revision = 1 AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM written`;
  sqlCache.set(table, sql);
  return sql;
}
