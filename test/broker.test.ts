import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { IClientOptions, MqttClient } from 'mqtt';
import { WebSocket } from 'ws';
import type { Client as AedesClient, PublishPacket } from 'aedes';
import type { MqttBrokerOptions } from '../broker/broker.js';
import { createBrokerHooks } from '../broker/hooks.js';
import { InflightTracker } from '../broker/inflight.js';
import { PacketSizeGuard } from '../broker/packet-size-guard.js';
import { compileTopicFilter, isValidTopicFilter, topicMatchesFilter } from '../broker/topic-filter.js';
import type {
  AcceptOutcome,
  AuthContext,
  AuthOutcome,
  Authenticator,
  Identity,
  IngestRequest,
  IngestSink,
} from '../broker/types.js';
import { createLogger } from '../src/log.js';
import { mqttClient, startBroker, waitUntil as waitFor, type BrokerFixture } from './helpers/mqtt-broker.js';
import { Metrics } from '../src/metrics.js';

// A hung wait should fail its test, not the whole run.
const limit = { timeout: 10_000 };

// ---------------------------------------------------------------- fakes of OUR interfaces

const alice: Identity = { userId: 'u-1', userName: 'alice', keyId: 'k-1', keyPrefix: 'good', scopes: ['ingest'] };

class FakeAuthenticator implements Authenticator {
  readonly contexts: AuthContext[] = [];
  async verify(presentedKey: string | undefined, context: AuthContext): Promise<AuthOutcome> {
    this.contexts.push(context);
    if (presentedKey === undefined) return { ok: false, reason: 'missing' };
    if (presentedKey === 'good-key') return { ok: true, identity: alice };
    if (presentedKey === 'revoked-key') return { ok: false, reason: 'revoked' };
    if (presentedKey === 'db-down-key') throw new Error('connect ECONNREFUSED');
    return { ok: false, reason: 'unknown_key' };
  }
}

class FakeSink implements IngestSink {
  readonly stored: IngestRequest[] = [];
  readonly storedAt: number[] = [];
  calls = 0;
  delayMs = 0;
  rejectNext = 0;
  /** When set, accept() waits for it: lets a test hold a write open. */
  hold: Promise<void> | null = null;

  async accept(request: IngestRequest): Promise<AcceptOutcome> {
    this.calls++;
    const reject = this.rejectNext > 0;
    if (reject) this.rejectNext--;
    if (this.delayMs > 0) await delay(this.delayMs);
    if (this.hold) await this.hold;
    if (reject) throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
    this.stored.push(request);
    this.storedAt.push(performance.now());
    const ingestionId = `ing-${this.stored.length}`;
    return { kind: 'stored', ingestionId, duplicatePayload: false, processed: Promise.resolve({ ingestionId, error: 'not processed in tests' }) };
  }
}

// ---------------------------------------------------------------- fixture

interface Fixture extends BrokerFixture<FakeSink> {
  auth: FakeAuthenticator;
}

async function startFixture(t: TestContext, overrides: Partial<MqttBrokerOptions> = {}): Promise<Fixture> {
  const auth = new FakeAuthenticator();
  const f = await startBroker(t, { maxPacketBytes: 128 * 1024 * 1024, ...overrides }, { sink: new FakeSink(), authenticator: auth });
  return { ...f, auth };
}

/** Connects and waits for CONNACK; the client is ended after the test. */
async function connectClient(t: TestContext, url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = mqttClient(t, url, { password: 'good-key', ...opts });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

/** Connects expecting a refusal; resolves with the CONNACK return code. */
async function refusedCode(t: TestContext, url: string, opts: IClientOptions): Promise<number | undefined> {
  const client = mqttClient(t, url, { username: undefined, ...opts });
  return new Promise((resolve, reject) => {
    client.once('connect', () => reject(new Error('connection unexpectedly accepted')));
    client.once('error', (err) => resolve((err as { code?: number }).code));
  });
}

function closed(client: MqttClient, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connection was not closed')), timeoutMs);
    client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}


/** Narrow view of a prom-client Counter/Gauge, enough to read one labelled value. */
interface Readable {
  get(): Promise<{ values: Array<{ labels: Partial<Record<string, string | number>>; value: number }> }>;
}

async function counterValue(metrics: Metrics, name: 'mqttRefused' | 'payloads' | 'mqttConnections', labels: Record<string, string>): Promise<number> {
  const metric: Readable = metrics[name];
  const { values } = await metric.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return hit?.value ?? 0;
}

function assertNoSecretsLogged(logs: string[]): void {
  const all = logs.join('');
  for (const secret of ['good-key', 'revoked-key', 'wrong-key', 'db-down-key']) {
    assert.ok(!all.includes(secret), `log output contains the secret ${secret}`);
  }
}

// ---------------------------------------------------------------- end-to-end over both transports

for (const transport of ['mqtt-ws', 'mqtt-tcp'] as const) {
  test(`QoS 1 over ${transport} lands in the sink with identity, topic, bytes and transport`, limit, async (t) => {
    const f = await startFixture(t);
    const client = await connectClient(t, transport === 'mqtt-ws' ? f.wsUrl : f.tcpUrl, { clientId: `phone-${transport}` });
    const body = Buffer.from(JSON.stringify({ data: { metrics: [{ name: 'heart_rate', data: [{ qty: 61 }] }] } }));
    await client.publishAsync('health/alice/iphone', body, { qos: 1 });
    assert.equal(f.sink.stored.length, 1, 'stored before the PUBACK arrived');
    const req = f.sink.stored[0]!;
    assert.deepEqual(req.identity, alice);
    assert.equal(req.transport, transport);
    assert.equal(req.topic, 'health/alice/iphone');
    assert.ok(req.body.equals(body));
    assert.equal(req.clientId, `phone-${transport}`);
    assert.equal(req.remoteAddress, '127.0.0.1');
    assert.ok(req.receivedAt instanceof Date);
    assert.deepEqual(f.auth.contexts.at(-1), { transport, remoteAddress: '127.0.0.1', clientId: `phone-${transport}`, requiredScope: 'ingest' });
    assert.equal(await counterValue(f.metrics, 'mqttConnections', { transport }), 1);
    client.end();
    await waitFor(() => f.logs.some((l) => l.includes('client disconnected')), 2000, 'disconnect log');
    assert.equal(await counterValue(f.metrics, 'mqttConnections', { transport }), 0);
    assertNoSecretsLogged(f.logs);
  });
}

test('the PUBACK waits until accept() has resolved', limit, async (t) => {
  const f = await startFixture(t);
  f.sink.delayMs = 300;
  const client = await connectClient(t, f.wsUrl);
  const published = performance.now();
  await client.publishAsync('health/x', '{"data":{}}', { qos: 1 });
  const acked = performance.now();
  assert.equal(f.sink.storedAt.length, 1);
  assert.ok(acked - published >= 295, `PUBACK after ${Math.round(acked - published)} ms, expected >= 300`);
  assert.ok(acked >= f.sink.storedAt[0]!, 'PUBACK arrived before accept() resolved');
});

test('QoS 0 reaches the sink', limit, async (t) => {
  const f = await startFixture(t);
  const client = await connectClient(t, f.tcpUrl);
  await client.publishAsync('health/q0', '{"a":0}', { qos: 0 });
  await waitFor(() => f.sink.stored.length === 1, 2000, 'QoS 0 payload');
  assert.equal(f.sink.stored[0]!.body.toString(), '{"a":0}');
});

test('a sink failure withholds the PUBACK; mqtt.js reconnects, re-sends and it lands', limit, async (t) => {
  const f = await startFixture(t);
  f.sink.rejectNext = 1;
  const client = await connectClient(t, f.wsUrl, { reconnectPeriod: 100 });
  let closes = 0;
  client.on('close', () => closes++);
  await client.publishAsync('health/retry', '{"n":1}', { qos: 1 });
  assert.equal(f.sink.calls, 2, 'accept() called for the first attempt and the re-send');
  assert.equal(f.sink.stored.length, 1);
  assert.equal(f.sink.stored[0]!.body.toString(), '{"n":1}');
  assert.ok(closes >= 1, 'the client was disconnected after the failure');
  assert.ok(f.logs.some((l) => l.includes('withholding the ack')));
});

test('CONNACK codes: bad key 4, no password 4, revoked 5, authenticator down 3', limit, async (t) => {
  const f = await startFixture(t);
  assert.equal(await refusedCode(t, f.wsUrl, { username: 'x', password: 'wrong-key' }), 4);
  assert.equal(await refusedCode(t, f.tcpUrl, { username: 'x' }), 4);
  assert.equal(await refusedCode(t, f.wsUrl, {}), 4);
  assert.equal(await refusedCode(t, f.tcpUrl, { username: 'x', password: 'revoked-key' }), 5);
  assert.equal(await refusedCode(t, f.wsUrl, { username: 'x', password: 'db-down-key' }), 3);
  const refusals = f.logs.filter((l) => l.includes('"msg":"mqtt: connection refused"'));
  assert.equal(refusals.length, 5);
  assert.ok(refusals.some((l) => l.includes('"reason":"revoked"') && l.includes('"transport":"mqtt-tcp"') && l.includes('"remoteAddress":"127.0.0.1"')));
  assert.ok(refusals.every((l) => l.includes('"level":"warn"') && l.includes('"clientId"')));
  assertNoSecretsLogged(f.logs);
  assert.equal(await counterValue(f.metrics, 'mqttConnections', { transport: 'mqtt-ws' }), 0);
});

test('subscriptions are refused and nothing is forwarded between clients', limit, async (t) => {
  const f = await startFixture(t);
  const listener = await connectClient(t, f.wsUrl, { clientId: 'listener' });
  // mqtt.js turns a 0x80 grant into an error; read the SUBACK itself.
  const suback = new Promise<number[]>((resolve) =>
    listener.on('packetreceive', (p) => p.cmd === 'suback' && resolve(p.granted.map((g) => (typeof g === 'number' ? g : -1)))),
  );
  await assert.rejects(listener.subscribeAsync('#', { qos: 1 }));
  assert.deepEqual(await suback, [128]);
  const received: string[] = [];
  listener.on('message', (topic) => received.push(topic));
  const publisher = await connectClient(t, f.tcpUrl, { clientId: 'publisher' });
  await publisher.publishAsync('health/secret', '{"hr":70}', { qos: 1 });
  await delay(200);
  assert.deepEqual(received, []);
  assert.equal(f.sink.stored.length, 1);
  assert.equal(await counterValue(f.metrics, 'mqttRefused', { transport: 'mqtt-ws', reason: 'subscribe' }), 1);
});

test('a publish outside the ingest filter is acknowledged but not stored; $ topics disconnect', limit, async (t) => {
  const f = await startFixture(t);
  const client = await connectClient(t, f.tcpUrl);
  await client.publishAsync('weather/today', '{"t":3}', { qos: 1 });
  assert.equal(f.sink.calls, 0);
  assert.equal(await counterValue(f.metrics, 'mqttRefused', { transport: 'mqtt-tcp', reason: 'topic' }), 1);
  assert.equal(await counterValue(f.metrics, 'payloads', { transport: 'mqtt-tcp', outcome: 'topic_refused' }), 1);
  // 'health' itself matches 'health/#' (the parent level), as MQTT specifies.
  await client.publishAsync('health', '{}', { qos: 1 });
  assert.equal(f.sink.stored.length, 1);

  const wasClosed = closed(client);
  client.publish('$SYS/fake', '{}', { qos: 1 });
  await wasClosed;
  assert.equal(f.sink.calls, 1);
});

test('retain is forced off before the payload goes anywhere', limit, async () => {
  const sink = new FakeSink();
  const metrics = new Metrics();
  const hooks = createBrokerHooks({
    logger: createLogger('silent'),
    metrics,
    authenticator: new FakeAuthenticator(),
    sink,
    matchesIngestTopic: compileTopicFilter('health/#'),
    inflight: new InflightTracker(),
    connectionInfo: () => ({ transport: 'mqtt-tcp', remoteAddress: '10.0.0.1' }),
    isDraining: () => false,
    clientHoldingId: () => undefined,
  });
  // Narrow stand-ins: the hooks only read `id` (and `conn` through connectionInfo).
  const client = { id: 'c1' } as unknown as AedesClient;
  await new Promise<void>((resolve, reject) =>
    hooks.authenticate(client, 'u', Buffer.from('good-key'), (err, ok) => (err || !ok ? reject(err) : resolve())),
  );
  const packet: PublishPacket = { cmd: 'publish', topic: 'health/r', payload: Buffer.from('{}'), qos: 1, dup: false, retain: true, messageId: 7 };
  await new Promise<void>((resolve, reject) => hooks.authorizePublish(client, packet, (err) => (err ? reject(err) : resolve())));
  assert.equal(packet.retain, false, 'the packet Aedes goes on to publish must not be retained');
  assert.equal(sink.stored.length, 1);
});

test('a retained publish over the wire is stored once and acked (retain flag dropped)', limit, async (t) => {
  const f = await startFixture(t);
  const client = await connectClient(t, f.wsUrl);
  await client.publishAsync('health/retained', '{"r":1}', { qos: 1, retain: true });
  assert.equal(f.sink.stored.length, 1);
});

// ---------------------------------------------------------------- packet-size guard end-to-end

for (const transport of ['mqtt-ws', 'mqtt-tcp'] as const) {
  test(`oversized PUBLISH over ${transport} closes the connection and stores nothing`, limit, async (t) => {
    const f = await startFixture(t, { maxPacketBytes: 64 * 1024 });
    const url = transport === 'mqtt-ws' ? f.wsUrl : f.tcpUrl;
    const big = await connectClient(t, url, { clientId: 'big' });
    const normal = await connectClient(t, url, { clientId: 'normal' });
    const wasClosed = closed(big);
    big.publish('health/big', Buffer.alloc(200 * 1024, 0x20), { qos: 1 });
    await wasClosed;
    await normal.publishAsync('health/small', Buffer.alloc(10 * 1024, 0x20), { qos: 1 });
    assert.equal(f.sink.stored.length, 1);
    assert.equal(f.sink.stored[0]!.topic, 'health/small');
    if (transport === 'mqtt-tcp') {
      // Nothing but the guard limits TCP, so it must have been the guard.
      assert.equal(await counterValue(f.metrics, 'mqttRefused', { transport, reason: 'packet_too_large' }), 1);
    }
  });
}

test('over ws, a PUBLISH split into small WebSocket messages is cut by the guard, not by maxPayload', limit, async (t) => {
  const f = await startFixture(t, { maxPacketBytes: 64 * 1024 });
  const ws = new WebSocket(f.wsUrl, 'mqtt');
  t.after(() => ws.terminate());
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  // Aedes writes the CONNACK in pieces, one ws message each: gather 4 bytes.
  const connack = new Promise<Buffer>((resolve) => {
    let got = Buffer.alloc(0);
    const onMessage = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      if (got.length < 4) return;
      ws.off('message', onMessage);
      resolve(got);
    };
    ws.on('message', onMessage);
  });
  ws.send(connectPacket('raw', 'good-key'));
  assert.deepEqual([...(await connack)], [0x20, 0x02, 0x00, 0x00]);
  const wsClosed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  const topic = Buffer.from('health/split');
  const bodyLength = 200 * 1024;
  ws.send(Buffer.concat([Buffer.from([0x30]), encodeLength(2 + topic.length + bodyLength), Buffer.from([0, topic.length]), topic]));
  let sent = 0;
  const chunk = Buffer.alloc(8 * 1024, 0x20);
  while (sent < bodyLength && ws.readyState === WebSocket.OPEN) {
    ws.send(chunk);
    sent += chunk.length;
    await delay(5);
  }
  await wsClosed;
  assert.ok(sent < bodyLength, `the guard let ${sent} bytes through`);
  assert.equal(await counterValue(f.metrics, 'mqttRefused', { transport: 'mqtt-ws', reason: 'packet_too_large' }), 1);
  assert.equal(f.sink.calls, 0);
});

test('an unauthenticated peer cannot send a large CONNECT', limit, async (t) => {
  const f = await startFixture(t);
  const socket = netConnect(f.tcpPort, '127.0.0.1');
  t.after(() => socket.destroy());
  await new Promise((resolve) => socket.once('connect', resolve));
  const wasClosed = new Promise((resolve) => socket.once('close', resolve));
  socket.write(Buffer.concat([Buffer.from([0x10]), encodeLength(1024 * 1024)]));
  await wasClosed;
  assert.equal(await counterValue(f.metrics, 'mqttRefused', { transport: 'mqtt-tcp', reason: 'packet_too_large' }), 1);
});

// ---------------------------------------------------------------- other clients, lifecycle

test('mosquitto_pub publishes over TCP with the key as password', limit, async (t) => {
  const bin = '/usr/bin/mosquitto_pub';
  if (!existsSync(bin)) return t.skip(`${bin} is not installed`);
  const f = await startFixture(t);
  await new Promise<void>((resolve, reject) =>
    execFile(
      bin,
      ['-h', '127.0.0.1', '-p', String(f.tcpPort), '-u', 'x', '-P', 'good-key', '-q', '1', '-i', 'mosq', '-t', 'health/mosq', '-m', '{"m":1}'],
      { timeout: 5000 },
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  assert.equal(f.sink.stored.length, 1);
  assert.equal(f.sink.stored[0]!.clientId, 'mosq');
  assert.equal(f.sink.stored[0]!.body.toString(), '{"m":1}');
});

test('tcpEnabled false: no TCP listener, WebSocket still works', limit, async (t) => {
  const f = await startFixture(t, { tcpEnabled: false });
  assert.equal(f.broker.tcpAddress, null);
  assert.equal(f.broker.isReady(), true);
  const client = await connectClient(t, f.wsUrl);
  await client.publishAsync('health/ws-only', '{}', { qos: 1 });
  assert.equal(f.sink.stored.length, 1);
});

test('stopAccepting refuses new connections while existing ones keep working', limit, async (t) => {
  const f = await startFixture(t);
  const client = await connectClient(t, f.wsUrl);
  await f.broker.stopAccepting();
  assert.equal(f.broker.isReady(), false);
  assert.equal(f.broker.tcpAddress, null);
  await client.publishAsync('health/after', '{}', { qos: 1 });
  assert.equal(f.sink.stored.length, 1);
  const tcpErr = await new Promise<NodeJS.ErrnoException>((resolve) => netConnect(f.tcpPort, '127.0.0.1').once('error', resolve));
  assert.equal(tcpErr.code, 'ECONNREFUSED');
  const ws = new WebSocket(f.wsUrl, 'mqtt');
  const status = await new Promise<number | undefined>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode)).once('error', () => resolve(undefined)));
  assert.equal(status, 503);
});

test('stop() waits for a pending accept(), lets its PUBACK out, then closes', limit, async (t) => {
  const f = await startFixture(t);
  f.sink.delayMs = 400;
  const client = await connectClient(t, f.tcpUrl);
  const wasClosed = closed(client);
  const ack = client.publishAsync('health/late', '{}', { qos: 1 });
  await waitFor(() => f.sink.calls === 1, 2000, 'accept() call');
  await f.broker.stop();
  const stoppedAt = performance.now();
  assert.equal(f.sink.storedAt.length, 1);
  assert.ok(stoppedAt >= f.sink.storedAt[0]!, 'stop() returned before accept() resolved');
  await ack; // the PUBACK made it out before the connection was closed
  await wasClosed;
  assert.equal(f.broker.isReady(), false);
  await f.broker.stop(); // idempotent
});

test('stop() gives up on a stuck accept() after drainTimeoutMs', limit, async (t) => {
  const f = await startFixture(t, { drainTimeoutMs: 200 });
  let release = (): void => {};
  f.sink.hold = new Promise<void>((resolve) => (release = resolve));
  t.after(() => release());
  const client = await connectClient(t, f.wsUrl);
  const wasClosed = closed(client);
  client.publish('health/stuck', '{}', { qos: 1 });
  await waitFor(() => f.sink.calls === 1, 2000, 'accept() call');
  const began = performance.now();
  await f.broker.stop();
  const took = performance.now() - began;
  assert.ok(took >= 190 && took < 1500, `stop took ${Math.round(took)} ms`);
  await wasClosed;
  assert.ok(f.logs.some((l) => l.includes('their acks are lost')));
});

// ---------------------------------------------------------------- pure units

test('the in-flight count: each write counted out once, idle waiters woken at zero or told of the time-out', async () => {
  const inflight = new InflightTracker();
  assert.equal(await inflight.waitIdle(10), true, 'nothing pending: idle at once');
  const endFirst = inflight.begin();
  const endSecond = inflight.begin();
  assert.equal(await inflight.waitIdle(20), false, 'two pending: the wait times out');
  const idle = inflight.waitIdle(5_000);
  endFirst();
  endFirst(); // a second call must not count the other write out
  assert.equal(inflight.size, 1);
  endSecond();
  assert.equal(inflight.size, 0);
  assert.equal(await idle, true);
});

test('PacketSizeGuard follows headers across any chunking', limit, () => {
  const limit = 1000;
  const packets = [connectPacket('c', 'k'), publishPacket('health/a', 10), publishPacket('health/b', 1000 - 10), Buffer.from([0xc0, 0x00])];
  const stream = Buffer.concat(packets);
  for (const size of [1, 2, 3, 7, 64, stream.length]) {
    const guard = new PacketSizeGuard(limit);
    for (let i = 0; i < stream.length; i += size) assert.equal(guard.feed(stream.subarray(i, i + size)), null, `chunk size ${size}`);
  }
  // One byte over (2 + 9 + 990 = 1001): refused at the length bytes, before any of the body.
  const guard = new PacketSizeGuard(limit);
  assert.equal(guard.feed(connectPacket('c', 'k')), null);
  const over = publishPacket('health/bb', 1000 - 10);
  const header = over.subarray(0, 3); // type byte + 2-byte length
  const violation = guard.feed(header);
  assert.equal(violation?.kind, 'too_large');
  assert.equal(violation?.kind === 'too_large' && violation.declaredBytes, 1001);
  assert.equal(guard.feed(Buffer.alloc(1)), violation, 'violations are sticky');
});

test('PacketSizeGuard: first packet limit, huge varints, malformed lengths', limit, () => {
  const first = new PacketSizeGuard(1_000_000, 100);
  assert.equal(first.feed(Buffer.concat([Buffer.from([0x10]), encodeLength(101)]))?.kind, 'too_large');
  const big = new PacketSizeGuard(128 * 1024 * 1024);
  big.feed(connectPacket('c', 'k'));
  assert.equal(big.feed(Buffer.concat([Buffer.from([0x30]), encodeLength(128 * 1024 * 1024)])), null);
  const over = new PacketSizeGuard(128 * 1024 * 1024);
  over.feed(connectPacket('c', 'k'));
  assert.equal(over.feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]))?.kind, 'too_large');
  const malformed = new PacketSizeGuard(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  assert.equal(malformed.feed(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80]))?.kind, 'malformed_length');
});

test('topic filters', limit, () => {
  const cases: Array<[string, string, boolean]> = [
    ['health/#', 'health', true],
    ['health/#', 'health/a/b', true],
    ['health/#', 'healthy/a', false],
    ['health/+', 'health/a', true],
    ['health/+', 'health/a/b', false],
    ['health/+', 'health/', true],
    ['+/x', 'a/x', true],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/x', true],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/c', false],
  ];
  for (const [filter, topic, expected] of cases) assert.equal(topicMatchesFilter(filter, topic), expected, `${filter} vs ${topic}`);
  for (const bad of ['', 'a/#/b', 'a+', 'a/b#']) assert.equal(isValidTopicFilter(bad), false, bad);
  assert.throws(() => compileTopicFilter('health/#/x'));
});

// ---------------------------------------------------------------- raw MQTT bytes

function encodeLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

function str(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

function connectPacket(clientId: string, password: string): Buffer {
  // MQTT 3.1.1, clean session, user name + password, keepalive 60 s
  const body = Buffer.concat([str('MQTT'), Buffer.from([0x04, 0xc2, 0x00, 0x3c]), str(clientId), str('raw'), str(password)]);
  return Buffer.concat([Buffer.from([0x10]), encodeLength(body.length), body]);
}

function publishPacket(topic: string, payloadBytes: number): Buffer {
  const body = Buffer.concat([str(topic), Buffer.alloc(payloadBytes, 0x20)]);
  return Buffer.concat([Buffer.from([0x30]), encodeLength(body.length), body]);
}
