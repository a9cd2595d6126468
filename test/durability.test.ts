/**
 * Fault tests: the real daemon as a child process (`node dist/src/main.js start`), killed,
 * stopped, cut off from PostgreSQL and slowed down while payloads arrive. The invariant under
 * test is the first of the design: whatever was acknowledged is stored, exactly once.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { KeyStore } from '../src/auth/key-store.js';
import { encodeRecord } from '../src/ingest/spool-format.js';
import { createLogger } from '../src/log.js';
import { migrationsDir, projectRoot } from '../src/paths.js';
import { loadMigrations, migrate } from '../src/store/migrator.js';
import { waitFor } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Daemon {
  child: ChildProcess;
  http: string;
  tcp: string;
  logs: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the daemon and waits until /ready answers 200. */
async function startDaemon(databaseUrl: string, dataDir: string, settings: Record<string, string> = {}): Promise<Daemon> {
  const [httpPort, tcpPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [path.join(projectRoot, 'dist', 'src', 'main.js'), 'start'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      DATA_DIR: dataDir,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      MQTT_TCP_HOST: '127.0.0.1',
      MQTT_TCP_PORT: String(tcpPort),
      BOOTSTRAP_KEY: 'false',
      PG_POOL_MAX: '4',
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_MS: '5000',
      ...settings,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const http = `http://127.0.0.1:${httpPort}`;
  let gone = false;
  void exited.then(() => (gone = true));
  await waitFor(
    async () => {
      if (gone) throw new Error(`daemon exited during start:\n${logs.join('\n')}`);
      return (await fetch(`${http}/ready`).then((r) => r.status, () => 0)) === 200;
    },
    20_000,
    'the daemon to be ready',
  );
  return { child, http, tcp: `mqtt://127.0.0.1:${tcpPort}`, logs, exited };
}

interface Setup {
  db: TestDatabase;
  sql: pg.Pool;
  dataDir: string;
  key: string;
  userId: string;
  keyId: string;
}

/** A fresh database, migrated, with one key; and a DATA_DIR as the daemon would get it. */
async function setup(): Promise<Setup> {
  const db = await createTestDatabase();
  const sql = new pg.Pool({ connectionString: db.url, max: 3 });
  await migrate(sql, await loadMigrations(migrationsDir), createLogger('silent'));
  const created = await new KeyStore(sql).create({ userName: 'phone' });
  const { rows } = await sql.query<{ user_id: string }>('SELECT user_id FROM api_keys WHERE id = $1', [created.id]);
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ss-durability-'));
  await fsp.chmod(dataDir, 0o711);
  cleanups.push(async () => {
    await sql.end();
    await db.drop();
    await fsp.rm(dataDir, { recursive: true, force: true });
  });
  return { db, sql, dataDir, key: created.key, userId: String(rows[0]!.user_id), keyId: created.id };
}

const payload = (n: number, tag: string) =>
  JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-04-01 12:00:00 +0200', qty: n, source: `${tag}-${n}` }] }] } });

const sha = (text: string | Buffer) => createHash('sha256').update(text).digest();

function connect(url: string, password: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { username: 'phone', password, reconnectPeriod: 0, connectTimeout: 5_000 });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    cleanups.push(async () => void client.end(true));
  });
}

/** Publishes at QoS 1 and resolves true on PUBACK, false on an error or after `timeoutMs` without one. */
function publishAcked(client: MqttClient, body: string, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    client.publish('health/phone', body, { qos: 1 }, (err) => {
      clearTimeout(timer);
      resolve(!err);
    });
  });
}

/** How many rows raw_ingestions holds for each payload, and how many of them are processed. */
async function stored(sql: pg.Pool, bodies: string[]): Promise<{ rows: number; processed: number; distinct: number }> {
  if (bodies.length === 0) return { rows: 0, processed: 0, distinct: 0 };
  const { rows } = await sql.query<{ rows: string; processed: string; distinct: string }>(
    `SELECT count(*) AS rows, count(*) FILTER (WHERE status = 'processed') AS processed, count(DISTINCT sha256) AS distinct
       FROM raw_ingestions WHERE sha256 = ANY($1::bytea[])`,
    [bodies.map((b) => sha(b))],
  );
  return { rows: Number(rows[0]!.rows), processed: Number(rows[0]!.processed), distinct: Number(rows[0]!.distinct) };
}

async function allStoredOnce(sql: pg.Pool, bodies: string[], what: string, processed = true): Promise<void> {
  await waitFor(async () => {
    const s = await stored(sql, bodies);
    return s.rows === bodies.length && (!processed || s.processed === bodies.length);
  }, 20_000, what);
  const s = await stored(sql, bodies);
  assert.equal(s.distinct, bodies.length, 'each payload exactly once');
}

const ingest = (daemon: Daemon, key: string, body: string) =>
  fetch(`${daemon.http}/api/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });

const ready = async (daemon: Daemon) => (await fetch(`${daemon.http}/ready`)).status;

test('kill -9 in the middle of a QoS 1 stream: after a restart every PUBACKed payload is stored once and processed', async () => {
  const s = await setup();
  const first = await startDaemon(s.db.url, s.dataDir);
  const client = await connect(first.tcp, s.key);
  const bodies = Array.from({ length: 300 }, (_, i) => payload(i, 'kill'));
  const acked: string[] = [];
  // A window of 10 in flight, so that the kill lands in the middle of the stream.
  const sent: Array<Promise<unknown>> = [];
  const stream = (async () => {
    for (const b of bodies) {
      if (!client.connected) break;
      sent.push(publishAcked(client, b, 5_000).then((ok) => ok && acked.push(b)));
      if (sent.length % 10 === 0) await Promise.all(sent.slice(-10));
    }
  })();
  await waitFor(() => acked.length >= 60, 15_000, 'some PUBACKs');
  first.child.kill('SIGKILL');
  await first.exited;
  await stream;
  await Promise.all(sent);
  client.end(true);
  assert.ok(acked.length >= 60 && acked.length < 300, `killed mid-stream (${acked.length} acked)`);

  const second = await startDaemon(s.db.url, s.dataDir);
  await allStoredOnce(s.sql, acked, 'every acked payload stored and processed after the restart');
  const all = await stored(s.sql, bodies);
  assert.equal(all.rows, all.distinct, 'nothing stored twice');
  second.child.kill('SIGTERM');
  assert.equal((await second.exited).code, 0);
});

test('PostgreSQL unreachable mid-stream: QoS 0, QoS 1 and REST are spooled, then replayed once, without a restart', async () => {
  const s = await setup();
  const target = new URL(s.db.url);
  const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  await proxy.start();
  cleanups.push(() => proxy.stop());
  const viaProxy = new URL(s.db.url);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  const daemon = await startDaemon(viaProxy.toString(), s.dataDir);
  const client = await connect(daemon.tcp, s.key);

  const before = Array.from({ length: 5 }, (_, i) => payload(i, 'before'));
  for (const b of before) assert.ok(await publishAcked(client, b));
  assert.equal((await ingest(daemon, s.key, payload(0, 'rest-before'))).status, 200); // the key is now cached

  proxy.cut();
  await waitFor(async () => (await ready(daemon)) === 503, 10_000, '/ready to turn 503');
  const qos1 = Array.from({ length: 20 }, (_, i) => payload(i, 'outage-qos1'));
  for (const b of qos1) assert.ok(await publishAcked(client, b), 'acknowledged from the spool');
  const qos0 = Array.from({ length: 10 }, (_, i) => payload(i, 'outage-qos0'));
  for (const b of qos0) await client.publishAsync('health/phone', b, { qos: 0 });
  const restBody = payload(0, 'outage-rest');
  const rest = await ingest(daemon, s.key, restBody);
  assert.equal(rest.status, 202);
  assert.deepEqual(await rest.json(), { status: 'spooled' });
  // A QoS 1 after the QoS 0 ones: its PUBACK means the QoS 0 ones before it were handled too.
  const last = payload(99, 'outage-last');
  assert.ok(await publishAcked(client, last));
  assert.equal(await ready(daemon), 503);
  const metrics = await (await fetch(`${daemon.http}/metrics`)).text();
  assert.match(metrics, /^self_sensored_spool_payloads_spooled_total 3[2-9]$/m);
  assert.match(metrics, /^self_sensored_spool_records [1-9]\d*$/m);

  proxy.restore();
  await waitFor(async () => (await ready(daemon)) === 200, 15_000, '/ready to turn 200 again');
  await allStoredOnce(s.sql, [...before, ...qos1, ...qos0, restBody, last], 'everything stored after the outage');
  await waitFor(async () => /^self_sensored_spool_records 0$/m.test(await (await fetch(`${daemon.http}/metrics`)).text()), 10_000, 'the spool to be empty');
  assert.deepEqual(await fsp.readdir(path.join(s.dataDir, 'spool')), []);
  // Straight to the database again.
  assert.equal((await ingest(daemon, s.key, payload(1, 'after'))).status, 200);
  client.end(true);
});

test('a full spool refuses: QoS 1 gets no PUBACK, REST gets 503 + Retry-After; what was acked is stored after restore', async () => {
  const s = await setup();
  const target = new URL(s.db.url);
  const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  await proxy.start();
  cleanups.push(() => proxy.stop());
  const viaProxy = new URL(s.db.url);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  const daemon = await startDaemon(viaProxy.toString(), s.dataDir, { SPOOL_MAX_BYTES: '2000' });
  let client = await connect(daemon.tcp, s.key);
  assert.equal((await ingest(daemon, s.key, payload(0, 'warm'))).status, 200);

  proxy.cut();
  const acked: string[] = [];
  let refusedAt = -1;
  for (let i = 0; i < 50; i++) {
    const b = payload(i, 'full');
    if (await publishAcked(client, b, 3_000)) acked.push(b);
    else {
      refusedAt = i;
      break;
    }
  }
  assert.ok(refusedAt > 0, `some were spooled, then refused (acked ${acked.length})`);
  const rest = await ingest(daemon, s.key, payload(0, 'full-rest'));
  assert.equal(rest.status, 503);
  assert.ok(rest.headers.get('retry-after'));
  assert.match(await (await fetch(`${daemon.http}/metrics`)).text(), /^self_sensored_spool_refused_full_total [1-9]/m);
  assert.equal(daemon.logs.filter((l) => l.includes('"msg":"spool is full: refusing')).length, 1, 'the state change logged once');

  proxy.restore();
  await allStoredOnce(s.sql, acked, 'every acked payload stored after restore');
  // The refused one is accepted once the client sends it again.
  if (!client.connected) client = await connect(daemon.tcp, s.key);
  const again = payload(refusedAt, 'full');
  assert.ok(await publishAcked(client, again));
  await allStoredOnce(s.sql, [...acked, again], 'the re-sent payload too');
  client.end(true);
});

test('a torn spool record: the complete records are replayed at start, the torn one is dropped with a log line', async () => {
  const s = await setup();
  const identity = { userId: s.userId, userName: 'phone', keyId: s.keyId, keyPrefix: 'x', scopes: ['ingest' as const] };
  const bodies = [1, 2, 3, 4].map((n) => payload(n, 'torn'));
  const records = bodies.map((b, i) =>
    encodeRecord({ identity, transport: 'mqtt-tcp', topic: 'health/phone', body: Buffer.from(b), receivedAt: new Date(Date.now() - 60_000 + i), clientId: 'c1' }),
  );
  const spoolDir = path.join(s.dataDir, 'spool');
  await fsp.mkdir(spoolDir, { mode: 0o700 });
  await fsp.writeFile(path.join(spoolDir, '000000000001.seg'), Buffer.concat([records[0]!, records[1]!, records[2]!, records[3]!.subarray(0, records[3]!.length - 7)]));

  const daemon = await startDaemon(s.db.url, s.dataDir);
  await allStoredOnce(s.sql, bodies.slice(0, 3), 'the three complete records replayed');
  assert.equal((await stored(s.sql, [bodies[3]!])).rows, 0, 'the torn record is not replayed');
  assert.ok(daemon.logs.some((l) => l.includes('torn record')), 'a log line about the torn record');
  const row = await s.sql.query<{ transport: string; topic: string; client_id: string }>('SELECT transport, topic, client_id FROM raw_ingestions WHERE sha256 = $1', [sha(bodies[0]!)]);
  assert.deepEqual(row.rows[0], { transport: 'mqtt-tcp', topic: 'health/phone', client_id: 'c1' });
  await waitFor(async () => (await fsp.readdir(spoolDir)).length === 0, 10_000, 'the segment deleted');
});

test('backpressure: over INGEST_MAX_QUEUED_BYTES the PUBACK waits until the backlog drains', async () => {
  const s = await setup();
  const daemon = await startDaemon(s.db.url, s.dataDir, { INGEST_MAX_QUEUED_BYTES: '1' });
  const client = await connect(daemon.tcp, s.key);
  // Processing blocks on this lock: the first payload stays queued.
  const locker = await s.sql.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE quantity_samples IN ACCESS EXCLUSIVE MODE');
  let released = false;
  try {
    const first = payload(1, 'bp');
    assert.ok(await publishAcked(client, first, 5_000), 'the first payload is acked (the backlog was empty)');
    const second = payload(2, 'bp');
    let ackedAt = 0;
    const secondAck = publishAcked(client, second, 20_000).then((ok) => {
      ackedAt = Date.now();
      return ok;
    });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(ackedAt, 0, 'no PUBACK while the backlog is over the limit');
    assert.equal((await stored(s.sql, [second])).rows, 0, 'not even stored yet');
    assert.match(await (await fetch(`${daemon.http}/metrics`)).text(), /^self_sensored_ingest_processing_queue_bytes [1-9]/m);
    const releasedAt = Date.now();
    await locker.query('COMMIT');
    released = true;
    assert.ok(await secondAck, 'the PUBACK arrives once the lock is released');
    assert.ok(ackedAt >= releasedAt);
    await allStoredOnce(s.sql, [first, second], 'both processed');
  } finally {
    if (!released) await locker.query('ROLLBACK').catch(() => undefined);
    locker.release();
    client.end(true);
  }
});

test('SIGTERM while payloads are published: exit 0 within the deadline, every acked payload stored', async () => {
  const s = await setup();
  const daemon = await startDaemon(s.db.url, s.dataDir, { SHUTDOWN_TIMEOUT_MS: '5000' });
  const client = await connect(daemon.tcp, s.key);
  const bodies = Array.from({ length: 200 }, (_, i) => payload(i, 'term'));
  const acked: string[] = [];
  const sent = bodies.map((b) => publishAcked(client, b, 10_000).then((ok) => ok && acked.push(b)));
  await waitFor(() => acked.length >= 30, 15_000, 'some PUBACKs');
  const signalledAt = Date.now();
  daemon.child.kill('SIGTERM');
  const { code } = await daemon.exited;
  const took = Date.now() - signalledAt;
  assert.equal(code, 0);
  assert.ok(took < 5_000 + 2_000, `exited in ${took} ms`);
  await Promise.all(sent);
  client.end(true);
  await allStoredOnce(s.sql, acked, 'every acked payload stored', false);
});
