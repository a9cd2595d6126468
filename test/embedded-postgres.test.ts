import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, readFile, mkdir, writeFile, readlink, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createLogger } from '../src/log.js';
import { AppError } from '../src/errors.js';
// isAlive: a stopped postmaster can linger as a zombie until reaped; the supervisor's check knows that.
import { EmbeddedPostgres, hydrateSymlinks, isAlive } from '../src/store/embedded-postgres.js';

const logLines: string[] = [];
const logger = createLogger('info', { write: (line: string) => void logLines.push(line) });

const tempDirs: string[] = [];
const servers: EmbeddedPostgres[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ss-embedded-pg-'));
  tempDirs.push(dir);
  // mkdtemp makes 0700; as root, postgres runs as another user that must be able to enter it.
  await chmod(dir, 0o711);
  return dir;
}

function track(server: EmbeddedPostgres): EmbeddedPostgres {
  servers.push(server);
  return server;
}

async function postmasterPid(dataDir: string): Promise<number> {
  const first = (await readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0];
  return Number.parseInt(first ?? '', 10);
}


async function query<T extends pg.QueryResultRow>(connectionString: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

after(async () => {
  for (const server of servers) await server.stop().catch(() => undefined);
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

test('embedded PostgreSQL: init, data survives restart, adoption, stop', async (t) => {
  const dataDir = await tempDir();
  let pid = 0;

  await t.test('first start initialises the cluster and accepts writes', async () => {
    const first = track(new EmbeddedPostgres({ dataDir, port: 0, logger }));
    await first.start();
    assert.ok(first.port > 0);
    assert.match(first.connectionString, /^postgres:\/\/self_sensored:[^@]+@127\.0\.0\.1:\d+\/self_sensored$/);
    await query(first.connectionString, 'CREATE TABLE t (v text); INSERT INTO t VALUES (\'kept\')');
    const credentials = await stat(path.join(dataDir, 'postgres-credentials.json'));
    assert.equal(credentials.mode & 0o777, 0o600);
    const cluster = await stat(path.join(dataDir, 'postgres'));
    assert.equal(cluster.mode & 0o777, 0o700);

    pid = await postmasterPid(dataDir);
    assert.ok(isAlive(pid));
    await first.stop();
    assert.equal(isAlive(pid), false, 'stop() must end the postmaster');
    await first.stop(); // idempotent
  });

  await t.test('a second start in the same dataDir finds the data', async (t2) => {
    const second = track(new EmbeddedPostgres({ dataDir, port: 0, logger }));
    await second.start();
    const rows = await query<{ v: string }>(second.connectionString, 'SELECT v FROM t');
    assert.deepEqual(rows, [{ v: 'kept' }]);

    await t2.test('another instance adopts the running server; stopAdopted:false leaves it running', async () => {
      const cli = track(new EmbeddedPostgres({ dataDir, port: 0, logger, stopAdopted: false }));
      await cli.start();
      assert.equal(cli.port, second.port);
      assert.equal(cli.connectionString, second.connectionString);
      const adoptedPid = await postmasterPid(dataDir);
      await cli.stop();
      assert.ok(isAlive(adoptedPid), 'the adopted server must keep running');
      assert.deepEqual(await query(second.connectionString, 'SELECT 1 AS one'), [{ one: 1 }]);
    });

    const runningPid = await postmasterPid(dataDir);
    await second.stop();
    assert.equal(isAlive(runningPid), false);
  });

  await t.test('an adopting instance with the default stops the server', async () => {
    const owner = track(new EmbeddedPostgres({ dataDir, port: 0, logger }));
    await owner.start();
    const adopter = track(new EmbeddedPostgres({ dataDir, port: 0, logger }));
    await adopter.start();
    const runningPid = await postmasterPid(dataDir);
    await adopter.stop();
    assert.equal(isAlive(runningPid), false);
    await owner.stop(); // already gone: must not throw
  });

  await t.test('the password never reaches the log', async () => {
    const { password } = JSON.parse(await readFile(path.join(dataDir, 'postgres-credentials.json'), 'utf8')) as { password: string };
    assert.ok(password.length >= 24);
    assert.ok(logLines.length > 0);
    assert.ok(logLines.every((line) => !line.includes(password)));
    assert.ok(logLines.some((line) => line.includes('embedded PostgreSQL started') && line.includes('"runAs"')));
  });
});

test('a busy configured port gives an AppError', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const address = blocker.address();
  assert.ok(address && typeof address === 'object');
  try {
    const server = track(new EmbeddedPostgres({ dataDir: await tempDir(), port: address.port, logger }));
    await assert.rejects(server.start(), (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, 'SS_EMBEDDED_PG_FAILED');
      assert.match(err.message, new RegExp(`Port ${address.port} .*already in use`));
      return true;
    });
    await server.stop(); // safe after a failed start
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }
});

test('an existing cluster without its credentials file fails clearly', async () => {
  const dataDir = await tempDir();
  await mkdir(path.join(dataDir, 'postgres'), { recursive: true });
  await writeFile(path.join(dataDir, 'postgres', 'PG_VERSION'), '18\n');
  const server = track(new EmbeddedPostgres({ dataDir, port: 0, logger }));
  await assert.rejects(server.start(), /credentials file .*postgres-credentials\.json is missing/);
});

test('a data dir the postgres user cannot enter is named in the error', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const dataDir = await tempDir();
  await chmod(dataDir, 0o700);
  const server = track(new EmbeddedPostgres({ dataDir, port: 0, logger }));
  await assert.rejects(server.start(), (err: unknown) => {
    assert.ok(err instanceof AppError);
    assert.ok(err.message.includes(`cannot enter ${dataDir}`), err.message);
    return true;
  });
});

test('hydrateSymlinks recreates missing library links relative to their directory', async () => {
  const root = await tempDir();
  await mkdir(path.join(root, 'native', 'lib'), { recursive: true });
  await writeFile(path.join(root, 'native', 'lib', 'libx.so.1.2'), '');
  const list = [
    { source: 'native/lib/libx.so.1.2', target: 'native/lib/libx.so.1' },
    { source: 'native/lib/libx.so.1.2', target: 'native/lib/libx.so' },
  ];
  await writeFile(path.join(root, 'native', 'pg-symlinks.json'), JSON.stringify(list));
  assert.equal(await hydrateSymlinks(root), 2);
  assert.equal(await readlink(path.join(root, 'native', 'lib', 'libx.so.1')), 'libx.so.1.2');
  assert.equal(await hydrateSymlinks(root), 0, 'existing links are left alone');
});
