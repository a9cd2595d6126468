import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { allFixtures, expectedCounts, readFixture, sampleTableByLabel as tables } from './helpers/fixtures.js';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { defaultLimits } from '../src/hae/limits.js';
import { PayloadProcessor } from '../src/ingest/processor.js';
import { createLogger } from '../src/log.js';
import { PartitionManager } from '../src/store/partitions.js';
import { readStoredPayloads } from '../src/store/payload-encoding.js';

interface IngestAnswer {
  ingestionId: string;
  duplicatePayload: boolean;
  counts: Record<string, { received: number; inserted: number; updated: number; unchanged: number; rejected: number }>;
  stored: Record<string, number>;
  duplicatesSkipped: number;
  rejected: Array<{ path: string; reason: string }>;
}


describe('REST ingest against PostgreSQL', () => {
  let t: TestApp;
  let key: string;

  before(async () => {
    t = await startTestApp({ HTTP_MAX_BODY_BYTES: String(8 * 1024 * 1024) });
    key = await t.createKey('alice');
  });
  after(async () => t?.close());

  const post = (body: Buffer | string, headers: Record<string, string> = {}) =>
    fetch(`${t.httpUrl}/api/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body,
    });

  for (const fixture of allFixtures()) {
    test(`${fixture}: every point lands, per type; re-sending changes nothing`, async () => {
      const bytes = readFixture(fixture);
      const expected = expectedCounts(JSON.parse(bytes.toString('utf8')));
      const user = `u${fixture.replace(/[^a-z0-9]/gi, '').slice(0, 40)}`;
      const userKey = await t.createKey(user);
      const userId = (await t.sql.query<{ id: string }>('SELECT id FROM users WHERE name = $1', [user])).rows[0]!.id;
      const send = (body: Buffer) =>
        fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { 'x-api-key': userKey, 'content-type': 'application/json' }, body });

      const res = await send(bytes);
      assert.equal(res.status, 200);
      const answer = (await res.json()) as IngestAnswer;
      assert.equal(answer.duplicatePayload, false);
      for (const [label, table] of Object.entries(tables) as Array<[keyof typeof tables, string]>) {
        const want = expected[label];
        assert.equal(await count(t.sql, table, 'user_id = $1', [userId]), want, `${fixture}: rows in ${table}`);
        assert.equal(answer.counts[label]?.inserted ?? 0, want, `${fixture}: answer inserted ${label}`);
      }
      const byMetric = await t.sql.query<{ metric_received: string; n: string }>(
        'SELECT metric_received, count(*) AS n FROM quantity_samples WHERE user_id = $1 GROUP BY 1',
        [userId],
      );
      assert.deepEqual(new Map(byMetric.rows.map((r) => [r.metric_received, Number(r.n)])), expected.quantityByMetric);
      const raw = await t.sql.query('SELECT status, size_bytes, transport FROM raw_ingestions WHERE id = $1', [answer.ingestionId]);
      assert.deepEqual(raw.rows[0], { status: 'processed', size_bytes: bytes.length, transport: 'http' });

      // The same bytes again: recognised as a re-send, nothing written.
      const again = (await (await send(bytes)).json()) as IngestAnswer;
      assert.equal(again.duplicatePayload, true);
      assert.equal(again.ingestionId, answer.ingestionId);
      // The same data in other bytes (re-serialised): every row is found unchanged.
      const reserialised = Buffer.from(JSON.stringify(JSON.parse(bytes.toString('utf8')), null, 1));
      const third = (await (await send(reserialised)).json()) as IngestAnswer;
      assert.equal(third.duplicatePayload, false);
      for (const c of Object.values(third.counts)) {
        assert.equal(c.inserted, 0);
        assert.equal(c.updated, 0);
      }
      for (const [label, table] of Object.entries(tables) as Array<[keyof typeof tables, string]>) {
        assert.equal(await count(t.sql, table, 'user_id = $1', [userId]), expected[label], `after re-send: ${table}`);
      }
    });
  }

  test('stored values match the file field by field', async () => {
    const userKey = await t.createKey('fields');
    const userId = (await t.sql.query<{ id: string }>(`SELECT id FROM users WHERE name = 'fields'`)).rows[0]!.id;
    const res = await fetch(`${t.httpUrl}/api/v1/ingest`, {
      method: 'POST',
      headers: { 'api-key': userKey, 'content-type': 'application/json' },
      body: readFixture('real/hae-export-daily-2023-06-to-2025-04.json'),
    });
    assert.equal(res.status, 200);
    const file = JSON.parse(readFixture('real/hae-export-daily-2023-06-to-2025-04.json').toString('utf8'));
    const metric = (name: string) => file.data.metrics.find((m: { name: string }) => m.name === name);

    const hr = metric('heart_rate').data[0];
    const hrRow = await t.sql.query(
      `SELECT min_bpm, avg_bpm, max_bpm, source, units, utc_offset_minutes, to_char(local_date, 'YYYY-MM-DD') AS local_date, start_time
         FROM heart_rate_samples WHERE user_id = $1 AND start_time = $2::timestamptz`,
      [userId, hr.date.replace(' ', 'T').replace(' ', '')],
    );
    assert.equal(hrRow.rowCount, 1);
    assert.equal(hrRow.rows[0].min_bpm, hr.Min);
    assert.equal(hrRow.rows[0].avg_bpm, hr.Avg);
    assert.equal(hrRow.rows[0].max_bpm, hr.Max);
    assert.equal(hrRow.rows[0].source, hr.source);
    assert.equal(hrRow.rows[0].units, metric('heart_rate').units);
    const offset = hr.date.slice(-5);
    assert.equal(hrRow.rows[0].utc_offset_minutes, (offset[0] === '-' ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(3))));
    assert.equal(hrRow.rows[0].local_date, hr.date.slice(0, 10));

    // A point without source is stored with source '' (Q1), the name as received kept beside the canonical one.
    const vo2 = metric('vo2_max').data[3];
    const vo2Row = await t.sql.query(
      `SELECT metric, metric_received, qty, units, source FROM quantity_samples WHERE user_id = $1 AND metric_received = 'vo2_max' AND start_time = $2::timestamptz`,
      [userId, vo2.date.replace(' ', 'T').replace(' ', '')],
    );
    assert.equal(vo2Row.rowCount, 1);
    assert.equal(vo2Row.rows[0].qty, vo2.qty);
    assert.equal(vo2Row.rows[0].units, 'ml/(kg·min)');
    assert.equal(vo2Row.rows[0].source, '');

    const sleep = metric('sleep_analysis').data[0];
    const sleepRow = await t.sql.query(
      `SELECT asleep, core, deep, rem, awake, in_bed, efficiency, source, end_time = $3::timestamptz AS end_matches
         FROM sleep_sessions WHERE user_id = $1 AND start_time = $2::timestamptz`,
      [userId, sleep.sleepStart.replace(' ', 'T').replace(' ', ''), sleep.sleepEnd.replace(' ', 'T').replace(' ', '')],
    );
    assert.equal(sleepRow.rowCount, 1);
    const s = sleepRow.rows[0];
    assert.deepEqual([s.asleep, s.core, s.deep, s.rem, s.awake, s.in_bed], [sleep.asleep, sleep.core, sleep.deep, sleep.rem, sleep.awake, sleep.inBed]);
    assert.equal(s.source, sleep.source);
    assert.equal(s.end_matches, true);
    if (sleep.inBed > 0) assert.ok(Math.abs(s.efficiency - (sleep.asleep > 0 ? sleep.asleep : sleep.core + sleep.deep + sleep.rem) / sleep.inBed) < 1e-9);

    // Every sample row points at the raw payload it came from.
    assert.equal(await count(t.sql, 'quantity_samples q', 'user_id = $1 AND NOT EXISTS (SELECT 1 FROM raw_ingestions r WHERE r.id = q.ingestion_id)', [userId]), 0);
  });

  test('a workout summary is stored with its typed fields', async () => {
    const userKey = await t.createKey('workouts');
    const res = await fetch(`${t.httpUrl}/api/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `bearer ${userKey}`, 'content-type': 'application/json' },
      body: readFixture('composed/hae-small.json'),
    });
    assert.equal(res.status, 200);
    const w = JSON.parse(readFixture('composed/hae-small.json').toString('utf8')).data.workouts[0];
    const row = (await t.sql.query(`SELECT * FROM workouts WHERE workout_id = $1`, [w.id])).rows[0];
    assert.equal(row.name, w.name);
    assert.equal(row.duration_seconds, w.duration);
    assert.equal(row.active_energy, w.activeEnergyBurned.qty);
    assert.equal(row.active_energy_units, w.activeEnergyBurned.units);
    assert.equal(row.heart_rate_max, w.heartRate.max.qty);
    assert.equal(row.summaries.intensity.units, w.intensity.units);
  });

  test('a revised value for the same point is updated: the latest export wins', async () => {
    const body = (qty: number) =>
      JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-01-05 00:00:00 +0100', qty, source: 'iPhone' }] }] } });
    const first = (await (await post(body(1200))).json()) as IngestAnswer;
    assert.equal(first.counts.quantity?.inserted, 1);
    const second = (await (await post(body(5400))).json()) as IngestAnswer;
    assert.equal(second.counts.quantity?.updated, 1);
    const row = await t.sql.query(`SELECT qty, ingestion_id FROM quantity_samples WHERE metric = 'step_count' AND source = 'iPhone' AND start_time = '2025-01-04 23:00:00+00'`);
    assert.equal(row.rows[0].qty, 5400);
    assert.equal(String(row.rows[0].ingestion_id), second.ingestionId);

    // Re-processing the older payload (reprocess, retry) never puts its older value back.
    const processor = new PayloadProcessor({ pool: t.sql, partitions: new PartitionManager(t.sql, createLogger('silent')), chunkRows: 1000, limits: defaultLimits });
    const userId = (await t.sql.query<{ user_id: string }>('SELECT user_id FROM raw_ingestions WHERE id = $1', [first.ingestionId])).rows[0]!.user_id;
    const again = await processor.process(first.ingestionId, String(userId), JSON.parse(body(1200)));
    assert.deepEqual(again.result.counts.quantity, { received: 1, inserted: 0, updated: 0, unchanged: 1, rejected: 0 });
    const still = await t.sql.query(`SELECT qty FROM quantity_samples WHERE metric = 'step_count' AND source = 'iPhone' AND start_time = '2025-01-04 23:00:00+00'`);
    assert.equal(still.rows[0].qty, 5400);
  });

  test('invalid items are rejected one by one; the rest is stored', async () => {
    const body = JSON.stringify({
      data: {
        metrics: [
          { name: 'step_count', units: 'count', data: [{ date: '2025-02-01 08:00:00 +0000', qty: 10 }, { date: 'yesterday', qty: 5 }, { date: '2025-02-01 09:00:00 +0000', qty: 'many' }] },
        ],
      },
    });
    const res = await post(body);
    assert.equal(res.status, 200);
    const answer = (await res.json()) as IngestAnswer;
    assert.equal(answer.counts.quantity?.inserted, 1);
    assert.equal(answer.counts.quantity?.rejected, 2);
    assert.deepEqual(answer.rejected.map((r) => [r.path, r.reason]), [
      ['data.metrics[0].data[1]', 'invalid_date'],
      ['data.metrics[0].data[2]', 'not_a_number'],
    ]);
    const raw = await t.sql.query('SELECT rejected_count, jsonb_array_length(rejections) AS n FROM raw_ingestions WHERE id = $1', [answer.ingestionId]);
    assert.deepEqual(raw.rows[0], { rejected_count: 2, n: 2 });
  });

  test('gzip bodies are accepted', async () => {
    const body = JSON.stringify({ data: { metrics: [{ name: 'dietary_water', units: 'ml', data: [{ date: '2025-03-01 10:00:00 +0000', qty: 250 }] }] } });
    const res = await post(gzipSync(body), { 'content-encoding': 'gzip' });
    assert.equal(res.status, 200);
    const answer = (await res.json()) as IngestAnswer;
    assert.equal(answer.counts.quantity?.inserted, 1);
  });

  test('errors: 401 without or with a wrong key, 415, 413, 400 with the position', async () => {
    const ok = JSON.stringify({ data: {} });
    const none = await fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: ok });
    assert.equal(none.status, 401);
    const wrong = await post(ok, { authorization: 'Bearer ss_aaaaaaaaaa_' + 'A'.repeat(43) });
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'SS_AUTH_INVALID');
    const form = await post(ok, { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 415);
    const big = await post(Buffer.alloc(9 * 1024 * 1024, 0x20));
    assert.equal(big.status, 413);
    const bad = await post('{"data": {"metrics": [}');
    assert.equal(bad.status, 400);
    const err = ((await bad.json()) as { error: { code: string; position: number } }).error;
    assert.equal(err.code, 'SS_INVALID_JSON');
    assert.equal(err.position, 22);
    assert.equal(await count(t.sql, 'raw_ingestions', `payload = convert_to('{"data": {"metrics": [}', 'UTF8')`), 0);
  });
});

describe('a body of 8 MiB or more is stored while its JSON is parsed', () => {
  let t: TestApp;
  let key: string;
  const points = 120_000;
  const text = JSON.stringify({
    data: {
      metrics: [
        {
          name: 'step_count',
          units: 'count',
          data: Array.from({ length: points }, (_, i) => ({ date: `2025-03-${String(1 + Math.floor(i / 86_400)).padStart(2, '0')} ${new Date((i % 86_400) * 1000).toISOString().slice(11, 19)} +0100`, qty: i, source: 'Anna\u2019s iPhone' })),
        },
      ],
    },
  });
  // A colon where a comma belongs, near the end: only a parse of the whole body finds it.
  const cut = text.lastIndexOf(',"qty":');
  const broken = `${text.slice(0, cut)}:${text.slice(cut + 1)}`;

  before(async () => {
    assert.ok(text.length > 8 * 1024 * 1024);
    t = await startTestApp({ HTTP_MAX_BODY_BYTES: String(32 * 1024 * 1024) });
    key = await t.createKey('large');
  });
  after(async () => t?.close());

  const post = (body: string) =>
    fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });

  test('broken JSON: 400 with its position, nothing stored, no transaction left open', async () => {
    const res = await post(broken);
    assert.equal(res.status, 400);
    const err = ((await res.json()) as { error: { code: string; position: number } }).error;
    assert.equal(err.code, 'SS_INVALID_JSON');
    assert.ok(Math.abs(err.position - cut) < 50, String(err.position));
    assert.equal(await count(t.sql, 'raw_ingestions'), 0);
    const open = await t.sql.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`);
    assert.equal(open.rowCount, 0);
  });

  test('valid JSON: stored once, processed, and a re-send is a duplicate', async () => {
    const res = await post(text);
    assert.equal(res.status, 200);
    const answer = (await res.json()) as IngestAnswer;
    assert.equal(answer.duplicatePayload, false);
    assert.equal(answer.counts.quantity?.inserted, points);
    // Stored brotli-compressed (migration 0006): the bytes sent come back, with their size and sha256.
    const stored = await t.sql.query<{ id: string; size_bytes: number; stored_bytes: number; payload_encoding: string; sha256: Buffer; status: string }>(
      `SELECT id::text, size_bytes, length(payload) AS stored_bytes, payload_encoding, sha256, status FROM raw_ingestions`,
    );
    assert.equal(stored.rows.length, 1);
    const row = stored.rows[0]!;
    assert.deepEqual({ size: row.size_bytes, encoding: row.payload_encoding, status: row.status }, { size: Buffer.byteLength(text), encoding: 'br', status: 'processed' });
    assert.ok(row.stored_bytes < row.size_bytes / 4, `${row.stored_bytes} bytes stored for ${row.size_bytes}`);
    const payload = (await readStoredPayloads(t.sql, [row.id])).get(row.id);
    assert.ok(payload?.equals(Buffer.from(text)), 'the stored payload decodes to the bytes sent');
    assert.ok(createHash('sha256').update(payload!).digest().equals(row.sha256));
    assert.equal(await count(t.sql, 'quantity_samples'), points);
    const again = await post(text);
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as IngestAnswer).duplicatePayload, true);
    assert.equal(await count(t.sql, 'raw_ingestions'), 1);
  });

  test('more at once than may be stored while parsed: the others are parsed first, and all are stored', async () => {
    // Two at most hold a connection while parsing; the third and fourth take the usual path.
    const bodies = [1, 2, 3, 4].map((n) => text.replace('"qty":0,', `"qty":${n * 1_000_000},`));
    const answers = await Promise.all(bodies.map((body) => post(body)));
    assert.deepEqual(answers.map((res) => res.status), [200, 200, 200, 200]);
    for (const res of answers) assert.equal(((await res.json()) as IngestAnswer).duplicatePayload, false);
    assert.equal(await count(t.sql, 'raw_ingestions'), 5);
    assert.equal(await count(t.sql, 'raw_ingestions', `status = 'processed'`), 5);
    assert.equal(await count(t.sql, 'raw_ingestions', `payload_encoding = 'br'`), 5);
  });

  test('a compressed payload left unprocessed is read back and processed at the next start', async () => {
    // As after a crash between the acknowledgement and the processing: the payload is only stored.
    await t.sql.query(`TRUNCATE quantity_samples`);
    await t.sql.query(`UPDATE raw_ingestions SET status = 'received', counts = NULL, processed_at = NULL WHERE payload_encoding = 'br'`);
    const next = await startTestApp({ HTTP_MAX_BODY_BYTES: String(32 * 1024 * 1024) }, { database: t.db });
    try {
      await waitFor(async () => (await count(t.sql, 'raw_ingestions', `status = 'received'`)) === 0, 60_000, 'processing of the stored payloads');
      assert.equal(await count(t.sql, 'raw_ingestions', `status = 'processed'`), 5);
      // Five payloads of the same points, differing only in the first one's qty: processed in
      // arrival order (ingestion id), the newest one's value stands.
      assert.equal(await count(t.sql, 'quantity_samples'), points);
      const newest = (await t.sql.query<{ id: string }>(`SELECT max(id)::text AS id FROM raw_ingestions`)).rows[0]!.id;
      const newestFirstQty = (JSON.parse((await readStoredPayloads(t.sql, [newest])).get(newest)!.toString()) as { data: { metrics: Array<{ data: Array<{ qty: number }> }> } }).data.metrics[0]!.data[0]!.qty;
      const first = await t.sql.query<{ qty: number; ingestion_id: string }>(`SELECT qty, ingestion_id::text FROM quantity_samples ORDER BY start_time LIMIT 1`);
      assert.deepEqual(first.rows, [{ qty: newestFirstQty, ingestion_id: newest }]);
    } finally {
      await next.close();
    }
  });
});
