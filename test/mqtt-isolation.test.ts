import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import { parseKey } from '../src/auth/key-format.js';
import { count, startTestApp, type TestApp } from './helpers/app.js';
import { expectedCounts, readFixture, sampleTableByLabel } from './helpers/fixtures.js';
import { connected, metricValue, mqttClient, startBroker, subackCodes } from './helpers/mqtt-broker.js';
import { connectMqtt as connect } from './helpers/mqtt-connect.js';

const limit = { timeout: 20_000 };

interface Status {
  status: string;
  ingestionId?: string;
  duplicatePayload?: boolean;
  topic: string | null;
  receivedAt: string;
  counts?: Record<string, { received: number; inserted: number; updated: number; unchanged: number; rejected: number }>;
  rejected?: number;
  position?: number | null;
  error?: string;
}

function collect(client: MqttClient): Array<{ topic: string; body: string }> {
  const got: Array<{ topic: string; body: string }> = [];
  client.on('message', (topic, payload) => got.push({ topic, body: payload.toString('utf8') }));
  return got;
}

function nextMessage(client: MqttClient, timeoutMs = 15_000): Promise<{ topic: string; status: Status }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message arrived')), timeoutMs);
    client.once('message', (topic, payload) => {
      clearTimeout(timer);
      resolve({ topic, status: JSON.parse(payload.toString('utf8')) as Status });
    });
  });
}

// ---------------------------------------------------------------- the broker alone

test('subscriptions: only the own status topic, spelled out; everything else gets SUBACK 0x80', limit, async (t) => {
  const f = await startBroker(t);
  const alice = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key' }));
  assert.deepEqual(await subackCodes(alice, ['self-sensored/status/alicekey01']), [1]);
  const refused = [
    '#',
    '$SYS/#',
    '+/status/alicekey01',
    'self-sensored/status/+',
    'self-sensored/status/#',
    'self-sensored/#',
    'self-sensored/status/bobkey0001',
    'self-sensored/status/alicekey02', // the same user's other key
    'health/#',
  ];
  assert.deepEqual(await subackCodes(alice, refused), refused.map(() => 128));
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-tcp', reason: 'subscribe' }), refused.length);
  const refusalLines = f.logs.filter((l) => l.includes('mqtt: subscription refused'));
  assert.equal(refusalLines.length, 1, 'a burst of refused subscriptions is logged once');
});

test('status messages reach only the connections of the key that published; client publishes reach no one', limit, async (t) => {
  const f = await startBroker(t);
  const aliceListener = await connected(mqttClient(t, f.wsUrl, { password: 'alice-key', clientId: 'alice-listener' }));
  assert.deepEqual(await subackCodes(aliceListener, ['self-sensored/status/alicekey01']), [1]);
  const aliceGot = collect(aliceListener);
  const bob = await connected(mqttClient(t, f.tcpUrl, { password: 'bob-key' }));
  assert.deepEqual(await subackCodes(bob, ['#', 'self-sensored/status/alicekey01', 'self-sensored/status/bobkey0001']), [128, 128, 1]);
  const bobGot = collect(bob);
  const alicePhone2 = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-phone2-key' }));
  assert.deepEqual(await subackCodes(alicePhone2, ['self-sensored/status/alicekey02']), [1]);
  const phone2Got = collect(alicePhone2);

  // alice's phone publishes; the status arrives on her listener (another connection of the same key).
  const alicePhone = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'alice-phone' }));
  await alicePhone.publishAsync('health/alice', '{"data":{}}', { qos: 1 });
  await waitForLength(aliceGot, 1);
  const status = JSON.parse(aliceGot[0]!.body) as Status;
  assert.equal(aliceGot[0]!.topic, 'self-sensored/status/alicekey01');
  assert.equal(status.status, 'processed');
  assert.equal(status.ingestionId, 'ing-1');
  assert.equal(status.topic, 'health/alice');
  assert.deepEqual(status.counts, { quantity: { received: 2, inserted: 2, updated: 0, unchanged: 0, rejected: 0 } });
  assert.equal(status.rejected, 0);

  // bob and the other key of alice try to reach alice: nothing is stored, nothing is delivered.
  await bob.publishAsync('self-sensored/status/alicekey01', '{"status":"processed","forged":true}', { qos: 1 });
  await alicePhone2.publishAsync('self-sensored/status/alicekey01', '{"forged":true}', { qos: 1 });
  await alicePhone.publishAsync('self-sensored/status/alicekey01', '{"forged":"by the owner"}', { qos: 1 });
  await bob.publishAsync('health/bob', '{"data":{}}', { qos: 1 });
  await waitForLength(bobGot, 1);
  await delay(200);
  assert.equal(aliceGot.length, 1, `alice received ${JSON.stringify(aliceGot)}`);
  assert.equal(bobGot.length, 1);
  assert.equal(bobGot[0]!.topic, 'self-sensored/status/bobkey0001');
  assert.deepEqual(phone2Got, [], 'the same user with another key sees nothing of the first key');
  assert.deepEqual(
    f.sink.stored.map((r) => r.topic),
    ['health/alice', 'health/bob'],
    'publishes to status topics are not stored',
  );
  assert.equal(await metricValue(f.metrics.mqttStatusMessages, { status: 'processed' }), 2);
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-tcp', reason: 'topic' }), 3);
});

test('sessions are clean: nothing is queued for a disconnected subscriber', limit, async (t) => {
  const f = await startBroker(t);
  const sessionPresent: boolean[] = [];
  const first = mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'persistent', clean: false });
  first.on('connect', (connack) => sessionPresent.push(connack.sessionPresent));
  await connected(first);
  assert.deepEqual(await subackCodes(first, ['self-sensored/status/alicekey01']), [1]);
  await first.endAsync();
  const publisher = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key' }));
  await publisher.publishAsync('health/alice', '{}', { qos: 1 });
  await delay(100);
  const again = mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'persistent', clean: false });
  again.on('connect', (connack) => sessionPresent.push(connack.sessionPresent));
  const got = collect(again);
  await connected(again);
  await delay(300);
  assert.deepEqual(sessionPresent, [false, false]);
  assert.deepEqual(got, [], 'no status was kept for the offline session');
});

async function waitForLength(list: unknown[], n: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (list.length < n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} messages, got ${list.length}`);
    await delay(10);
  }
}

// ---------------------------------------------------------------- the whole daemon


describe('the status topic against PostgreSQL', () => {
  let app: TestApp;
  let aliceKey: string;
  let bobKey: string;
  const clients: MqttClient[] = [];

  before(async () => {
    app = await startTestApp();
    aliceKey = await app.createKey('alice');
    bobKey = await app.createKey('bob');
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await app?.close();
  });

  test('alice publishes a fixture and receives its counts; bob receives nothing and cannot write to her topic', async () => {
    const alicePrefix = parseKey(aliceKey)!.prefix;
    const aliceTopic = `self-sensored/status/${alicePrefix}`;
    const alice = await connect(app.wsUrl, aliceKey);
    const bob = await connect(app.tcpUrl, bobKey);
    clients.push(alice, bob);
    assert.deepEqual(await subackCodes(alice, [aliceTopic]), [1]);
    assert.deepEqual(await subackCodes(bob, ['#', aliceTopic, '$SYS/#']), [128, 128, 128]);
    const bobGot = collect(bob);

    const bytes = readFixture('composed/hae-small.json');
    const expected = expectedCounts(JSON.parse(bytes.toString('utf8')) as Record<string, unknown>);
    const arrived = nextMessage(alice);
    await alice.publishAsync('health/alice', bytes, { qos: 1 });
    const { topic, status } = await arrived;
    assert.equal(topic, aliceTopic);
    assert.equal(status.status, 'processed');
    assert.equal(status.topic, 'health/alice');
    const rows = await app.sql.query<{ id: string }>(`SELECT id FROM raw_ingestions WHERE topic = 'health/alice'`);
    assert.deepEqual(rows.rows.map((r) => String(r.id)), [status.ingestionId]);
    for (const [label, table] of Object.entries(sampleTableByLabel) as Array<[keyof typeof sampleTableByLabel, string]>) {
      assert.equal(status.counts?.[label]?.inserted ?? 0, expected[label], `${label} in the status message`);
      assert.equal(await count(app.sql, table, 'ingestion_id = $1', [status.ingestionId]), expected[label], `${label} rows in ${table}`);
    }
    const rejectedInDb = await app.sql.query<{ n: number }>(`SELECT coalesce(jsonb_array_length(rejections), 0) AS n FROM raw_ingestions WHERE id = $1`, [status.ingestionId]);
    assert.equal(status.rejected, rejectedInDb.rows[0]!.n);
    assert.ok(!JSON.stringify(status).includes('"qty"'), 'no sample values in the status');

    // bob forges a status for alice: not delivered, not stored.
    const aliceGot = collect(alice);
    await bob.publishAsync(aliceTopic, '{"status":"processed","ingestionId":"forged"}', { qos: 1 });
    await delay(300);
    assert.deepEqual(aliceGot, []);
    assert.deepEqual(bobGot, []);
    assert.equal(await count(app.sql, 'raw_ingestions', 'topic = $1', [aliceTopic]), 0);
  });

  test('invalid JSON: the status says where, without quoting the payload', async () => {
    const alice = await connect(app.tcpUrl, aliceKey);
    clients.push(alice);
    await alice.subscribeAsync(`self-sensored/status/${parseKey(aliceKey)!.prefix}`, { qos: 1 });
    const arrived = nextMessage(alice);
    await alice.publishAsync('health/alice', '{"data": secret-value}', { qos: 1 });
    const { status } = await arrived;
    assert.equal(status.status, 'invalid_json');
    assert.equal(typeof status.position, 'number');
    assert.ok(!JSON.stringify(status).includes('secret'), 'the payload is not quoted');
  });
});
