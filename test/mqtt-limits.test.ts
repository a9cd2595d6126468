import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { ConnectionLimiter } from '../broker/connection-limits.js';
import { LogThrottle } from '../broker/log-throttle.js';
import { effectiveKeepalive } from '../broker/session-policy.js';
import { ingestFilterProblems } from '../broker/status-topic.js';
import { compileTopicFilter, compileTopicFilterList, topicFiltersOverlap } from '../broker/topic-filter.js';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { appSettingsText, suggestedTopic } from '../src/onboarding.js';
import {
  closedWithin,
  connected,
  metricValue,
  mqttClient,
  refusal,
  startBroker,
  waitUntil,
  type BrokerFixture,
} from './helpers/mqtt-broker.js';

const limit = { timeout: 20_000 };
const alice = { password: 'alice-key' };
const bob = { password: 'bob-key' };

// ---------------------------------------------------------------- raw sockets

/** A TCP socket that connects and then sends only what the test writes. */
async function rawTcp(t: TestContext, port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  const socket = netConnect({ port, host: '127.0.0.1', localAddress });
  t.after(() => socket.destroy());
  socket.on('error', () => undefined); // a reset by the server is what some tests expect
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

/** A WebSocket whose upgrade completed and that sends nothing; null when the upgrade was refused (with its status). */
async function rawWs(t: TestContext, url: string, localAddress = '127.0.0.1'): Promise<{ ws: WebSocket | null; status: number | null }> {
  const ws = new WebSocket(url, 'mqtt', { localAddress });
  t.after(() => ws.terminate());
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, status: null }));
    ws.once('unexpected-response', (_req, res) => resolve({ ws: null, status: res.statusCode ?? null }));
    ws.once('error', reject);
  });
}

function socketClosed(socket: Socket | WebSocket, timeoutMs: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

async function openSockets(f: BrokerFixture): Promise<number> {
  return (await metricValue(f.metrics.mqttSockets, { transport: 'mqtt-tcp' })) + (await metricValue(f.metrics.mqttSockets, { transport: 'mqtt-ws' }));
}

function refusedLogLines(f: BrokerFixture, reason: string): string[] {
  return f.logs.filter((l) => l.includes('"msg":"mqtt: connection refused"') && l.includes(`"reason":"${reason}"`));
}

const CONNECT_PREFIX = Buffer.from([0x10, 0x20, 0x00, 0x04, 0x4d]); // a CONNECT header and the start of "MQTT"

// ---------------------------------------------------------------- connections in total

test('MQTT_MAX_CONNECTIONS: sockets over the cap are closed before a byte is read; clients inside keep working', limit, async (t) => {
  const f = await startBroker(t, { maxConnections: 3, connectTimeoutMs: 60_000 });
  const legit = await connected(mqttClient(t, f.tcpUrl, alice));
  const idle = [await rawTcp(t, f.tcpPort), await rawTcp(t, f.tcpPort)];
  await waitFor(async () => (await openSockets(f)) === 3, 'three open sockets');

  // A flood of 20 more: each is closed at once, and the log gets one line, not twenty.
  for (let i = 0; i < 20; i++) {
    const extra = await rawTcp(t, f.tcpPort);
    assert.ok((await socketClosed(extra, 2000)) < 2000);
  }
  const ws = await rawWs(t, f.wsUrl);
  assert.equal(ws.status, 503, 'a WebSocket upgrade over the cap is answered 503 without a handshake');
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-tcp', reason: 'max_connections' }), 20);
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-ws', reason: 'max_connections' }), 1);
  assert.equal(refusedLogLines(f, 'max_connections').length, 1, 'refusals are logged once per interval');
  assert.equal(await openSockets(f), 3);

  await legit.publishAsync('health/alice', '{"a":1}', { qos: 1 });
  assert.equal(f.sink.stored.length, 1, 'the client inside the cap still publishes');

  idle[0]!.destroy();
  await waitFor(async () => (await openSockets(f)) === 2, 'a freed slot');
  const late = await connected(mqttClient(t, f.wsUrl, bob));
  await late.publishAsync('health/bob', '{"b":1}', { qos: 1 });
  assert.equal(f.sink.stored.length, 2, 'a freed slot is usable again');
});

// ---------------------------------------------------------------- per remote address

test('MQTT_MAX_CONNECTIONS_PER_ADDRESS: 127.0.0.2 is capped over TCP and WebSocket, 127.0.0.3 is not', limit, async (t) => {
  const f = await startBroker(t, { maxConnectionsPerAddress: 2, connectTimeoutMs: 60_000 });
  await rawTcp(t, f.tcpPort, '127.0.0.2');
  const first = await rawWs(t, f.wsUrl, '127.0.0.2');
  assert.ok(first.ws, 'the second connection from 127.0.0.2 is inside the cap');

  const overTcp = mqttClient(t, f.tcpUrl, { ...alice, localAddress: '127.0.0.2' });
  assert.equal(await refusal(overTcp), 'closed', 'the third is closed without a CONNACK');
  assert.equal((await rawWs(t, f.wsUrl, '127.0.0.2')).status, 503);
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-tcp', reason: 'max_connections_per_address' }), 1);
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-ws', reason: 'max_connections_per_address' }), 1);

  for (const url of [f.tcpUrl, f.wsUrl]) {
    const other = await connected(mqttClient(t, url, { ...bob, localAddress: '127.0.0.3' }));
    await other.publishAsync('health/bob', '{"b":1}', { qos: 1 });
  }
  assert.equal(f.sink.stored.length, 2);
  assert.ok(f.sink.stored.every((r) => r.remoteAddress === '127.0.0.3'));
});

// ---------------------------------------------------------------- per key

test('MQTT_MAX_CONNECTIONS_PER_KEY: the third connection of a key gets CONNACK 3; other keys are unaffected', limit, async (t) => {
  const f = await startBroker(t, { maxConnectionsPerKey: 2 });
  const a1 = await connected(mqttClient(t, f.tcpUrl, alice));
  const a2 = await connected(mqttClient(t, f.wsUrl, alice));
  assert.equal(await refusal(mqttClient(t, f.tcpUrl, alice)), 3);
  assert.equal(await refusal(mqttClient(t, f.wsUrl, alice)), 3);
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-tcp', reason: 'max_connections_per_key' }), 1);
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-ws', reason: 'max_connections_per_key' }), 1);

  // The same user with another key, and another user, connect; the two inside the cap still work.
  await connected(mqttClient(t, f.tcpUrl, { password: 'alice-phone2-key' }));
  await connected(mqttClient(t, f.tcpUrl, bob));
  await a1.publishAsync('health/alice', '{"n":1}', { qos: 1 });
  await a2.publishAsync('health/alice', '{"n":2}', { qos: 1 });
  assert.equal(f.sink.stored.length, 2);

  await a1.endAsync();
  await waitFor(async () => (await metricValue(f.metrics.mqttConnections, { transport: 'mqtt-tcp' })) === 2, 'a1 gone');
  const a3 = await connected(mqttClient(t, f.tcpUrl, alice));
  await a3.publishAsync('health/alice', '{"n":3}', { qos: 1 });
  assert.equal(f.sink.stored.length, 3, 'a slot freed by a disconnect is usable again');
});

// ---------------------------------------------------------------- in-flight per client

test('MQTT_MAX_INFLIGHT_PER_CLIENT: 60 publishes sent without waiting are stored at most 4 at a time', limit, async (t) => {
  const f = await startBroker(t, { maxInflightPerClient: 4 });
  const a = await connected(mqttClient(t, f.wsUrl, alice));
  const b = await connected(mqttClient(t, f.tcpUrl, bob));
  const release = f.sink.hold('alicekey01');
  const acks = Array.from({ length: 60 }, (_, i) => a.publishAsync('health/alice', JSON.stringify({ i }), { qos: 1 }));
  await waitUntil(() => f.sink.running.get('alicekey01') === 4, 3000, 'four publishes being stored');
  await delay(300);
  assert.equal(f.sink.running.get('alicekey01'), 4, 'no fifth publish started while four are held');
  assert.equal(f.sink.callsOf('alicekey01'), 4);

  // Another client is not held up by alice's window.
  await b.publishAsync('health/bob', '{"b":1}', { qos: 1 });
  assert.equal(f.sink.stored.length, 1);

  release();
  await Promise.all(acks);
  const stored = f.sink.stored.filter((r) => r.identity.keyPrefix === 'alicekey01').map((r) => (JSON.parse(r.body.toString()) as { i: number }).i);
  assert.equal(stored.length, 60, 'every publish is stored and acknowledged in the end');
  assert.deepEqual(stored, [...stored].sort((x, y) => x - y), 'in the order they were sent');
  assert.equal(f.sink.peak.get('alicekey01'), 4);
  assert.ok((await metricValue(f.metrics.mqttPublishesHeld, { transport: 'mqtt-ws' })) >= 50);
});

// ---------------------------------------------------------------- keep-alive

test('keep-alive 0 and keep-alive over the maximum are clamped: silent clients are closed, pinging ones stay', limit, async (t) => {
  const f = await startBroker(t, { keepaliveMinSeconds: 1, keepaliveMaxSeconds: 2 });
  const pinging = await connected(mqttClient(t, f.tcpUrl, { ...alice, keepalive: 1 }));
  const never = await connected(mqttClient(t, f.tcpUrl, { ...bob, keepalive: 0 }));
  const tooLong = await connected(mqttClient(t, f.wsUrl, { password: 'alice-phone2-key', keepalive: 3600 }));
  // 1.5 × the 2 s maximum.
  const [neverAfter, tooLongAfter] = await Promise.all([closedWithin(never, 6000), closedWithin(tooLong, 6000)]);
  assert.ok(neverAfter >= 2500, `keep-alive 0 closed after ${neverAfter} ms`);
  assert.ok(tooLongAfter >= 2500, `keep-alive 3600 closed after ${tooLongAfter} ms`);
  assert.equal(pinging.connected, true, 'the client that pings within its keep-alive is still connected');
  await pinging.publishAsync('health/alice', '{"k":1}', { qos: 1 });
  assert.equal(f.sink.stored.length, 1);
});

// ---------------------------------------------------------------- CONNECT deadline

test('MQTT_CONNECT_TIMEOUT_MS: silent and half-sent CONNECTs are closed at the deadline over TCP and WebSocket', limit, async (t) => {
  const f = await startBroker(t, { connectTimeoutMs: 400 });
  const silentTcp = await rawTcp(t, f.tcpPort);
  const slowTcp = await rawTcp(t, f.tcpPort);
  slowTcp.write(CONNECT_PREFIX);
  const silentWs = (await rawWs(t, f.wsUrl)).ws!;
  const slowWs = (await rawWs(t, f.wsUrl)).ws!;
  slowWs.send(CONNECT_PREFIX);
  const legit = await connected(mqttClient(t, f.wsUrl, alice));

  const times = await Promise.all([socketClosed(silentTcp, 3000), socketClosed(slowTcp, 3000), socketClosed(silentWs, 3000), socketClosed(slowWs, 3000)]);
  for (const ms of times) assert.ok(ms >= 250 && ms < 2500, `closed after ${ms} ms`);
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-tcp', reason: 'connect_timeout' }), 2);
  assert.equal(await metricValue(f.metrics.mqttRefused, { transport: 'mqtt-ws', reason: 'connect_timeout' }), 2);

  // The deadline is for CONNECT only: a connected client outlives it.
  await delay(500);
  assert.equal(legit.connected, true);
  await legit.publishAsync('health/alice', '{"c":1}', { qos: 1 });
  assert.equal(f.sink.stored.length, 1);
});

// ---------------------------------------------------------------- pure parts

test('ConnectionLimiter counts per address and per key and frees slots once', limit, () => {
  const limiter = new ConnectionLimiter({ maxConnections: 3, maxConnectionsPerAddress: 2, maxConnectionsPerKey: 1 });
  const a = limiter.admitSocket('10.0.0.1');
  const b = limiter.admitSocket('10.0.0.1');
  assert.ok(a.ok && b.ok);
  assert.deepEqual(limiter.admitSocket('10.0.0.1'), { ok: false, reason: 'max_connections_per_address' });
  const c = limiter.admitSocket('10.0.0.2');
  assert.ok(c.ok);
  assert.deepEqual(limiter.admitSocket('10.0.0.3'), { ok: false, reason: 'max_connections' });
  if (a.ok) {
    a.release();
    a.release(); // a second release must not free a slot that is not ours
  }
  assert.equal(limiter.open, 2);
  assert.ok(limiter.admitSocket('10.0.0.1').ok);
  assert.deepEqual(limiter.admitSocket('10.0.0.4'), { ok: false, reason: 'max_connections' });
  const k = limiter.admitKey('k-1');
  assert.ok(k.ok);
  assert.deepEqual(limiter.admitKey('k-1'), { ok: false, reason: 'max_connections_per_key' });
  assert.ok(limiter.admitKey('k-2').ok);
  if (k.ok) k.release();
  assert.ok(limiter.admitKey('k-1').ok);
});

test('LogThrottle: one line per kind and interval, then the count of what was left out', limit, () => {
  const lines: string[] = [];
  let now = 0;
  const throttle = new LogThrottle(createLogger('warn', { write: (l: string) => void lines.push(l) }), 1000, () => now);
  for (let i = 0; i < 100; i++) throttle.warn('flood', { i }, 'refused');
  throttle.warn('other', {}, 'refused');
  assert.equal(lines.length, 2);
  now = 1500;
  throttle.warn('flood', {}, 'refused');
  assert.equal(lines.length, 3);
  assert.equal((JSON.parse(lines[2]!) as { suppressedSinceLastLine?: number }).suppressedSinceLastLine, 99);
});

test('keep-alive clamping', limit, () => {
  const bounds = { minSeconds: 10, maxSeconds: 300 };
  assert.equal(effectiveKeepalive(0, bounds), 300);
  assert.equal(effectiveKeepalive(undefined, bounds), 300);
  assert.equal(effectiveKeepalive(65_535, bounds), 300);
  assert.equal(effectiveKeepalive(60, bounds), 60);
  assert.equal(effectiveKeepalive(1, bounds), 10);
});

test('ingest filters: a list, and never one that reaches the status topics or $ topics', limit, () => {
  const matches = compileTopicFilterList('health/#, hae/+/export');
  assert.equal(matches('health/alice'), true);
  assert.equal(matches('hae/phone/export'), true);
  assert.equal(matches('hae/phone/other'), false);
  assert.equal(matches('self-sensored/status/alicekey01'), false);
  // The matcher remembers its last topic: the same topic again, then others, answer as before.
  for (const [topic, expected] of [['health/a', true], ['health/a', true], ['hae/a/other', false], ['hae/a/other', false], ['health/a', true], ['$SYS/x', false]] as const) {
    assert.equal(matches(topic), expected, topic);
  }
  const compiled = compileTopicFilter('+/x');
  assert.deepEqual([compiled('a/x'), compiled('$SYS/x'), compiled('a/x/y')], [true, false, false], 'a compiled filter matches as topicMatchesFilter does');
  assert.deepEqual(ingestFilterProblems('health/#'), []);
  assert.deepEqual(ingestFilterProblems('health/#,hae/#'), []);
  for (const bad of ['#', '+/+/+', 'self-sensored/#', 'self-sensored/status/+', '+/status/#', '$SYS/#', 'health/#/x', ' , ']) {
    assert.ok(ingestFilterProblems(bad).length > 0, `${bad} must be refused`);
  }
  const overlaps: Array<[string, string, boolean]> = [
    ['health/#', 'health', true],
    ['a/+', 'a/b/c', false],
    ['a/#', 'a/b/c', true],
    ['+/b', 'a/+', true],
    ['a/b', 'a/c', false],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
  ];
  for (const [x, y, expected] of overlaps) {
    assert.equal(topicFiltersOverlap(x, y), expected, `${x} vs ${y}`);
    assert.equal(topicFiltersOverlap(y, x), expected, `${y} vs ${x}`);
  }
});

test('MQTT settings: the limits load, an ingest filter over the status topics and min > max are refused', limit, () => {
  const c = loadConfig({ MQTT_INGEST_TOPIC_FILTER: 'health/#,hae/#', MQTT_MAX_CONNECTIONS_PER_KEY: '3', MQTT_KEEPALIVE_MAX_SECONDS: '120' });
  assert.equal(c.mqtt.maxConnectionsPerKey, 3);
  assert.equal(c.mqtt.keepaliveMaxSeconds, 120);
  assert.equal(c.mqtt.maxConnections, 1000);
  assert.throws(() => loadConfig({ MQTT_INGEST_TOPIC_FILTER: '#' }), /MQTT_INGEST_TOPIC_FILTER/);
  assert.throws(() => loadConfig({ MQTT_KEEPALIVE_MIN_SECONDS: '60', MQTT_KEEPALIVE_MAX_SECONDS: '30' }), /MQTT_KEEPALIVE_MIN_SECONDS/);
});

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

test('the printed app settings name the key\'s status topic and a topic the ingest filter accepts', limit, () => {
  const key = `ss_abcdefgh23_${'A'.repeat(43)}`;
  const text = appSettingsText({ host: 'h', httpPort: 8080, wsPath: '/mqtt', tcpPort: 1884, topic: suggestedTopic('health/#,hae/#', 'al/ice+1'), userName: 'alice', key });
  assert.match(text, /subscribe to self-sensored\/status\/abcdefgh23\)/);
  assert.match(text, /Topic: +health\/al_ice_1$/m);
  assert.equal(compileTopicFilterList('health/#,hae/#')(suggestedTopic('health/#,hae/#', 'al/ice+1')), true);
});
