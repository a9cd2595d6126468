import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { projectRoot } from '../src/paths.js';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { createTestDatabase } from './helpers/database.js';

const run = promisify(execFile);
// The exact script docs/operations.md tells operators to run.
const backupScript = path.join(projectRoot, 'scripts', 'backup.sh');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function backup(out: string, env: NodeJS.ProcessEnv): Promise<Result> {
  try {
    const { stdout, stderr } = await run('bash', [backupScript, out], { env: { PATH: process.env.PATH, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function pgDumpMajor(): Promise<number | null> {
  try {
    const { stdout } = await run('pg_dump', ['--version']);
    const match = /(\d+)\.\d+/.exec(stdout);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

async function serverMajorOf(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Math.floor(Number((await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v) / 10000);
  } finally {
    await client.end();
  }
}

function withPort(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}

describe('scripts/backup.sh', () => {
  let t: TestApp;
  let dir: string;

  before(async () => {
    t = await startTestApp();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ss-backup-'));
    const key = await t.createKey('dana');
    const body = JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-04-01 12:00:00 +0200', qty: 4321, source: 'Watch' }] }] } });
    const res = await fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
    assert.equal(res.status, 200, await res.text());
    await waitFor(async () => (await count(t.sql, 'raw_ingestions', `status = 'processed'`)) === 1, 10_000, 'the payload');
  });
  after(async () => {
    await t?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a populated database: the dump passes the checks and restores into an empty database', { timeout: 60_000 }, async () => {
    const out = path.join(dir, 'good.dump');
    const r = await backup(out, { DATABASE_URL: t.db.url });
    // pg_dump refuses a server of a newer major version (the embedded server is 18; Debian's
    // tools here may be 15). Then the script must fail loudly and leave no file; otherwise succeed.
    const dumpMajor = await pgDumpMajor();
    const serverMajor = await serverMajorOf(t.db.url);
    if (dumpMajor === null || dumpMajor < serverMajor) {
      assert.equal(r.code, 1, `pg_dump ${dumpMajor ?? 'missing'} vs server ${serverMajor}: ${r.stdout}`);
      assert.match(r.stderr, /BACKUP FAILED/);
      assert.equal(existsSync(out), false, 'no backup file is left');
      return;
    }
    assert.equal(r.code, 0, `pg_dump ${dumpMajor} vs server ${serverMajor}: ${r.stderr}`);
    assert.match(r.stdout, /backup written/);
    assert.ok((await readFile(out)).length > 0);
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.partial.')), [], 'no temporary file is left');

    // The restore line of docs/operations.md, into a database a self-sensored start already migrated.
    const target = await createTestDatabase();
    try {
      await run(process.execPath, [path.join(projectRoot, 'scripts', 'self-sensored.js'), 'migrate'], { env: { PATH: process.env.PATH, DATABASE_URL: target.url, LOG_LEVEL: 'warn' } });
      await run('pg_restore', ['--clean', '--if-exists', '--no-owner', '--single-transaction', '--exit-on-error', `--dbname=${target.url}`, out]);
      const sql = new pg.Client({ connectionString: target.url });
      await sql.connect();
      try {
        assert.equal(Number((await sql.query<{ n: string }>('SELECT count(*) AS n FROM raw_ingestions')).rows[0]!.n), 1);
        assert.equal(Number((await sql.query<{ qty: number }>('SELECT qty FROM quantity_samples')).rows[0]!.qty), 4321);
      } finally {
        await sql.end();
      }
    } finally {
      await target.drop();
    }
  });

  test('an unreachable server, a wrong user or a wrong database: exit code 1, a loud message, no backup file', { timeout: 60_000 }, async () => {
    const wrongDb = new URL(t.db.url);
    wrongDb.pathname = '/ss_no_such_database';
    const wrongUser = new URL(t.db.url);
    wrongUser.username = 'ss_no_such_role';
    wrongUser.password = 'wrong';
    const cases: Array<[string, string]> = [
      ['wrong port', withPort(t.db.url, 1)],
      ['wrong database', wrongDb.toString()],
      ['wrong user and password', wrongUser.toString()],
      // Reachable and dumpable, but not a self-sensored database: the dump would be useless.
      ['not a self-sensored database', process.env.TEST_DATABASE_URL!],
    ];
    for (const [what, url] of cases) {
      const out = path.join(dir, `bad-${what.replaceAll(' ', '-')}.dump`);
      const r = await backup(out, { DATABASE_URL: url });
      assert.equal(r.code, 1, `${what}: ${r.stdout}`);
      assert.match(r.stderr, /BACKUP FAILED/, what);
      assert.equal(existsSync(out), false, `${what}: no backup file`);
    }
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.partial.')), [], 'no temporary file is left');
  });

  test('a failed backup leaves an earlier backup of the same name as it was', async () => {
    const out = path.join(dir, 'keep.dump');
    await writeFile(out, 'earlier backup');
    const r = await backup(out, { DATABASE_URL: withPort(t.db.url, 1) });
    assert.equal(r.code, 1);
    assert.equal(await readFile(out, 'utf8'), 'earlier backup');
  });

  test('embedded mode reads DATA_DIR/postgres-credentials.json and the port from postmaster.pid, and fails loudly when the server is down', async () => {
    const dataDir = path.join(dir, 'data');
    const out = path.join(dir, 'embedded.dump');
    let r = await backup(out, { DATA_DIR: dataDir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /postgres-credentials\.json not found/);
    await mkdir(path.join(dataDir, 'postgres'), { recursive: true });
    await writeFile(path.join(dataDir, 'postgres-credentials.json'), JSON.stringify({ user: 'self_sensored', password: 'x' }));
    await writeFile(path.join(dataDir, 'postgres', 'postmaster.pid'), '12345\n/data/postgres\n1700000000\n1\n\n127.0.0.1\n');
    r = await backup(out, { DATA_DIR: dataDir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /port 1 failed/, 'the port of postmaster.pid is used');
    assert.match(r.stderr, /BACKUP FAILED/);
    assert.equal(existsSync(out), false);
  });
});
