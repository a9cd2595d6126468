import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { partitionedTables } from '../src/store/partitions.js';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { mapLimit } from './hostile/concurrency.js';
import { watchCrashes } from './hostile/crash-watch.js';
import { gzipBomb } from './hostile/gzip-bomb.js';
import { hostilePayload } from './hostile/hostile-strings.js';
import { prefixOf, wrongKeys } from './hostile/keys.js';
import { LegitPublisher, legitDate, legitPayload } from './hostile/legit-publisher.js';
import { connectPacket, fuzzCases, publishPacket } from './hostile/mqtt-packets.js';
import { httpFrom, rawHttp, responseSplitting, type HttpAnswer } from './hostile/raw-http.js';
import { connackCode, openPeer, sendAndAwaitClose, type PeerTarget, type RawTransport } from './hostile/raw-peer.js';
import { trickle } from './hostile/slow-client.js';

/*
 * The hostile-input suite: one daemon, a legitimate phone publishing on 127.0.0.1 all along, and
 * attacks from other loopback addresses (so per-address limits on an attacker can never be
 * mistaken for harm to the phone). At the end the daemon must still serve, the phone must have
 * lost nothing, and nothing from a rejected input may be stored.
 */

/** Fixed, so a failing fuzz case replays; change it to explore. */
const SEED = 20_261_130;

const FROM = {
  legit: '127.0.0.1',
  wrongKeys: '127.0.0.2',
  flood: '127.0.0.3',
  fuzzTcp: '127.0.0.4',
  slow: '127.0.0.5',
  payloads: '127.0.0.6',
  headers: '127.0.0.7',
  eavesdropper: '127.0.0.8',
  fuzzWs: '127.0.0.9',
  ambiguous: '127.0.0.10',
  /** The first of several addresses, each guessing Alice's secret once (127.0.1.1, .2, …). */
  distributed: '127.0.1.',
} as const;

const MAX_BODY_BYTES = 1024 * 1024;
const MAX_PACKET_BYTES = 256 * 1024;
const REQUEST_TIMEOUT_MS = 2_000;
/** Below the request timeout, so a request cut for its headers is told from one cut for its body. */
const HEADERS_TIMEOUT_MS = 1_000;
const CONNECT_TIMEOUT_MS = 2_000;
/** When a socket cut at the CONNECT deadline must be closed at the latest, on a busy machine. */
const CONNECT_DEADLINE_BOUND_MS = 4_000;
/** The same for the HTTP deadlines (Node checks them every HEADERS_TIMEOUT_MS / 4). */
const HTTP_CUT_GRACE_MS = 2_500;
/**
 * Fuzzed sessions that survive their garbage (a stray PUBACK, a flipped byte giving a valid
 * PUBLISH) are closed by their 1 s keep-alive (MQTT_KEEPALIVE_MIN_SECONDS 1 here): 1.5 s of silence.
 */
const FUZZ_CLOSE_BOUND_MS = 8_000;
const MAX_CONNECTIONS_PER_ADDRESS = 50;
const BLOCK_AFTER_FAILURES = 20;
/**
 * The daemon arms its timers from libuv's cached loop time, which can lag the clock this test
 * reads by a few ms (more on a busy machine): a cut may look that much early from here.
 */
const TIMER_SLACK_MS = 100;

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');
const is4xx = (status: number | null): boolean => status !== null && status >= 400 && status < 500;
/** The `code` of a JSON error answer (raw bytes or a parsed answer's body). */
const errorCode = (raw: Buffer | string): string | undefined => {
  const text = Buffer.from(raw).toString('utf8');
  const body = text.startsWith('HTTP/') ? text.slice(text.indexOf('\r\n\r\n') + 4) : text;
  try {
    return (JSON.parse(body) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
};

/** An mqtt.js client bound to `localAddress` (over TCP mqtt.js cannot bind one by itself). */
function mqttClient(url: string, key: string, localAddress: string, extra: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const options: IClientOptions = { username: 'hostile', password: key, reconnectPeriod: 0, connectTimeout: 5_000, protocolVersion: 4, ...extra };
    const { protocol, port } = new URL(url);
    const client =
      protocol === 'mqtt:'
        ? new mqtt.MqttClient(() => netConnect({ host: '127.0.0.1', port: Number(port), localAddress }), options)
        : mqtt.connect(url, { ...options, wsOptions: { localAddress } });
    client.once('connect', () => resolve(client));
    // Not once: an 'error' without a listener would throw, and count as a crash of the daemon.
    client.on('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/**
 * A QoS 1 publish that may be refused by closing the connection: mqtt.js would then keep the
 * message queued for a reconnect that never comes, and publishAsync would never settle.
 */
function publishOrClosed(client: MqttClient, topic: string, payload: string | Buffer): Promise<'acked' | 'closed'> {
  return new Promise((resolve) => {
    client.once('close', () => resolve('closed'));
    client.publishAsync(topic, payload, { qos: 1 }).then(
      () => resolve('acked'),
      () => resolve('closed'),
    );
  });
}

/** One quantity point on its own date: any accepted copy of it is one row in quantity_samples. */
function stepPayload(day: number, minute: number, extra: Record<string, unknown> = {}): string {
  const date = `2025-07-${String(day).padStart(2, '0')} 10:${String(minute).padStart(2, '0')}:00 +0200`;
  return JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date, qty: 10 + minute, source: 'hostile', ...extra }] }] } });
}

describe('hostile input against one running daemon', { timeout: 120_000 }, () => {
  let t: TestApp;
  let aliceKey: string;
  let malloryKey: string;
  /** Mallory's second key, held by the eavesdropper. */
  let eavesdropperKey: string;
  let aliceId: string;
  let malloryId: string;
  let tcpPort: number;
  let httpPort: number;
  let legit: LegitPublisher;
  let eavesdropper: MqttClient;
  const overheard: Array<{ topic: string; payload: string }> = [];
  const crashes = watchCrashes();
  /** sha256 of every payload the daemon may keep; raw_ingestions must hold exactly these. */
  const accepted = new Map<string, string>();
  /** Sample rows the accepted payloads other than the phone's must have added, per table. */
  const expectedRows = Object.fromEntries(partitionedTables.map((table) => [table, 0])) as Record<string, number>;

  const target = (transport: RawTransport, localAddress: string): PeerTarget => ({ transport, tcpPort, wsUrl: t.wsUrl, localAddress });
  const ingestUrl = (): string => `${t.httpUrl}/api/v1/ingest`;
  const storedFrom = (address: string): Promise<number> => count(t.sql, 'raw_ingestions', 'remote_address = $1', [address]);
  const statusTopic = (key: string): string => `self-sensored/status/${prefixOf(key)}`;
  /** Open MQTT sockets of both transports, as the daemon counts them. */
  const openMqttSockets = async (): Promise<number> => (await t.app.metrics.mqttSockets.get()).values.reduce((sum, v) => sum + v.value, 0);
  const keyBlocks = async (): Promise<number> => (await t.app.metrics.authBlocks.get()).values.filter((v) => v.labels.scope === 'key').reduce((sum, v) => sum + v.value, 0);
  const refusedForAddressCap = async (): Promise<number> =>
    (await t.app.metrics.mqttRefused.get()).values.filter((v) => v.labels.reason === 'max_connections_per_address').reduce((sum, v) => sum + v.value, 0);
  const rawBySha = async (hash: string): Promise<{ id: string; payload: Buffer; status: string } | undefined> =>
    (await t.sql.query<{ id: string; payload: Buffer; status: string }>(`SELECT id, payload, status FROM raw_ingestions WHERE sha256 = decode($1, 'hex')`, [hash])).rows[0];
  /** Waits until the phone has had `n` more PUBACKs: proof that the daemon serves it meanwhile. */
  const legitAdvances = async (n: number, what: string): Promise<void> => {
    const from = legit.ackCount;
    await waitFor(() => legit.ackCount >= from + n, 10_000, `the legitimate client's PUBACKs during ${what}`);
  };
  const malloryPost = (body: Buffer | string | Readable, headers: Record<string, string> = {}): Promise<HttpAnswer> =>
    httpFrom(FROM.payloads, ingestUrl(), { headers: { authorization: `Bearer ${malloryKey}`, 'content-type': 'application/json', ...headers }, body });

  before(async () => {
    t = await startTestApp({
      HTTP_MAX_BODY_BYTES: String(MAX_BODY_BYTES),
      HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      MQTT_MAX_PACKET_BYTES: String(MAX_PACKET_BYTES),
      MQTT_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
      MQTT_MAX_CONNECTIONS_PER_ADDRESS: String(MAX_CONNECTIONS_PER_ADDRESS),
      MQTT_KEEPALIVE_MIN_SECONDS: '1',
      AUTH_BLOCK_AFTER_FAILURES: String(BLOCK_AFTER_FAILURES),
    });
    tcpPort = Number(new URL(t.tcpUrl).port);
    httpPort = Number(new URL(t.httpUrl).port);
    aliceKey = await t.createKey('alice');
    malloryKey = await t.createKey('mallory');
    eavesdropperKey = await t.createKey('mallory');
    await t.createKey('bob');
    const ids = await t.sql.query<{ name: string; id: string }>('SELECT name, id FROM users');
    aliceId = ids.rows.find((r) => r.name === 'alice')!.id;
    malloryId = ids.rows.find((r) => r.name === 'mallory')!.id;

    legit = new LegitPublisher({ tcpPort, key: aliceKey, topic: 'health/alice' });
    await legit.start();
    // Mallory has a second valid key and listens with it, over WebSocket, for the whole suite.
    eavesdropper = await mqttClient(t.wsUrl, eavesdropperKey, FROM.eavesdropper, { clientId: 'eavesdropper' });
    eavesdropper.on('message', (topic, payload) => overheard.push({ topic, payload: payload.toString() }));
  });

  after(async () => {
    await legit?.stop().catch(() => undefined);
    eavesdropper?.end(true);
    await t?.close();
    crashes.stop();
  });

  test('a valid key gets SUBACK 0x80 for #, $SYS/#, health/#, other topics and other keys\' status topics, and QoS 1 for its own', async () => {
    const filters = [
      '#',
      '$SYS/#',
      '$SYS/broker/clients/connected',
      'health/#',
      'health/+',
      'health/alice',
      'health/alice/#',
      '+/alice',
      'health/bob',
      'self-sensored/#',
      'self-sensored/status/+',
      statusTopic(aliceKey),
      // The same user's other key: status topics are per key, not per user.
      statusTopic(malloryKey),
      `${statusTopic(eavesdropperKey)}/#`,
    ];
    const subacks: number[][] = [];
    eavesdropper.on('packetreceive', (p) => {
      if (p.cmd === 'suback') subacks.push([...p.granted] as number[]);
    });
    for (const filter of filters) {
      const code = await eavesdropper.subscribeAsync(filter, { qos: 1 }).then(
        () => 'granted',
        (err: Error & { packet?: { granted?: number[] } }) => err.packet?.granted?.[0],
      );
      assert.equal(code, 0x80, `SUBSCRIBE ${filter}`);
    }
    assert.ok(eavesdropper.connected, 'a refused subscription does not cost the connection');
    const own = await eavesdropper.subscribeAsync(statusTopic(eavesdropperKey), { qos: 1 });
    assert.deepEqual(own.map((g) => [g.topic, g.qos]), [[statusTopic(eavesdropperKey), 1]]);
    assert.deepEqual(subacks, [...filters.map(() => [0x80]), [1]]);

    // Its own publish (not JSON: acknowledged, never stored) is reported on its own topic.
    assert.equal(await publishOrClosed(eavesdropper, 'health/mallory', '{{ not json'), 'acked');
    await waitFor(() => overheard.length >= 1, 10_000, 'the status message of the eavesdropper\'s own publish');
    const [heard] = overheard;
    assert.equal(heard!.topic, statusTopic(eavesdropperKey));
    assert.deepEqual(
      (({ status, topic }) => ({ status, topic }))(JSON.parse(heard!.payload) as { status: string; topic: string }),
      { status: 'invalid_json', topic: 'health/mallory' },
    );
    await legitAdvances(3, 'the subscriptions');
  });

  test('another user cannot cut the phone off: reusing its client id is refused, and so is a $SYS announcement', async () => {
    const takeover = await mqttClient(t.tcpUrl, malloryKey, FROM.payloads, { clientId: 'legitimate-phone' }).then(
      (client) => {
        client.end(true);
        return 'connected';
      },
      (err: Error & { code?: number }) => err.code,
    );
    assert.equal(takeover, 2, 'CONNACK 2 (identifier rejected) for a client id held by another user');
    // Aedes disconnects a client whose id is announced on $SYS/<other broker>/new/clients.
    const announcer = await mqttClient(t.tcpUrl, malloryKey, FROM.payloads, { clientId: 'announcer' });
    const announcerClosed = new Promise<void>((resolve) => announcer.once('close', () => resolve()));
    announcer.on('error', () => undefined);
    announcer.publish('$SYS/another-broker/new/clients', 'legitimate-phone', { qos: 0 });
    await announcerClosed; // the broker refuses $ topics by closing the publisher's connection
    announcer.end(true);
    await legitAdvances(3, 'the takeover attempts');
    assert.deepEqual(legit.problems, [], 'the phone lost its connection');
    // Within one user, a reconnect still takes the id over (a phone that changed networks).
    const first = await mqttClient(t.tcpUrl, aliceKey, FROM.legit, { clientId: 'alice-tablet' });
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    const second = await mqttClient(t.tcpUrl, aliceKey, FROM.legit, { clientId: 'alice-tablet' });
    await firstClosed;
    assert.ok(second.connected);
    await second.endAsync();
    first.end(true);
  });

  // Both wait for the broker's CONNECT deadline; side by side they cost it once.
  describe('connections that never complete', { concurrency: 2 }, () => {
    test('slow clients are cut at their deadlines (CONNECT, HTTP headers, HTTP request) and the daemon serves others meanwhile', async () => {
      const connect = connectPacket({ clientId: 'one-byte-per-second', password: malloryKey });
      const mqttBound = CONNECT_DEADLINE_BOUND_MS;
      const silentTcp = trickle({ port: tcpPort, localAddress: FROM.slow, deadlineMs: mqttBound });
      const dripConnect = trickle({ port: tcpPort, localAddress: FROM.slow, rest: connect, chunkBytes: 1, intervalMs: 1_000, deadlineMs: mqttBound });
      // A WebSocket peer's clock starts before its upgrade request: the daemon's deadline runs from it.
      const silentWs = openPeer(target('ws', FROM.slow)).then((peer) => peer.outcome(mqttBound));
      const halfConnectWs = openPeer(target('ws', FROM.slow)).then((peer) => {
        const outcome = peer.outcome(mqttBound);
        peer.write(connect.subarray(0, 12));
        return outcome;
      });
      const body = stepPayload(1, 1);
      const post = `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${malloryKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
      const headersBound = HEADERS_TIMEOUT_MS + HTTP_CUT_GRACE_MS;
      const requestBound = REQUEST_TIMEOUT_MS + HTTP_CUT_GRACE_MS;
      const trickledHeaders = trickle({ port: httpPort, localAddress: FROM.slow, rest: post + body, chunkBytes: 1, intervalMs: 200, deadlineMs: headersBound });
      const unfinishedBody = trickle({ port: httpPort, localAddress: FROM.slow, head: post + body.slice(0, 20), deadlineMs: requestBound });
      // Many half-open requests at once, the classic slowloris.
      const crowd = Array.from({ length: 40 }, () => trickle({ port: httpPort, localAddress: FROM.slow, head: 'GET /health HTTP/1.1\r\nHost: x\r\n', rest: 'X-a: b\r\n'.repeat(100), chunkBytes: 8, intervalMs: 200, deadlineMs: headersBound }));

      // While they hold their sockets, everyone else is served promptly.
      for (let i = 0; i < 5; i++) {
        const started = Date.now();
        assert.equal((await fetch(`${t.httpUrl}/health`)).status, 200);
        assert.ok(Date.now() - started < 2_000, `/health took ${Date.now() - started} ms while slow clients were connected`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await legitAdvances(5, 'the slow clients');

      // HTTP: a request whose headers are not complete in HTTP_HEADERS_TIMEOUT_MS, or whose body is
      // not complete in HTTP_REQUEST_TIMEOUT_MS, gets 408 SS_REQUEST_TIMEOUT and the connection is closed.
      const httpCases = [
        ['trickled headers', await trickledHeaders.done, HEADERS_TIMEOUT_MS],
        ['unfinished body', await unfinishedBody.done, REQUEST_TIMEOUT_MS],
        ...(await Promise.all(crowd.map((c) => c.done))).map((o, i) => [`slowloris #${i}`, o, HEADERS_TIMEOUT_MS] as const),
      ] as const;
      for (const [name, outcome, deadline] of httpCases) {
        assert.ok(outcome.closedByServer, `${name}: still open after ${outcome.elapsedMs} ms`);
        assert.ok(outcome.elapsedMs >= deadline - TIMER_SLACK_MS, `${name}: cut after ${outcome.elapsedMs} ms, before its ${deadline} ms deadline`);
        assert.match(outcome.received, /^HTTP\/1\.1 408 Request Timeout\r\n/, `${name}: answered ${JSON.stringify(outcome.received.slice(0, 40))}`);
        assert.equal(errorCode(outcome.received), 'SS_REQUEST_TIMEOUT', name);
      }

      // MQTT: closed at MQTT_CONNECT_TIMEOUT_MS without a CONNACK, whether silent or half-way through CONNECT.
      const mqttCases = [
        ['silent TCP socket', await silentTcp.done],
        ['CONNECT at one byte per second over TCP', await dripConnect.done],
      ] as const;
      for (const [name, outcome] of mqttCases) {
        assert.ok(outcome.closedByServer, `${name}: still open after ${outcome.elapsedMs} ms`);
        assert.ok(outcome.elapsedMs >= CONNECT_TIMEOUT_MS - TIMER_SLACK_MS, `${name}: cut after ${outcome.elapsedMs} ms, before the CONNECT deadline`);
        assert.equal(outcome.received, '', `${name}: the daemon sent something`);
      }
      assert.ok((await dripConnect.done).bytesSent < connect.length, 'the CONNECT never completed');
      for (const [name, outcome] of [['silent WebSocket', await silentWs], ['half a CONNECT over WebSocket', await halfConnectWs]] as const) {
        assert.ok(outcome.closedByDaemon, `${name}: still open after ${outcome.elapsedMs} ms`);
        assert.ok(outcome.elapsedMs >= CONNECT_TIMEOUT_MS - TIMER_SLACK_MS, `${name}: cut after ${outcome.elapsedMs} ms, before the CONNECT deadline`);
        assert.equal(outcome.received.length, 0, `${name}: the daemon sent something`);
      }
      assert.equal(await storedFrom(FROM.slow), 0);
    });

    test(`random bytes and malformed MQTT packets over TCP and WebSocket (seed ${SEED}): every connection closed, nothing stored`, async () => {
      const wrongKey = wrongKeys(SEED, 1, 'aaaaaaaaaa', 0)[0]!;
      const cases = fuzzCases(SEED, malloryKey, wrongKey);
      const started = legit.ackCount;
      // One address per transport: each stays under MQTT_MAX_CONNECTIONS_PER_ADDRESS, so every case reaches the parser.
      assert.ok(cases.length <= MAX_CONNECTIONS_PER_ADDRESS);
      const from = { tcp: FROM.fuzzTcp, ws: FROM.fuzzWs };
      const refusedBefore = await refusedForAddressCap();
      const runs = (['tcp', 'ws'] as const).flatMap((transport) =>
        cases.map(async (c) => ({ transport, name: c.name, outcome: await sendAndAwaitClose(target(transport, from[transport]), c.chunks, FUZZ_CLOSE_BOUND_MS) })),
      );
      const results = await Promise.all(runs);
      const stillOpen = results.filter((r) => !r.outcome.closedByDaemon).map((r) => `${r.transport}: ${r.name}`);
      assert.deepEqual(stillOpen, [], 'connections the daemon left open');
      assert.equal(await refusedForAddressCap(), refusedBefore, 'a fuzz connection was refused by the per-address cap before reaching the parser');
      // A fuzzed PUBLISH may be acknowledged (invalid JSON and foreign topics are acked and
      // dropped), but none of them carries a storable payload.
      assert.equal(await storedFrom(FROM.fuzzTcp), 0);
      assert.equal(await storedFrom(FROM.fuzzWs), 0);
      assert.ok(legit.ackCount > started, 'the legitimate client kept getting PUBACKs');
    });
  });

  test(`a CONNECT flood: 500 sockets at once with wrong keys; never more than ${MAX_CONNECTIONS_PER_ADDRESS} open, none accepted, the phone keeps its PUBACKs`, async () => {
    const keys = wrongKeys(SEED + 1, 500, 'aaaaaaaaaa', 0);
    // Only the phone and the eavesdropper hold MQTT sockets now; whatever is above them is the flood.
    const others = await openMqttSockets();
    const refusedBefore = await refusedForAddressCap();
    let peak = others;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await openMqttSockets());
        await new Promise((r) => setImmediate(r));
      }
    })();
    const startedAt = Date.now();
    // Every socket opened before any sends its CONNECT, so all of them compete for the cap.
    const peers = await Promise.all(keys.map(() => openPeer(target('tcp', FROM.flood))));
    const outcomes = peers.map((peer) => peer.outcome(CONNECT_DEADLINE_BOUND_MS));
    const floodOpen = async (): Promise<number> => (await openMqttSockets()) - others;
    const refusedNow = async (): Promise<number> => (await refusedForAddressCap()) - refusedBefore;
    await waitFor(async () => (await refusedNow()) + (await floodOpen()) >= keys.length, 10_000, 'the daemon to take or refuse every flood socket');
    // Before any CONNECT deadline freed a slot, the daemon let exactly the cap in and refused the rest.
    const beforeAnyDeadline = Date.now() - startedAt < CONNECT_TIMEOUT_MS - TIMER_SLACK_MS;
    await new Promise((r) => setTimeout(r, 200)); // for the refusals to reach the peers
    const pastTheCap = peers.filter((peer) => !peer.isClosed()).length;
    for (const [i, peer] of peers.entries()) peer.write(connectPacket({ clientId: `flood-${i}`, password: keys[i] }));
    const settled = await Promise.all(outcomes);
    sampling = false;
    await sampler;
    assert.ok(pastTheCap > 0 && pastTheCap <= MAX_CONNECTIONS_PER_ADDRESS, `${pastTheCap} flood sockets were let in`);
    assert.ok(peak - others <= MAX_CONNECTIONS_PER_ADDRESS, `the daemon counted ${peak - others} flood sockets open at once`);
    if (beforeAnyDeadline) assert.equal(await refusedNow(), keys.length - MAX_CONNECTIONS_PER_ADDRESS, 'sockets refused by the cap');
    else assert.ok((await refusedNow()) > 0, 'the cap refused no flood socket');
    // Past the cap: refused as a wrong key (4), blocked after AUTH_BLOCK_AFTER_FAILURES (5), or
    // cut at the CONNECT deadline while its failure was being delayed (no CONNACK).
    const codes = new Set(settled.map((o) => connackCode(o.received)));
    assert.deepEqual([...codes].filter((c) => c !== null && c !== 4 && c !== 5), [], 'a CONNACK other than 4 or 5');
    assert.equal(settled.filter((o) => !o.closedByDaemon).length, 0, 'the daemon left flood connections open');
    const floodMs = Date.now() - startedAt;
    // At one PUBLISH per 100 ms, a phone that was served all along has several PUBACKs by now.
    await legitAdvances(3, 'the flood');
    assert.ok(legit.acked.some((a) => a.ackedAt >= startedAt && a.ackedAt <= startedAt + floodMs + 2_000), 'PUBACKs arrived during the flood');
    assert.equal(await storedFrom(FROM.flood), 0);
  });

  test('an oversized MQTT packet and an oversized REST body are refused; nothing stored', async () => {
    const big = Buffer.from(JSON.stringify({ data: {}, padding: 'p'.repeat(MAX_PACKET_BYTES + 1_000) }));
    for (const transport of ['tcp', 'ws'] as const) {
      const peer = await openPeer(target(transport, FROM.payloads));
      const outcome = peer.outcome(10_000);
      peer.write(connectPacket({ clientId: `oversized-${transport}`, password: malloryKey }));
      await waitFor(() => peer.received().length >= 4, 5_000, `${transport}: CONNACK`);
      assert.equal(connackCode(peer.received()), 0, `${transport}: the session itself was accepted`);
      peer.write(publishPacket('health/mallory', big, 1, 9));
      const closed = await outcome;
      assert.ok(closed.closedByDaemon, `${transport}: the connection stays open after an oversized PUBLISH`);
      assert.equal(closed.received.length, 4, `${transport}: nothing but the CONNACK came back (no PUBACK)`);
    }
    assert.equal(await rawBySha(sha256(big)), undefined);

    const body = Buffer.from(JSON.stringify({ data: {}, padding: 'p'.repeat(2 * MAX_BODY_BYTES) }));
    const declared = await malloryPost(body);
    assert.equal(declared.status, 413);
    assert.equal(errorCode(declared.body), 'SS_BODY_TOO_LARGE');
    // Chunked, without a length: refused as it crosses the limit.
    const chunked = await malloryPost(Readable.from((function* () {
      for (let i = 0; i < body.length; i += 64 * 1024) yield body.subarray(i, i + 64 * 1024);
    })()));
    assert.equal(chunked.status, 413);
    assert.equal(errorCode(chunked.body), 'SS_BODY_TOO_LARGE');
    assert.equal(await rawBySha(sha256(body)), undefined);
  });

  test('a gzip bomb is refused early: 413, and memory does not grow by its inflated size', async () => {
    const inflated = 128 * 1024 * 1024;
    const bomb = await gzipBomb(inflated);
    assert.ok(bomb.length < MAX_BODY_BYTES, 'the bomb itself is small enough to pass the wire limit');
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const started = Date.now();
    const answer = await malloryPost(bomb, { 'content-encoding': 'gzip' });
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    assert.equal(answer.status, 413);
    assert.ok(Date.now() - started < 5_000, `refused after ${Date.now() - started} ms`);
    assert.ok(peak - baseline < inflated / 4, `RSS grew by ${Math.round((peak - baseline) / 1e6)} MB for a ${inflated / 1e6} MB bomb`);
    assert.equal(await rawBySha(sha256(bomb)), undefined);
  });

  test('JSON 10,000 levels deep: 400 SS_JSON_TOO_DEEP over REST, acknowledged over MQTT, never stored', async () => {
    const deepArrays = '['.repeat(10_000) + ']'.repeat(10_000);
    const deepObjects = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000);
    const deepMetadata = JSON.stringify({
      data: { workouts: [{ id: 'deep', name: 'Walk', start: '2025-07-02 10:00:00 +0200', end: '2025-07-02 10:30:00 +0200', metadata: { m: 'DEEP' } }] },
    }).replace('"DEEP"', deepArrays);
    for (const body of [deepArrays, deepObjects, deepMetadata]) {
      const answer = await malloryPost(body);
      assert.equal(answer.status, 400, `REST answered ${answer.status}: ${answer.body.subarray(0, 200).toString()}`);
      assert.equal(errorCode(answer.body), 'SS_JSON_TOO_DEEP');
      assert.equal(await rawBySha(sha256(body)), undefined, 'a refused deep body was stored');
    }
    // MQTT 3.1.1 has no negative PUBACK, and a missing one makes the phone re-send forever.
    const client = await mqttClient(t.wsUrl, malloryKey, FROM.payloads, { clientId: 'deep-json' });
    try {
      for (const body of [deepArrays.replace('[', ' ['), deepObjects.replace('{', ' {'), `${deepMetadata} `]) {
        assert.equal(await publishOrClosed(client, 'health/mallory', body), 'acked');
        assert.equal(await rawBySha(sha256(body)), undefined, 'a refused deep publish was stored');
      }
    } finally {
      client.end(true);
    }
  });

  test('invalid UTF-8 in a JSON body over both transports: stored byte-identical, decoded with U+FFFD in the sample', async () => {
    const invalid = Buffer.from([0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xf8, 0x88, 0x80, 0x80, 0x80]);
    const build = (minute: number): Buffer => {
      const [head, tail] = stepPayload(3, minute).split('"hostile"');
      return Buffer.concat([Buffer.from(`${head}"bad `), invalid, Buffer.from(` utf8"${tail}`)]);
    };
    // What a WHATWG UTF-8 decoder makes of the bytes: each invalid sequence becomes U+FFFD.
    const decoded = `bad ${invalid.toString('utf8')} utf8`;
    assert.equal(decoded, 'bad \ufffd\ufffd(\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd utf8');
    const viaRest = build(1);
    const answer = await malloryPost(viaRest);
    assert.equal(answer.status, 200, `REST answered ${answer.status}: ${answer.body.subarray(0, 200).toString()}`);
    const viaMqtt = build(2);
    const client = await mqttClient(t.tcpUrl, malloryKey, FROM.payloads, { clientId: 'invalid-utf8' });
    assert.equal(await publishOrClosed(client, 'health/mallory', viaMqtt), 'acked');
    client.end(true);
    for (const [transport, sent] of [['REST', viaRest], ['MQTT', viaMqtt]] as const) {
      const raw = await rawBySha(sha256(sent));
      assert.ok(raw, `${transport}: not stored`);
      assert.ok(raw.payload.equals(sent), `${transport}: the stored raw payload differs from the bytes sent`);
      accepted.set(sha256(sent), `invalid UTF-8 over ${transport}`);
      await waitFor(async () => (await rawBySha(sha256(sent)))?.status === 'processed', 10_000, `processing of the ${transport} payload`);
      const rows = await t.sql.query<{ source: string }>(`SELECT source FROM quantity_samples WHERE ingestion_id = $1`, [raw.id]);
      assert.deepEqual(rows.rows, [{ source: decoded }], `${transport}: the sample row`);
      expectedRows.quantity_samples!++;
    }
  });

  test('SQL and control characters in every string field are stored verbatim; U+0000 and over-long texts are refused per item', async () => {
    const usersBefore = await count(t.sql, 'users');
    const payload = hostilePayload();
    const rowsBefore = new Map<string, number>();
    for (const table of Object.keys(payload.rows)) rowsBefore.set(table, await count(t.sql, table, 'user_id = $1', [malloryId]));
    const body = JSON.stringify(payload.body);
    const answer = await malloryPost(body);
    assert.equal(answer.status, 200, answer.body.toString().slice(0, 300));
    const result = JSON.parse(answer.body.toString()) as { rejected: Array<{ reason: string }>; counts: Record<string, { inserted: number }> };
    accepted.set(sha256(body), 'hostile strings over REST');
    const reasons = result.rejected.map((r) => r.reason).sort();
    assert.deepEqual(reasons, [...Array<string>(payload.tooLongItems).fill('text_too_long'), ...Array<string>(payload.nulItems).fill('unstorable_text')].sort());
    for (const [table, rows] of Object.entries(payload.rows)) {
      assert.equal(await count(t.sql, table, 'user_id = $1', [malloryId]), rowsBefore.get(table)! + rows, `rows in ${table}`);
      expectedRows[table]! += rows;
    }
    for (const e of payload.expectations) {
      const { rows } = await t.sql.query<{ v: string | null }>(
        `WITH wanted AS (SELECT $1::text AS hostile) SELECT ${e.select} AS v FROM ${e.table}, wanted WHERE user_id = $2`,
        [e.value, malloryId],
      );
      const hits = rows.filter((r) => r.v === e.value).length;
      assert.equal(hits, 1, `${e.table}.${e.column} must hold ${JSON.stringify(e.value.slice(0, 60))} exactly once`);
    }
    // Nothing was executed: every table is still there, and no user was added or removed.
    for (const table of ['raw_ingestions', 'users', 'api_keys', ...partitionedTables]) {
      assert.ok((await t.sql.query(`SELECT to_regclass($1) AS r`, [table])).rows[0].r, `table ${table} exists`);
    }
    assert.equal(await count(t.sql, 'users'), usersBefore);
    // The per-address checks of the other cases look at remote_address: it is recorded as expected.
    assert.ok((await storedFrom(FROM.payloads)) >= 1, 'the hostile payloads are recorded with their address');

    // Over MQTT: the same items in other bytes, from a client whose id and topic are hostile too.
    // Stored as a new raw payload; every row already exists, so the tables do not change.
    const clientId = `id '; DROP TABLE users; -- \u0001\u001f ${'\u202e'}`;
    const topic = `health/mallory/'; DROP TABLE raw_ingestions; --/$1/\\/👩‍⚕️`;
    const again = `${body}\n`;
    const client = await mqttClient(t.tcpUrl, malloryKey, FROM.payloads, { clientId });
    assert.equal(await publishOrClosed(client, topic, again), 'acked');
    client.end(true);
    accepted.set(sha256(again), 'hostile strings over MQTT');
    const stored = await t.sql.query<{ topic: string; client_id: string }>(`SELECT topic, client_id FROM raw_ingestions WHERE sha256 = decode($1, 'hex')`, [sha256(again)]);
    assert.deepEqual(stored.rows, [{ topic, client_id: clientId }]);

    // A U+0000 in the client id or the topic: refused, or stored with the character made
    // visible; either way the group commit it shares with other clients does not fail.
    const nulBody = JSON.stringify({ data: {}, note: 'client id with NUL' });
    const nulClient = await mqttClient(t.tcpUrl, malloryKey, FROM.payloads, { clientId: 'nul\u0000id' }).catch(() => null);
    if (nulClient) {
      nulClient.on('error', () => undefined);
      await Promise.race([publishOrClosed(nulClient, 'health/mallory/nul\u0000topic', nulBody), new Promise((r) => setTimeout(r, 5_000))]);
      nulClient.end(true);
      if (await rawBySha(sha256(nulBody))) accepted.set(sha256(nulBody), 'NUL in client id and topic');
    }
    await legitAdvances(3, 'the hostile strings');
  });

  test('header injection: CR/LF, obs-fold, NUL, duplicates and huge headers never give a 2xx for a bad key (nor CONNACK 0), and never split the answer', async () => {
    const body = stepPayload(4, 1);
    const tail = `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    const [keyHead, keyTail] = [malloryKey.slice(0, 20), malloryKey.slice(20)];
    const wrong = wrongKeys(SEED + 2, 1, 'aaaaaaaaaa', 0)[0]!;
    // Each carries a storable body, so a request wrongly let through would leave a row.
    const requests: Array<[string, string | Buffer]> = [
      ['bare LF inside the key', `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${keyHead}\n${keyTail}\r\n${tail}`],
      ['bare CR inside the key', `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${keyHead}\r${keyTail}\r\n${tail}`],
      ['CRLF inside the key', `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${keyHead}\r\n${keyTail}\r\n${tail}`],
      ['obs-fold continuation line', `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n ${malloryKey}\r\n${tail}`],
      ['NUL after the key', `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nX-API-Key: ${malloryKey}\u0000\r\n${tail}`],
      ['non-ASCII byte in the key', Buffer.concat([Buffer.from(`POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nX-API-Key: ${keyHead}`), Buffer.from([0xff]), Buffer.from(`${keyTail}\r\n${tail}`)])],
      ['a wrong key with a Set-Cookie injection', `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${wrong}\r\nSet-Cookie: admin=1\r\n${tail}`],
      ['a header above the maximum header size', `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${malloryKey}\r\nX-Big: ${'a'.repeat(20_000)}\r\n${tail}`],
      ['CRLF in the request line', `POST /api/v1/ingest\r\nAuthorization: Bearer ${wrong} HTTP/1.1\r\nHost: x\r\n${tail}`],
      ['Content-Length with Transfer-Encoding (smuggling)', `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${malloryKey}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`],
      ['two different Content-Lengths', `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${malloryKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nContent-Length: 5\r\n\r\n${body}`],
    ];
    for (const [name, request] of requests) {
      const response = await rawHttp(httpPort, FROM.headers, request);
      assert.ok(response.status === null || is4xx(response.status), `${name}: answered ${response.status}`);
      assert.deepEqual(responseSplitting(response, ['set-cookie', 'x-injected']), [], name);
    }
    // The same keys over MQTT, where the password may hold any byte: refused.
    for (const password of [`${keyHead}\n${keyTail}`, `${keyHead}\r\n${keyTail}`, `${malloryKey}\u0000`, `${malloryKey}\nX-Injected: 1`]) {
      const outcome = await sendAndAwaitClose(target('tcp', FROM.headers), [connectPacket({ clientId: 'newline-key', password })], 5_000);
      assert.notEqual(connackCode(outcome.received), 0, `MQTT password ${JSON.stringify(password.slice(-20))} was accepted`);
      assert.ok(outcome.closedByDaemon);
    }
    // A public endpoint asked with CR/LF in its request line may answer, but never with the injected header.
    const probe = await rawHttp(httpPort, FROM.headers, 'GET /health\r\nSet-Cookie: x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.deepEqual(responseSplitting(probe, ['set-cookie']), []);
    // Escaped CR/LF in the URL is echoed only inside the JSON body, never as a header.
    const echoed = await rawHttp(httpPort, FROM.headers, 'GET /health%0d%0aSet-Cookie:%20x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(echoed.status, 404);
    assert.deepEqual(responseSplitting(echoed, ['set-cookie']), []);

    assert.equal(await storedFrom(FROM.headers), 0);
  });

  test('two different keys in one request: 400 SS_AUTH_AMBIGUOUS, counted as a failed attempt, nothing stored; the same key twice is accepted', async () => {
    const wrong = wrongKeys(SEED + 5, 1, 'aaaaaaaaaa', 0)[0]!;
    const request = (credentials: string, body: string): string =>
      `POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\n${credentials}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    const ambiguous: Array<[string, string]> = [
      ['Authorization twice: wrong, then valid', `Authorization: Bearer ${wrong}\r\nAuthorization: Bearer ${malloryKey}\r\n`],
      ['Authorization twice: valid, then wrong', `Authorization: Bearer ${malloryKey}\r\nAuthorization: Bearer ${wrong}\r\n`],
      ['X-API-Key twice: wrong, then valid', `X-API-Key: ${wrong}\r\nX-API-Key: ${malloryKey}\r\n`],
      ['Authorization valid, X-API-Key wrong', `Authorization: Bearer ${malloryKey}\r\nX-API-Key: ${wrong}\r\n`],
      ['two valid keys of one user (X-API-Key and api-key)', `X-API-Key: ${malloryKey}\r\napi-key: ${eavesdropperKey}\r\n`],
    ];
    for (const [i, [name, credentials]] of ambiguous.entries()) {
      const answer = await rawHttp(httpPort, FROM.ambiguous, request(credentials, stepPayload(6, i)));
      assert.equal(answer.status, 400, `${name}: answered ${answer.status}`);
      assert.equal(errorCode(answer.raw), 'SS_AUTH_AMBIGUOUS', name);
    }
    assert.equal(await storedFrom(FROM.ambiguous), 0);
    const failures = (): Promise<number> =>
      count(t.sql, 'auth_events', `remote_address = $1 AND outcome = 'failure' AND reason = 'ambiguous' AND key_id IS NULL`, [FROM.ambiguous]);
    await waitFor(async () => (await failures()) >= ambiguous.length, 10_000, 'the auth_events rows of the ambiguous requests');
    assert.equal(await failures(), ambiguous.length);

    // The same key twice, in two header styles: it is one key.
    const body = stepPayload(6, 30);
    const same = await rawHttp(httpPort, FROM.ambiguous, request(`Authorization: Bearer ${malloryKey}\r\nX-API-Key: ${malloryKey}\r\n`, body));
    assert.equal(same.status, 200, `the same key twice: ${same.status}`);
    accepted.set(sha256(body), 'the same key in two headers');
    expectedRows.quantity_samples!++;
    assert.equal(await count(t.sql, 'raw_ingestions', `sha256 = decode($1, 'hex') AND user_id = $2`, [sha256(body), malloryId]), 1);
  });

  test('1,000 wrong keys from one address over REST and over MQTT CONNECT: 401 until the block, then 429 / CONNACK 5; nothing stored, the phone unaffected', async () => {
    const alicePrefix = prefixOf(aliceKey);
    // 10 of each thousand aim at Alice's real prefix: each costs a full argon2 verification.
    const restKeys = wrongKeys(SEED + 3, 1_000, alicePrefix, 10);
    const body = stepPayload(5, 1);
    /** When the BLOCK_AFTER_FAILURES-th 401 arrived: from then on the address is blocked. */
    let blockedAt = Infinity;
    let refusals = 0;
    const rest = await mapLimit(restKeys, 50, async (key, i) => {
      const style = (['x-api-key', 'api-key', 'authorization'] as const)[i % 3]!;
      const headers = { [style]: style === 'authorization' ? `Bearer ${key}` : key, 'content-type': 'application/json' };
      const sentAt = Date.now();
      const answer = await httpFrom(FROM.wrongKeys, ingestUrl(), { headers, body });
      if (answer.status === 401 && ++refusals === BLOCK_AFTER_FAILURES) blockedAt = Date.now();
      return { sentAt, status: answer.status, code: errorCode(answer.body), retryAfter: answer.headers['retry-after'] };
    });
    const unexpected = rest.filter(
      (a) => !(a.status === 401 && a.code === 'SS_AUTH_INVALID') && !(a.status === 429 && (a.code === 'SS_AUTH_THROTTLED' || a.code === 'SS_RATE_LIMITED')),
    );
    assert.deepEqual(unexpected, [], 'every wrong key over REST gets 401 SS_AUTH_INVALID or 429');
    assert.deepEqual(rest.filter((a) => a.status === 429 && !(Number(a.retryAfter) >= 1)), [], 'a 429 without Retry-After');
    // Each 401 is a counted failure; after the threshold only requests already past the check
    // (at most the 49 others in flight) can still get one.
    const unauthorized = rest.filter((a) => a.status === 401).length;
    assert.ok(unauthorized >= BLOCK_AFTER_FAILURES && unauthorized < BLOCK_AFTER_FAILURES + 50, `${unauthorized} answers 401`);
    const afterBlock = rest.filter((a) => a.sentAt > blockedAt);
    assert.ok(afterBlock.length > 900, `only ${afterBlock.length} requests were sent after the block`);
    assert.deepEqual(afterBlock.filter((a) => a.status !== 429).map((a) => a.status), [], 'an answer other than 429 once the address was blocked');

    // The address is blocked for MQTT too: CONNACK 5 without a check, or a socket closed unread
    // (per-address cap, or the HTTP rate limit on the WebSocket upgrade); never accepted, never left open.
    const mqttKeys = wrongKeys(SEED + 4, 1_000, alicePrefix, 10);
    const connacks = await mapLimit(mqttKeys, MAX_CONNECTIONS_PER_ADDRESS, async (key, i) => {
      const outcome = await sendAndAwaitClose(target(i % 2 === 0 ? 'tcp' : 'ws', FROM.wrongKeys), [connectPacket({ clientId: `guess-${i}`, password: key })], CONNECT_DEADLINE_BOUND_MS);
      return { code: connackCode(outcome.received), closed: outcome.closedByDaemon };
    });
    assert.deepEqual([...new Set(connacks.map((c) => c.code))].filter((c) => c !== 5 && c !== null), [], 'a CONNACK other than 5 from a blocked address');
    assert.ok(connacks.some((c) => c.code === 5), 'no CONNACK 5 at all');
    assert.equal(connacks.filter((c) => !c.closed).length, 0, 'a refused CONNECT left its connection open');
    assert.equal(await storedFrom(FROM.wrongKeys), 0);

    // Alice's prefix guessed from many addresses, once each: no address is throttled, but the
    // prefix is blocked. Alice's phone is in the verified cache and is not locked out by it.
    const blocksBefore = await keyBlocks();
    // All at once: each passes the throttle before any has failed, so none is delayed.
    const guesses = BLOCK_AFTER_FAILURES + 2;
    await mapLimit(wrongKeys(SEED + 6, guesses, alicePrefix, guesses), guesses, async (key, i) => {
      const answer = await httpFrom(`${FROM.distributed}${i + 1}`, ingestUrl(), { headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
      assert.ok(answer.status === 401 || answer.status === 429, `distributed guess ${i}: ${answer.status}`);
    });
    assert.equal(await keyBlocks(), blocksBefore + 1, 'Alice\'s prefix was not blocked');
    const blockedKey = await httpFrom('127.0.1.200', ingestUrl(), { headers: { authorization: `Bearer ${wrongKeys(SEED + 7, 1, alicePrefix, 1)[0]}`, 'content-type': 'application/json' }, body });
    assert.equal(blockedKey.status, 429, 'a fresh address guessing the blocked prefix');
    for (let i = 1; i <= guesses; i++) assert.equal(await storedFrom(`${FROM.distributed}${i}`), 0);

    // Meanwhile the phone on 127.0.0.1 kept publishing, and its key still opens REST.
    await legitAdvances(3, 'the wrong keys');
    const restBody = legitPayload(50_000);
    const legitRest = await fetch(ingestUrl(), { method: 'POST', headers: { authorization: `Bearer ${aliceKey}`, 'content-type': 'application/json' }, body: restBody });
    assert.equal(legitRest.status, 200, 'the legitimate key still works over REST right after the attack');
    accepted.set(sha256(restBody), 'legitimate REST after the wrong keys');
    expectedRows.heart_rate_samples!++;
    expectedRows.quantity_samples!++;
  });

  test('afterwards: the daemon serves, the phone lost nothing, and nothing rejected was stored', async () => {
    await legit.stop();
    assert.deepEqual(legit.problems, [], 'the legitimate client saw errors, slow PUBACKs or a lost connection');
    assert.ok(legit.ackCount >= 50, `only ${legit.ackCount} PUBACKs in the whole suite`);

    assert.equal((await fetch(`${t.httpUrl}/health`)).status, 200);
    assert.equal((await fetch(`${t.httpUrl}/ready`)).status, 200);
    const freshRest = legitPayload(60_000);
    const rest = await fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { 'x-api-key': aliceKey, 'content-type': 'application/json' }, body: freshRest });
    assert.equal(rest.status, 200);
    accepted.set(sha256(freshRest), 'fresh REST ingest');
    const freshMqtt = legitPayload(60_001);
    const client = await mqttClient(t.wsUrl, aliceKey, FROM.legit, { clientId: 'fresh-phone' });
    assert.equal(await publishOrClosed(client, 'health/alice', freshMqtt), 'acked', 'a fresh MQTT publish is acknowledged');
    client.end(true);
    accepted.set(sha256(freshMqtt), 'fresh MQTT publish');
    for (let i = 0; i < 2; i++) {
      expectedRows.heart_rate_samples!++;
      expectedRows.quantity_samples!++;
    }

    // Every payload the phone got a PUBACK for is stored, processed, with both its rows.
    for (const a of legit.acked) accepted.set(sha256(a.payload), `legitimate payload ${a.index}`);
    await waitFor(async () => (await count(t.sql, 'raw_ingestions', `status <> 'processed'`)) === 0, 30_000, 'every stored payload processed');
    const ackedHashes = legit.acked.map((a) => Buffer.from(sha256(a.payload), 'hex'));
    assert.equal(await count(t.sql, 'raw_ingestions', 'user_id = $1 AND sha256 = ANY($2)', [aliceId, ackedHashes]), legit.acked.length, 'acknowledged payloads missing from raw_ingestions');
    const ackedTimes = legit.acked.map((a) => legitDate(a.index).iso);
    for (const table of ['heart_rate_samples', 'quantity_samples']) {
      assert.equal(
        await count(t.sql, table, 'user_id = $1 AND start_time = ANY($2::timestamptz[])', [aliceId, ackedTimes]),
        legit.acked.length,
        `${table}: rows of acknowledged payloads`,
      );
    }

    // raw_ingestions holds exactly the accepted payloads: none from a rejected input.
    const stored = await t.sql.query<{ hash: string; remote_address: string; transport: string }>(`SELECT encode(sha256, 'hex') AS hash, remote_address, transport FROM raw_ingestions`);
    const unexpected = stored.rows.filter((r) => !accepted.has(r.hash)).map((r) => `${r.transport} from ${r.remote_address}`);
    assert.deepEqual(unexpected, [], 'raw_ingestions holds payloads from rejected inputs');
    assert.equal(stored.rows.length, accepted.size);

    // The tables hold the phone's rows plus the accepted hostile ones, and nothing else.
    const published = legit.acked.length;
    for (const table of partitionedTables) {
      const phoneRows = table === 'heart_rate_samples' || table === 'quantity_samples' ? published : 0;
      assert.equal(await count(t.sql, table), phoneRows + expectedRows[table]!, `rows in ${table}`);
    }

    // Mallory's first key published a lot over MQTT meanwhile; her second key heard only its own status.
    assert.deepEqual(
      overheard.map((m) => `${m.topic}: ${(JSON.parse(m.payload) as { status: string }).status}`),
      [`${statusTopic(eavesdropperKey)}: invalid_json`],
      'the eavesdropper heard something besides the status of its own publish',
    );
    assert.ok(eavesdropper.connected, 'the eavesdropper was disconnected; it must simply hear nothing');
    assert.deepEqual(crashes.events, [], 'the daemon threw');
  });
});

