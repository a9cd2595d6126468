import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import pg from 'pg';
import { createLogger } from '../src/log.js';
import { projectRoot } from '../src/paths.js';
import { EmbeddedPostgres } from '../src/store/embedded-postgres.js';
import { readFixture } from './helpers/fixtures.js';
import { waitFor } from './helpers/app.js';

const run = promisify(execFile);
const cli = path.join(projectRoot, 'scripts', 'self-sensored.js');

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Daemon {
  child: ChildProcess;
  stdout: string[];
  stderr: string;
  exited: Promise<number | null>;
}

function startDaemon(env: NodeJS.ProcessEnv): Daemon {
  const child = spawn(process.execPath, [cli, 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const daemon: Daemon = { child, stdout: [], stderr: '', exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    daemon.stdout.push(...lines);
  });
  child.stderr!.on('data', (chunk: Buffer) => (daemon.stderr += chunk.toString('utf8')));
  return daemon;
}

const logged = (d: Daemon, msg: string) => d.stdout.some((l) => l.includes(`"msg":"${msg}"`));

let dataDir: string;
after(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test('fresh data dir: the daemon runs on an embedded PostgreSQL, prints a first key, stores a real export, stops cleanly, and finds its data again', { timeout: 120_000 }, async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'ss-e2e-'));
  await chmod(dataDir, 0o711);
  const httpPort = await freePort();
  const tcpPort = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, HTTP_PORT: String(httpPort), HTTP_HOST: '127.0.0.1', MQTT_TCP_PORT: String(tcpPort), MQTT_TCP_HOST: '127.0.0.1', EMBEDDED_PG_PORT: '0', LOG_LEVEL: 'info', PUBLIC_HOST: 'homelab.local' };
  delete env.DATABASE_URL;
  delete env.CONFIG_FILE;

  const first = startDaemon(env);
  try {
    await waitFor(() => logged(first, 'self-sensored is listening'), 60_000, 'the daemon to listen');
    await waitFor(() => /ss_[a-z2-7]{10}_[A-Za-z0-9_-]{43}/.test(first.stderr), 5_000, 'the first key');
    const key = /ss_[a-z2-7]{10}_[A-Za-z0-9_-]{43}/.exec(first.stderr)![0];
    // The printed instructions name every value the app asks for.
    for (const text of ['homelab.local', `Port:               ${httpPort}`, '/mqtt', 'Topic:              health/me', `http://homelab.local:${httpPort}/api/v1/ingest`, 'Authorization: Bearer']) {
      assert.ok(first.stderr.includes(text), `instructions mention ${text}`);
    }
    assert.ok(!first.stdout.some((l) => l.includes(key)), 'the key never appears in the JSON log');
    assert.equal((await fetch(`http://127.0.0.1:${httpPort}/ready`)).status, 200);

    const client = await mqtt.connectAsync(`ws://127.0.0.1:${httpPort}/mqtt`, { username: 'me', password: key, reconnectPeriod: 0 });
    await client.publishAsync('health/me', readFixture('real/hae-export-daily-2023-06-to-2025-04.json'), { qos: 1 });
    await client.endAsync();
    await waitFor(() => logged(first, 'payload processed'), 30_000, 'processing');

    first.child.kill('SIGINT');
    assert.equal(await first.exited, 0);
    assert.ok(logged(first, 'stopped'));
    assert.equal(existsSync(path.join(dataDir, 'postgres', 'postmaster.pid')), false, 'the embedded server was stopped');
  } finally {
    if (first.child.exitCode === null) first.child.kill('SIGKILL');
  }

  // The CLI works on the same data directory while the daemon is down (it starts and stops the server itself).
  const created = JSON.parse((await run(process.execPath, [cli, 'keys', 'create', '--user', 'alice', '--label', 'phone', '--json'], { env })).stdout) as { id: string; key: string };
  assert.match(created.key, /^ss_/);
  const listed = JSON.parse((await run(process.execPath, [cli, 'keys', 'list', '--json'], { env })).stdout) as Array<{ id: string; user: string; label: string | null; revokedAt: string | null }>;
  assert.deepEqual(listed.map((k) => k.user).sort(), ['alice', 'me']);
  assert.ok(!JSON.stringify(listed).includes(created.key.slice(14)), 'list never shows a key');
  await run(process.execPath, [cli, 'keys', 'revoke', created.id], { env });
  const afterRevoke = JSON.parse((await run(process.execPath, [cli, 'keys', 'list', '--json'], { env })).stdout) as Array<{ id: string; revokedAt: string | null }>;
  assert.ok(afterRevoke.find((k) => k.id === created.id)?.revokedAt);
  assert.equal(existsSync(path.join(dataDir, 'postgres', 'postmaster.pid')), false, 'the CLI stopped the server it started');

  const second = startDaemon(env);
  try {
    await waitFor(() => logged(second, 'self-sensored is listening'), 60_000, 'the second start');
    assert.doesNotMatch(second.stderr, /ss_[a-z2-7]{10}_/, 'no new key when keys exist');
    const adopt = new EmbeddedPostgres({ dataDir, port: 0, logger: createLogger('silent'), stopAdopted: false });
    await adopt.start();
    const sql = new pg.Client({ connectionString: adopt.connectionString });
    await sql.connect();
    try {
      const { rows } = await sql.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM quantity_samples) + (SELECT count(*) FROM heart_rate_samples) + (SELECT count(*) FROM sleep_sessions) AS n`,
      );
      assert.equal(Number(rows[0]!.n), 11_104, 'the data of the first run is there');
    } finally {
      await sql.end();
      await adopt.stop();
    }
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  } finally {
    if (second.child.exitCode === null) second.child.kill('SIGKILL');
  }
});
