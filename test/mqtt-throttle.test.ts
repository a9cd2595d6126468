import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';

const point = (qty: number) =>
  JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: `2025-04-01 12:${String(qty % 60).padStart(2, '0')}:00 +0200`, qty, source: 'Watch' }] }] } });

describe('MQTT publishers over their key limit', () => {
  let t: TestApp;
  before(async () => {
    // 2 publishes at once, then one every 500 ms.
    t = await startTestApp({ RATE_LIMIT_KEY_PER_MINUTE: '120', RATE_LIMIT_KEY_BURST: '2', MQTT_RATE_LIMIT_MAX_WAIT_MS: '1500', MQTT_RATE_LIMIT_MAX_WAITING: '100' });
  });
  after(async () => t?.close());

  const metric = async (pattern: RegExp): Promise<number> => {
    const text = await (await fetch(`${t.httpUrl}/metrics`)).text();
    return Number(pattern.exec(text)?.[1] ?? 0);
  };

  test('are slowed: the PUBACK waits for the budget, and everything is stored', async () => {
    const key = await t.createKey('steady');
    const client = await mqtt.connectAsync(t.tcpUrl, { username: 'steady', password: key, reconnectPeriod: 0 });
    try {
      const pubackAfter: number[] = [];
      const started = Date.now();
      for (let i = 0; i < 4; i++) {
        await client.publishAsync('health/steady', point(i), { qos: 1 });
        pubackAfter.push(Date.now() - started);
      }
      assert.ok(pubackAfter[1]! < 400, `the burst passes at once (${pubackAfter.join(', ')} ms)`);
      assert.ok(pubackAfter[2]! >= 350 && pubackAfter[3]! - pubackAfter[2]! >= 350, `then one per ~500 ms (${pubackAfter.join(', ')} ms)`);
      assert.ok(client.connected, 'a client that waits for its PUBACKs is never disconnected');
    } finally {
      await client.endAsync();
    }
    assert.equal(await count(t.sql, 'raw_ingestions', `transport = 'mqtt-tcp'`), 4);
    assert.ok((await metric(/self_sensored_rate_limited_total\{route="mqtt",scope="key"\} (\d+)/)) >= 2);
  });

  test('a client that keeps pushing past its limit is disconnected; what was acknowledged is stored', async () => {
    const key = await t.createKey('flood');
    const userId = (await t.sql.query<{ id: string }>(`SELECT id FROM users WHERE name = 'flood'`)).rows[0]!.id;
    const client = await mqtt.connectAsync(t.tcpUrl, { username: 'flood', password: key, reconnectPeriod: 0 });
    let acked = 0;
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const started = Date.now();
    for (let i = 0; i < 30; i++) {
      client.publish('health/flood', point(100 + i), { qos: 1 }, (err) => {
        if (!err) acked++;
      });
    }
    await closed;
    const elapsed = Date.now() - started;
    client.end(true);
    assert.ok(elapsed >= 1_000 && elapsed < 6_000, `disconnected after ${elapsed} ms`);
    assert.ok(acked >= 2 && acked < 30, `${acked} publishes acknowledged before the cut`);
    await waitFor(async () => (await count(t.sql, 'raw_ingestions', 'user_id = $1', [userId])) >= acked, 5_000, 'acknowledged publishes stored');
    assert.equal(await metric(/self_sensored_rate_limit_mqtt_disconnects_total (\d+)/), 1);
  });
});
