import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { projectRoot } from '../../src/paths.js';
import { Daemon } from '../chaos/daemon.js';
import { createRunDatabase, type RunDatabase } from '../chaos/target.js';
import { freePort } from '../chaos/util.js';
import { errorMessage } from '../../src/errors.js';

const run = promisify(execFile);
const mainJs = path.join(projectRoot, 'dist', 'src', 'main.js');

/** The measured system: a fresh database, the daemon as a child process on free ports, and one API key. */
export interface Rig {
  db: RunDatabase;
  /** The bench's own connections (polling, ceilings), never the daemon's. */
  sql: pg.Pool;
  daemon: Daemon;
  key: string;
  userId: string;
  dataDir: string;
  close(): Promise<void>;
}

/** Creates a key with the daemon's CLI, as a user would. */
async function createKey(databaseUrl: string, dataDir: string, user: string): Promise<string> {
  const { stdout } = await run(process.execPath, [mainJs, 'keys', 'create', '--user', user, '--json'], {
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, DATA_DIR: dataDir, LOG_LEVEL: 'warn' },
  });
  return (JSON.parse(stdout) as { key: string }).key;
}

export async function buildRig(log: (line: string) => void): Promise<Rig> {
  const undo: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const step of undo.reverse()) await step().catch((err: unknown) => log(`cleanup failed: ${errorMessage(err)}`));
    undo.length = 0;
  };
  try {
    // Only DATABASE_URL chooses the server; without it an embedded PostgreSQL is started for the run.
    const db = await createRunDatabase({ DATABASE_URL: process.env.DATABASE_URL }, 'ss_bench');
    undo.push(() => db.drop());
    log(`database ${db.name} (server from ${db.source})`);
    const sql = new pg.Pool({ connectionString: db.url, max: 4 });
    undo.push(() => sql.end());
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ss-bench-data-'));
    await chmod(dataDir, 0o711);
    undo.push(() => rm(dataDir, { recursive: true, force: true }));
    const daemon = new Daemon({ databaseUrl: db.url, dataDir, httpPort: await freePort(), tcpPort: await freePort() });
    undo.push(async () => {
      const code = await daemon.stop(30_000);
      if (code !== 0 && code !== null) log(`the daemon exited with code ${code}; last log lines:\n${daemon.logTail.slice(-20).join('\n')}`);
    });
    await daemon.start(90_000);
    log(`daemon (pid ${daemon.pid}) ready at ${daemon.httpUrl}`);
    const key = await createKey(db.url, dataDir, 'bench');
    const userId = (await sql.query<{ id: string }>("SELECT id::text FROM users WHERE name = 'bench'")).rows[0]!.id;
    return { db, sql, daemon, key, userId, dataDir, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Polls raw_ingestions until the payload with this hash is processed (or failed); answers when it saw that. */
export async function waitProcessed(
  sql: pg.Pool,
  userId: string,
  sha256Hex: string,
  timeoutMs: number,
  intervalMs = 50,
): Promise<{ id: string; status: string; seenAt: number } | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await sql.query<{ id: string; status: string }>(
      'SELECT id::text, status FROM raw_ingestions WHERE user_id = $1 AND sha256 = $2',
      [userId, Buffer.from(sha256Hex, 'hex')],
    );
    const row = rows[0];
    if (row && row.status !== 'received') return { ...row, seenAt: performance.timeOrigin + performance.now() };
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Waits until the daemon has processed every payload it acknowledged (none left 'received'),
 * so that its background work does not eat into the next measurement; answers how long it took.
 */
export async function waitDrained(sql: pg.Pool, timeoutMs: number): Promise<{ seconds: number; drained: boolean; pending: number }> {
  const started = performance.now();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await sql.query<{ pending: boolean }>("SELECT EXISTS (SELECT 1 FROM raw_ingestions WHERE status = 'received') AS pending");
    const seconds = (performance.now() - started) / 1000;
    if (!rows[0]!.pending) return { seconds, drained: true, pending: 0 };
    if (Date.now() > deadline) {
      const { rows: left } = await sql.query<{ n: string }>("SELECT count(*) AS n FROM raw_ingestions WHERE status = 'received'");
      return { seconds, drained: false, pending: Number(left[0]!.n) };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Restarts the daemon (SIGTERM, then the same command, DATA_DIR, database and ports), so that a
 * memory measurement starts from a fresh process and not from what earlier scenarios left in its heap.
 */
export async function restartDaemon(rig: Rig): Promise<void> {
  await waitDrained(rig.sql, 300_000);
  const code = await rig.daemon.stop(30_000);
  if (code !== 0) throw new Error(`the daemon exited with ${code ?? 'a signal'} on SIGTERM; last log lines:\n${rig.daemon.logTail.slice(-20).join('\n')}`);
  await rig.daemon.start(90_000);
}
