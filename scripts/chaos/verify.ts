import type pg from 'pg';
import type { Ledger, PayloadRecord } from './ledger.js';

export interface Verdict {
  published: number;
  acknowledged: number;
  /** Distinct published payloads found in raw_ingestions. */
  stored: number;
  storedUnacknowledged: number;
  /** Acknowledged but not in raw_ingestions: must be 0. */
  lost: number;
  /** Payloads with more than one raw_ingestions row, plus sample keys with more than one row: must be 0. */
  duplicated: number;
  duplicatedRaw: number;
  duplicatedSamples: number;
  /** Stored, processed, yet fewer sample rows than points: must be 0. */
  samplesMissing: number;
  notProcessed: number;
  failed: number;
  reReceived: number;
  qos0DuringOutage: { published: number; stored: number };
  examples: { lost: string[]; duplicated: string[]; samplesMissing: string[] };
}

interface RawRow {
  marker: string | null;
  rows: string;
  processed: string;
  failed: string;
  receives: string;
}

/** raw_ingestions per payload marker (the `source` of the payload's first point). */
async function rawByMarker(sql: pg.Pool, prefix: string): Promise<Map<string, { rows: number; processed: number; failed: number; receives: number }>> {
  const pattern = `"source":"(${prefix.replace(/[^a-z0-9-]/g, '')}[0-9]+)"`;
  const { rows } = await sql.query<RawRow>(
    `SELECT substring(convert_from(payload, 'UTF8') from $1) AS marker, count(*) AS rows,
            count(*) FILTER (WHERE status = 'processed') AS processed,
            count(*) FILTER (WHERE status = 'failed') AS failed,
            sum(receive_count) AS receives
       FROM raw_ingestions GROUP BY 1`,
    [pattern],
  );
  const out = new Map<string, { rows: number; processed: number; failed: number; receives: number }>();
  for (const r of rows) out.set(r.marker ?? '(unidentified)', { rows: Number(r.rows), processed: Number(r.processed), failed: Number(r.failed), receives: Number(r.receives) });
  return out;
}

/** Sample rows per payload: the marker point itself, and the filler points of large payloads. */
async function samplesByMarker(sql: pg.Pool, prefix: string): Promise<Map<string, number>> {
  const { rows } = await sql.query<{ marker: string; n: string }>(
    `SELECT split_part(source, '#', 1) AS marker, count(*) AS n FROM quantity_samples WHERE source LIKE $1 GROUP BY 1`,
    [`${prefix}%`],
  );
  return new Map(rows.map((r) => [r.marker, Number(r.n)]));
}

/** Sample keys stored more than once (the primary key forbids it; this checks rather than trusts). */
async function duplicateSampleKeys(sql: pg.Pool, prefix: string): Promise<string[]> {
  const { rows } = await sql.query<{ source: string }>(
    `SELECT source FROM quantity_samples WHERE source LIKE $1
       GROUP BY user_id, metric, start_time, source HAVING count(*) > 1 LIMIT 1000`,
    [`${prefix}%`],
  );
  return rows.map((r) => r.source);
}

export async function pendingCount(sql: pg.Pool): Promise<number> {
  const { rows } = await sql.query<{ n: string }>(`SELECT count(*) AS n FROM raw_ingestions WHERE status = 'received'`);
  return Number(rows[0]!.n);
}

const firstFew = (records: PayloadRecord[]) => records.slice(0, 20).map((r) => `${r.marker} (${r.channel}${r.qos === null ? '' : ` qos${r.qos}`}, ${r.phase})`);

/** Compares what the publishers sent and had acknowledged with what the database holds. */
export async function verify(sql: pg.Pool, ledger: Ledger): Promise<Verdict> {
  const raw = await rawByMarker(sql, ledger.markerPrefix);
  const samples = await samplesByMarker(sql, ledger.markerPrefix);
  const dupSamples = await duplicateSampleKeys(sql, ledger.markerPrefix);
  const records = [...ledger.records.values()].filter((r) => r.published);
  const lost: PayloadRecord[] = [];
  const dupRaw: PayloadRecord[] = [];
  const missing: PayloadRecord[] = [];
  let stored = 0;
  let storedUnacked = 0;
  let notProcessed = 0;
  let failed = 0;
  let reReceived = 0;
  let qos0Published = 0;
  let qos0Stored = 0;
  for (const r of records) {
    const row = raw.get(r.marker);
    if (r.qos === 0 && r.duringOutage) {
      qos0Published++;
      if (row) qos0Stored++;
    }
    if (!row) {
      if (r.acked) lost.push(r);
      continue;
    }
    stored++;
    if (!r.acked) storedUnacked++;
    if (row.rows > 1) dupRaw.push(r);
    if (row.receives > row.rows) reReceived++;
    failed += row.failed;
    if (row.processed < row.rows) notProcessed++;
    else if ((samples.get(r.marker) ?? 0) < r.points) missing.push(r);
  }
  // A sample row may also be duplicated across payloads' markers: any row beyond the points counts.
  let extraSamples = 0;
  for (const r of records) extraSamples += Math.max(0, (samples.get(r.marker) ?? 0) - r.points);
  const duplicatedSamples = Math.max(dupSamples.length, extraSamples);
  return {
    published: records.length,
    acknowledged: records.filter((r) => r.acked).length,
    stored,
    storedUnacknowledged: storedUnacked,
    lost: lost.length,
    duplicated: dupRaw.length + duplicatedSamples,
    duplicatedRaw: dupRaw.length,
    duplicatedSamples,
    samplesMissing: missing.length,
    notProcessed,
    failed,
    reReceived,
    qos0DuringOutage: { published: qos0Published, stored: qos0Stored },
    examples: { lost: firstFew(lost), duplicated: [...firstFew(dupRaw), ...dupSamples.slice(0, 20)], samplesMissing: firstFew(missing) },
  };
}
