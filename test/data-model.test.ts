import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { allTypesExpected, allTypesPayload } from './helpers/all-types-payload.js';
import { count, startTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase } from './helpers/database.js';
import { readFixture } from './helpers/fixtures.js';
import { corruptUtf8, mutate, prng } from './helpers/mutate.js';

const run = promisify(execFile);

interface Answer {
  ingestionId: string;
  counts: Record<string, { received: number; inserted: number; updated: number; unchanged: number; rejected: number }>;
  rejected: Array<{ type: string; path: string; field?: string; reason: string; message: string }>;
}

describe('the whole data model through the daemon', () => {
  let t: TestApp;
  let key: string;
  before(async () => {
    t = await startTestApp();
    key = await t.createKey('model');
  });
  after(async () => t?.close());

  const post = async (body: string | Buffer, k = key) =>
    fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' }, body });

  test('every data type lands in its table; a second ingest adds nothing', async () => {
    const userKey = await t.createKey('alltypes');
    const id = (await t.sql.query<{ id: string }>(`SELECT id FROM users WHERE name = 'alltypes'`)).rows[0]!.id;
    const body = JSON.stringify(allTypesPayload());
    const res = await post(body, userKey);
    assert.equal(res.status, 200);
    const answer = (await res.json()) as Answer;
    assert.deepEqual(answer.rejected, []);
    for (const [table, n] of Object.entries(allTypesExpected)) assert.equal(await count(t.sql, table, 'user_id = $1', [id]), n, table);

    const ecg = (await t.sql.query('SELECT voltages, classification, sampling_frequency_hz FROM ecg_readings WHERE user_id = $1', [id])).rows[0];
    assert.equal(ecg.voltages.length, 3);
    assert.ok(Math.abs(Number(ecg.voltages[1]) - -0.0000305) < 1e-9);
    assert.equal(ecg.classification, 'Sinus Rhythm');
    const v1 = (await t.sql.query(`SELECT workout_id, format_version FROM workouts WHERE user_id = $1 AND name = 'Walking'`, [id])).rows[0];
    assert.match(v1.workout_id, /^v1-[0-9a-f]{32}$/);
    assert.equal(v1.format_version, 1);
    const sex = (await t.sql.query(`SELECT qty FROM quantity_samples WHERE user_id = $1 AND metric = 'sexual_activity'`, [id])).rows[0];
    assert.equal(sex.qty, 1);
    const glucose = (await t.sql.query(`SELECT extra FROM quantity_samples WHERE user_id = $1 AND metric = 'blood_glucose'`, [id])).rows[0];
    assert.equal(glucose.extra.mealTime, 'Before Meal');
    const mood = (await t.sql.query(`SELECT labels, valence FROM state_of_mind WHERE user_id = $1`, [id])).rows[0];
    assert.deepEqual(mood.labels, ['calm', 'content']);
    const segment = (await t.sql.query(`SELECT stage, value_received FROM sleep_segments WHERE user_id = $1 ORDER BY start_time LIMIT 1`, [id])).rows[0];
    assert.deepEqual(segment, { stage: 'in_bed', value_received: 'In Bed' });

    // The same data again, re-serialised so that it is not recognised as the same bytes.
    const again = (await (await post(JSON.stringify(allTypesPayload(), null, 2), userKey)).json()) as Answer;
    for (const [label, c] of Object.entries(again.counts)) {
      assert.equal(c.inserted, 0, `${label} inserted`);
      assert.equal(c.updated, 0, `${label} updated`);
    }
    for (const [table, n] of Object.entries(allTypesExpected)) assert.equal(await count(t.sql, table, 'user_id = $1', [id]), n, `${table} after re-send`);
  });

  test('1,000 valid heart-rate points and one with Min 12: 1,000 stored, one rejected with index, field and range', async () => {
    const userKey = await t.createKey('hr1001');
    const id = (await t.sql.query<{ id: string }>(`SELECT id FROM users WHERE name = 'hr1001'`)).rows[0]!.id;
    const start = Date.UTC(2025, 2, 1);
    const points = Array.from({ length: 1001 }, (_, i) => {
      const d = new Date(start + i * 60_000);
      const date = `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)} +0000`;
      return i === 537 ? { date, Min: 12, Avg: 60, Max: 80, source: 'Watch' } : { date, Min: 55, Avg: 62, Max: 75, source: 'Watch' };
    });
    const res = await post(JSON.stringify({ data: { metrics: [{ name: 'heart_rate', units: 'count/min', data: points }] } }), userKey);
    assert.equal(res.status, 200);
    const answer = (await res.json()) as Answer;
    assert.equal(answer.counts.heart_rate?.inserted, 1000);
    assert.equal(answer.counts.heart_rate?.rejected, 1);
    assert.equal(answer.rejected.length, 1);
    const r = answer.rejected[0]!;
    assert.equal(r.path, 'data.metrics[0].data[537]');
    assert.equal(r.field, 'Min');
    assert.equal(r.reason, 'out_of_range');
    assert.match(r.message, /12/);
    assert.match(r.message, /15/);
    assert.match(r.message, /300/);
    assert.equal(await count(t.sql, 'heart_rate_samples', 'user_id = $1', [id]), 1000);
    const kept = await t.sql.query(`SELECT rejections FROM raw_ingestions WHERE id = $1`, [answer.ingestionId]);
    assert.equal(kept.rows[0].rejections[0].path, 'data.metrics[0].data[537]');
    const metrics = await (await fetch(`${t.httpUrl}/metrics`)).text();
    assert.match(metrics, /self_sensored_ingest_rejections_total\{transport="http",type="metrics",reason="out_of_range"\} [1-9]/);
  });

  test('fuzz: hundreds of mutated payloads never crash the daemon, never half-store an item, always answer with a reason', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? 20261122);
    const random = prng(seed);
    const userKey = await t.createKey('fuzz');
    const id = (await t.sql.query<{ id: string }>(`SELECT id FROM users WHERE name = 'fuzz'`)).rows[0]!.id;
    const bases = [JSON.parse(readFixture('composed/hae-small.json').toString('utf8')), allTypesPayload(), JSON.parse(readFixture('composed/hae-sleep-unaggregated.json').toString('utf8'))];
    for (let i = 0; i < 300; i++) {
      let value: unknown = bases[i % bases.length];
      const rounds = 1 + Math.floor(random() * 4);
      for (let m = 0; m < rounds; m++) value = mutate(value, random);
      let body: Buffer = Buffer.from(JSON.stringify(value));
      if (random() < 0.1) body = corruptUtf8(body, random);
      const res = await post(body, userKey);
      const answer = (await res.json()) as Answer & { error?: { code: string; message: string } };
      assert.ok(res.status === 200 || res.status === 400, `seed ${seed} case ${i}: status ${res.status} ${JSON.stringify(answer).slice(0, 300)}`);
      if (res.status === 400) assert.ok(answer.error?.code && answer.error.message, `seed ${seed} case ${i}: 400 without a reason`);
      else for (const r of answer.rejected) assert.ok(r.reason && r.message, `seed ${seed} case ${i}: rejection without a reason`);
    }
    // Nothing failed half-way: every stored payload was processed in full, none left failed.
    assert.equal(await count(t.sql, 'raw_ingestions', `user_id = $1 AND status <> 'processed'`, [id]), 0);
    assert.equal((await fetch(`${t.httpUrl}/health`)).status, 200);
    assert.equal((await post(JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-06-01 10:00:00 +0000', qty: 5 }] }] } }), userKey)).status, 200);
  });
});

test('the same payloads ingested with TZ in three zones store identical rows', { timeout: 120_000 }, async () => {
  const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'tz-ingest-child.js');
  const zones = ['America/Los_Angeles', 'Asia/Kolkata', 'Pacific/Chatham'];
  const dbs = await Promise.all(zones.map(() => createTestDatabase()));
  try {
    for (const [i, zone] of zones.entries()) {
      const { stdout } = await run(process.execPath, [child, dbs[i]!.url], { env: { ...process.env, TZ: zone } });
      // Node may report an alias (Asia/Calcutta for Asia/Kolkata): compare with what it resolves here.
      assert.match(stdout, new RegExp(`zone ${Intl.DateTimeFormat('en', { timeZone: zone }).resolvedOptions().timeZone}`));
    }
    const dumps: string[] = [];
    for (const db of dbs) {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const tables = (await client.query<{ t: string }>(`SELECT oid::regclass::text AS t FROM pg_class WHERE relkind = 'p' AND relnamespace = 'public'::regnamespace ORDER BY 1`)).rows.map((r) => r.t);
        assert.ok(tables.length >= 10, `partitioned tables: ${tables.join(', ')}`);
        const parts: string[] = [];
        for (const table of tables) {
          const { rows } = await client.query(`SELECT to_jsonb(x) - 'ingestion_id' - 'user_id' AS row FROM ${table} x ORDER BY 1`);
          parts.push(`${table}: ${JSON.stringify(rows.map((r) => r.row))}`);
        }
        dumps.push(parts.join('\n'));
      } finally {
        await client.end();
      }
    }
    assert.ok(dumps[0]!.length > 10_000);
    assert.equal(dumps[1], dumps[0]);
    assert.equal(dumps[2], dumps[0]);
  } finally {
    await Promise.all(dbs.map((d) => d.drop()));
  }
});

