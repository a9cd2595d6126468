import type pg from 'pg';
import type { HeartRateColumns, QuantityColumns } from './hae-payload.js';

/**
 * Checks that the ceiling writes what the daemon writes: aggregates of the daemon's rows for one
 * payload against the same aggregates of the ceiling's column arrays (times, UTC offsets across
 * DST, local dates, values, sources, units). Answers the differences, empty when they agree.
 */
export async function compareWithColumns(sql: pg.Pool, ingestionId: string, cols: { heartRate: HeartRateColumns; quantity: QuantityColumns }): Promise<string[]> {
  const { rows } = await sql.query<Record<string, string>>(
    `SELECT 'heart_rate' AS t, count(*) AS n, sum(extract(epoch FROM start_time)::bigint / 60) AS minutes,
            sum(utc_offset_minutes) AS offsets, sum(local_date - date '1970-01-01') AS days,
            round(sum(min_bpm + avg_bpm + max_bpm)::numeric, 3) AS vals,
            string_agg(DISTINCT source, ',') AS sources, string_agg(DISTINCT units, ',') AS units
       FROM heart_rate_samples WHERE ingestion_id = $1
     UNION ALL
     SELECT 'quantity', count(*), sum(extract(epoch FROM start_time)::bigint / 60), sum(utc_offset_minutes),
            sum(local_date - date '1970-01-01'), round(sum(qty)::numeric, 3),
            string_agg(DISTINCT source || '/' || metric || '/' || metric_received, ','), string_agg(DISTINCT units, ',')
       FROM quantity_samples WHERE ingestion_id = $1`,
    [ingestionId],
  );
  const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
  const distinct = (xs: string[]) => [...new Set(xs)].sort().join(',');
  const hr = cols.heartRate;
  const q = cols.quantity;
  const expected: Record<string, Record<string, string>> = {
    heart_rate: {
      n: String(hr.startMs.length),
      minutes: String(sum(hr.startMs.map((t) => Math.floor(t / 60_000)))),
      offsets: String(sum(hr.offset)),
      days: String(sum(hr.localDay)),
      vals: (sum(hr.min) + sum(hr.avg) + sum(hr.max)).toFixed(3),
      sources: distinct(hr.source),
      units: distinct(hr.units),
    },
    quantity: {
      n: String(q.startMs.length),
      minutes: String(sum(q.startMs.map((t) => Math.floor(t / 60_000)))),
      offsets: String(sum(q.offset)),
      days: String(sum(q.localDay)),
      vals: sum(q.qty).toFixed(3),
      sources: distinct(q.source.map((s, i) => `${s}/${q.metric[i]}/${q.metricReceived[i]}`)),
      units: distinct(q.units),
    },
  };
  const differences: string[] = [];
  for (const row of rows) {
    const want = expected[row.t!]!;
    for (const [k, v] of Object.entries(want)) {
      const got = row[k] ?? '';
      // Sums of doubles in another order may differ in the last digits.
      const close = k === 'vals' ? Math.abs(Number(got) - Number(v)) <= Math.abs(Number(v)) * 1e-9 + 0.01 : got === v;
      if (!close) differences.push(`${row.t}.${k}: daemon ${got}, ceiling ${v}`);
    }
  }
  return differences;
}
