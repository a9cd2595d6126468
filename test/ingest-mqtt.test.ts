import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import pg from 'pg';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { allFixtures, expectedCounts, fixturePath, readFixture, sampleTableByLabel } from './helpers/fixtures.js';
import { connectMqtt as connect } from './helpers/mqtt-connect.js';

const run = promisify(execFile);


const tinyPayload = (qty: number, day = '2025-04-01') =>
  JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: `${day} 12:00:00 +0200`, qty, source: 'Watch' }] }] } });

describe('MQTT ingest against PostgreSQL', () => {
  let t: TestApp;
  let key: string;
  let userId: string;

  before(async () => {
    t = await startTestApp();
    key = await t.createKey('bob');
    userId = (await t.sql.query<{ id: string }>(`SELECT id FROM users WHERE name = 'bob'`)).rows[0]!.id;
  });
  after(async () => t?.close());

  test('the real export over WebSocket at QoS 1: all 11,104 points, per metric; publishing it again adds nothing', async () => {
    const bytes = readFixture('real/hae-export-daily-2023-06-to-2025-04.json');
    const expected = expectedCounts(JSON.parse(bytes.toString('utf8')));
    const client = await connect(t.wsUrl, key);
    try {
      await client.publishAsync('health/bob', bytes, { qos: 1 });
      // The PUBACK means the raw payload is committed.
      assert.equal(await count(t.sql, 'raw_ingestions', `user_id = $1 AND transport = 'mqtt-ws' AND topic = 'health/bob'`, [userId]), 1);
      await waitFor(async () => (await count(t.sql, 'raw_ingestions', `user_id = $1 AND status = 'processed'`, [userId])) === 1, 30_000, 'processing');
      const total = (await count(t.sql, 'quantity_samples', 'user_id = $1', [userId])) + (await count(t.sql, 'heart_rate_samples', 'user_id = $1', [userId])) + (await count(t.sql, 'sleep_sessions', 'user_id = $1', [userId]));
      assert.equal(total, 11_104);
      const byMetric = await t.sql.query<{ metric_received: string; n: string }>('SELECT metric_received, count(*) AS n FROM quantity_samples WHERE user_id = $1 GROUP BY 1', [userId]);
      assert.deepEqual(new Map(byMetric.rows.map((r) => [r.metric_received, Number(r.n)])), expected.quantityByMetric);
      assert.equal(await count(t.sql, 'heart_rate_samples', 'user_id = $1', [userId]), expected.heart_rate);
      assert.equal(await count(t.sql, 'sleep_sessions', 'user_id = $1', [userId]), expected.sleep);

      await client.publishAsync('health/bob', bytes, { qos: 1 });
      const raw = await t.sql.query('SELECT receive_count FROM raw_ingestions WHERE user_id = $1', [userId]);
      assert.deepEqual(raw.rows, [{ receive_count: 2 }]);
      assert.equal(await count(t.sql, 'quantity_samples', 'user_id = $1', [userId]) + (await count(t.sql, 'heart_rate_samples', 'user_id = $1', [userId])) + (await count(t.sql, 'sleep_sessions', 'user_id = $1', [userId])), 11_104);
    } finally {
      await client.endAsync();
    }
  });

  for (const fixture of allFixtures()) {
    test(`${fixture} over WebSocket at QoS 1: the exact count per table`, async () => {
      const bytes = readFixture(fixture);
      const expected = expectedCounts(JSON.parse(bytes.toString('utf8')));
      const user = `m${fixture.replace(/[^a-z0-9]/gi, '').slice(0, 40)}`;
      const userKey = await t.createKey(user);
      const id = (await t.sql.query<{ id: string }>('SELECT id FROM users WHERE name = $1', [user])).rows[0]!.id;
      const client = await connect(t.wsUrl, userKey);
      await client.publishAsync(`health/${user}`, bytes, { qos: 1 });
      await client.endAsync();
      await waitFor(async () => (await count(t.sql, 'raw_ingestions', `user_id = $1 AND status = 'processed'`, [id])) === 1, 30_000, 'processing');
      for (const [label, table] of Object.entries(sampleTableByLabel) as Array<[keyof typeof sampleTableByLabel, string]>) {
        assert.equal(await count(t.sql, table, 'user_id = $1', [id]), expected[label], `${fixture}: rows in ${table}`);
      }
    });
  }

  test('QoS 0 and QoS 1 over TCP and WebSocket are stored', async () => {
    const cases: Array<[string, 0 | 1, string]> = [
      [t.tcpUrl, 0, 'mqtt-tcp'],
      [t.tcpUrl, 1, 'mqtt-tcp'],
      [t.wsUrl, 0, 'mqtt-ws'],
      [t.wsUrl, 1, 'mqtt-ws'],
    ];
    let qty = 100;
    for (const [url, qos, transport] of cases) {
      qty++;
      const client = await connect(url, key);
      await client.publishAsync('health/bob/steps', tinyPayload(qty, '2025-04-02'), { qos });
      await client.endAsync();
      await waitFor(async () => (await count(t.sql, 'quantity_samples', `user_id = $1 AND metric = 'step_count' AND qty = $2`, [userId, qty])) === 1, 10_000, `${transport} qos ${qos}`);
      assert.equal(await count(t.sql, 'raw_ingestions', `user_id = $1 AND transport = $2 AND convert_from(payload, 'UTF8') LIKE $3`, [userId, transport, `%"qty":${qty},%`]), 1);
    }
  });

  test('the QoS 1 PUBACK leaves only after the raw payload is committed', async () => {
    // Hold a lock that blocks inserts into raw_ingestions: the PUBACK must wait for it.
    const blocker = new pg.Client({ connectionString: t.db.url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE raw_ingestions IN EXCLUSIVE MODE');
    const client = await connect(t.wsUrl, key);
    try {
      let acked = false;
      const publish = client.publishAsync('health/bob', tinyPayload(777, '2025-04-03'), { qos: 1 }).then(async () => {
        acked = true;
        // At the moment of the PUBACK another connection already sees the committed row.
        return count(t.sql, 'raw_ingestions', `user_id = $1 AND convert_from(payload, 'UTF8') LIKE '%"qty":777,%'`, [userId]);
      });
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(acked, false, 'PUBACK arrived while the insert was blocked');
      await blocker.query('COMMIT');
      assert.equal(await publish, 1);
    } finally {
      await blocker.end();
      await client.endAsync();
    }
  });

  test('a wrong or missing key is refused with "bad username or password"', async () => {
    await assert.rejects(connect(t.wsUrl, 'ss_aaaaaaaaaa_' + 'B'.repeat(43)), (err: Error & { code?: number }) => err.code === 4);
    await assert.rejects(connect(t.tcpUrl, 'not-a-key'), (err: Error & { code?: number }) => err.code === 4);
    await assert.rejects(
      new Promise((resolve, reject) => {
        const c = mqtt.connect(t.tcpUrl, { reconnectPeriod: 0 });
        c.once('connect', resolve);
        c.once('error', (e) => {
          c.end(true);
          reject(e);
        });
      }),
      (err: Error & { code?: number }) => err.code === 4,
    );
  });

  test('a revoked key stops working within seconds', async () => {
    const created = await t.app.keys.create({ userName: 'carol' });
    const client = await connect(t.wsUrl, created.key);
    await client.endAsync();
    assert.equal(await t.app.keys.revoke(created.id), true);
    await new Promise((r) => setTimeout(r, 2_600));
    await assert.rejects(connect(t.wsUrl, created.key), (err: Error & { code?: number }) => err.code === 4 || err.code === 5);
  });

  test('mosquitto_pub publishes a file over TCP at QoS 1', { skip: existsSync('/usr/bin/mosquitto_pub') ? false : 'mosquitto_pub is not installed' }, async () => {
    const port = new URL(t.tcpUrl).port;
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-u', 'bob', '-P', key, '-q', '1', '-t', 'health/bob', '-f', fixturePath('composed/hae-small.json')]);
    const expected = expectedCounts(JSON.parse(readFixture('composed/hae-small.json').toString('utf8')));
    await waitFor(async () => (await count(t.sql, 'raw_ingestions', `user_id = $1 AND transport = 'mqtt-tcp' AND status = 'processed' AND size_bytes = $2`, [userId, readFixture('composed/hae-small.json').length])) === 1, 10_000, 'mosquitto_pub payload');
    assert.equal(await count(t.sql, 'blood_pressure_samples', 'user_id = $1', [userId]), expected.blood_pressure);
    assert.equal(await count(t.sql, 'workouts', 'user_id = $1', [userId]), expected.workouts);
  });
});
