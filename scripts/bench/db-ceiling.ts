import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { HeartRateColumns, QuantityColumns } from './hae-payload.js';

/**
 * The database ceiling of the bulk scenario: the same rows, already in memory as column arrays,
 * written to the same tables and columns the daemon writes, by the fastest idempotent method we
 * have without extra dependencies: `INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`,
 * times as epoch-ms float8, local dates as day numbers, chunks shared by 1 or 2 connections
 * (each in one transaction, like the daemon's one transaction per payload).
 */

const HEART_RATE_SQL = `INSERT INTO heart_rate_samples
    (user_id, ingestion_id, start_time, utc_offset_minutes, local_date, source, min_bpm, avg_bpm, max_bpm, units)
  SELECT $1::bigint, $2::bigint, to_timestamp(u.t / 1000), u.o, date '1970-01-01' + u.d, u.s, u.mn, u.av, u.mx, u.un
  FROM unnest($3::float8[], $4::int2[], $5::int4[], $6::text[], $7::float8[], $8::float8[], $9::float8[], $10::text[])
    AS u(t, o, d, s, mn, av, mx, un)
  ON CONFLICT DO NOTHING`;

const QUANTITY_SQL = `INSERT INTO quantity_samples
    (user_id, ingestion_id, metric, start_time, utc_offset_minutes, local_date, source, metric_received, qty, units)
  SELECT $1::bigint, $2::bigint, u.m, to_timestamp(u.t / 1000), u.o, date '1970-01-01' + u.d, u.s, u.mr, u.q, u.un
  FROM unnest($3::text[], $4::float8[], $5::int2[], $6::int4[], $7::text[], $8::text[], $9::float8[], $10::text[])
    AS u(m, t, o, d, s, mr, q, un)
  ON CONFLICT DO NOTHING`;

interface Chunk {
  text: string;
  arrays: unknown[][];
}

function chunksOf(cols: { heartRate: HeartRateColumns; quantity: QuantityColumns }, chunkRows: number): Chunk[] {
  const out: Chunk[] = [];
  const hr = cols.heartRate;
  for (let s = 0; s < hr.startMs.length; s += chunkRows) {
    const e = s + chunkRows;
    out.push({ text: HEART_RATE_SQL, arrays: [hr.startMs, hr.offset, hr.localDay, hr.source, hr.min, hr.avg, hr.max, hr.units].map((a) => a.slice(s, e)) });
  }
  const q = cols.quantity;
  for (let s = 0; s < q.startMs.length; s += chunkRows) {
    const e = s + chunkRows;
    out.push({ text: QUANTITY_SQL, arrays: [q.metric, q.startMs, q.offset, q.localDay, q.source, q.metricReceived, q.qty, q.units].map((a) => a.slice(s, e)) });
  }
  return out;
}

/** Empties the two sample tables (their partitions stay) and flushes dirty pages, so every timed write starts alike. */
export async function resetSampleTables(sql: pg.Pool): Promise<void> {
  await sql.query('TRUNCATE heart_rate_samples, quantity_samples');
  // CHECKPOINT needs superuser or pg_checkpoint; without it the runs are only a little noisier.
  await sql.query('CHECKPOINT').catch(() => undefined);
}

export async function ensurePartitions(sql: pg.Pool, months: string[]): Promise<void> {
  for (const table of ['heart_rate_samples', 'quantity_samples']) {
    for (const month of months) await sql.query('SELECT ss_ensure_month_partition($1::regclass, $2::date)', [table, month]);
  }
}

/** A user of its own and a real raw_ingestions row, so that the rows look like the daemon's. */
async function ceilingOwner(sql: pg.Pool): Promise<{ userId: string; ingestionId: string }> {
  const name = `bench-ceiling-${randomBytes(4).toString('hex')}`;
  const userId = (await sql.query<{ id: string }>('INSERT INTO users (name) VALUES ($1) RETURNING id::text', [name])).rows[0]!.id;
  const ingestionId = (
    await sql.query<{ id: string }>(
      `INSERT INTO raw_ingestions (user_id, transport, payload, sha256, size_bytes, received_at, last_received_at, status)
       VALUES ($1, 'file', '\\x00', $2, 1, now(), now(), 'processed') RETURNING id::text`,
      [userId, randomBytes(32)],
    )
  ).rows[0]!.id;
  return { userId, ingestionId };
}

export interface CeilingRun {
  connections: number;
  chunkRows: number;
  seconds: number;
  rowsPerSecond: number;
  rowsWritten: number;
}

/** Opens the ceiling's connections; kept apart from the timed write so their backends are counted as ours. */
export async function openCeilingClients(databaseUrl: string, count: number): Promise<pg.Client[]> {
  const clients = Array.from({ length: count }, () => new pg.Client({ connectionString: databaseUrl }));
  await Promise.all(clients.map((c) => c.connect()));
  return clients;
}

export async function writeCeiling(
  clients: pg.Client[],
  sql: pg.Pool,
  cols: { heartRate: HeartRateColumns; quantity: QuantityColumns },
  chunkRows: number,
): Promise<CeilingRun> {
  const { userId, ingestionId } = await ceilingOwner(sql);
  const chunks = chunksOf(cols, chunkRows);
  let next = 0;
  let written = 0;
  const started = performance.now();
  await Promise.all(
    clients.map(async (client) => {
      await client.query('BEGIN');
      while (next < chunks.length) {
        const chunk = chunks[next++]!;
        // Not `written += await …`: that reads `written` before the other connection adds to it.
        const result = await client.query(chunk.text, [userId, ingestionId, ...chunk.arrays]);
        written += result.rowCount ?? 0;
      }
      await client.query('COMMIT');
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const rows = cols.heartRate.startMs.length + cols.quantity.startMs.length;
  return { connections: clients.length, chunkRows, seconds, rowsPerSecond: rows / seconds, rowsWritten: written };
}
