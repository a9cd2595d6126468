/**
 * `npm run bench:auth`: how long the real authenticator takes to verify a key against PostgreSQL,
 * cold (first use: argon2id) and warm (served from the verified-key cache). Prints p50/p99/max.
 * Uses BENCH_DATABASE_URL or TEST_DATABASE_URL (a throw-away database is created in that server
 * and dropped), else an embedded PostgreSQL started for the run. Not a test: nothing is asserted.
 *
 *   node dist/scripts/bench-auth.js [warmVerifications=10000] [coldKeys=20]
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { AuthEventLog, DEFAULT_AUTH_EVENT_LOG_OPTIONS } from '../src/auth/auth-events.js';
import { KeyAuthenticator } from '../src/auth/authenticator.js';
import { KeyStore } from '../src/auth/key-store.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { migrationsDir } from '../src/paths.js';
import { EmbeddedPostgres } from '../src/store/embedded-postgres.js';
import { loadMigrations, migrate } from '../src/store/migrator.js';

const warmCount = Number(process.argv[2] ?? 10_000);
const coldCount = Number(process.argv[3] ?? 20);
const log = createLogger('warn');

function percentiles(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`);
  return `n=${sorted.length}  p50 ${fmt(at(0.5))}  p99 ${fmt(at(0.99))}  max ${fmt(sorted.at(-1)!)}`;
}

async function withServer<T>(fn: (adminUrl: string) => Promise<T>): Promise<T> {
  const url = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  if (url) return fn(url);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'self-sensored-bench-'));
  await chmod(dataDir, 0o711);
  const embedded = new EmbeddedPostgres({ dataDir, port: 0, logger: log });
  process.stdout.write('no BENCH_DATABASE_URL / TEST_DATABASE_URL: using an embedded PostgreSQL\n');
  await embedded.start();
  try {
    return await fn(embedded.connectionString);
  } finally {
    await embedded.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  await withServer(async (adminUrl) => {
    const name = `ss_bench_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
    // DROP DATABASE … WITH (FORCE) at the end ends connections the pool is still closing.
    pool.on('error', () => undefined);
    try {
      await migrate(pool, await loadMigrations(migrationsDir), log);
      const keys = new KeyStore(pool);
      const metrics = new Metrics();
      // As in the daemon: every attempt is queued for auth_events and written in the background.
      const events = new AuthEventLog({ pool, logger: log, metrics, options: { ...DEFAULT_AUTH_EVENT_LOG_OPTIONS, retentionDays: 90 } });
      await events.start();
      const auth = new KeyAuthenticator({ keys, options: { cacheTtlMs: 600_000, cacheRefreshMs: 2_000 }, logger: log, metrics, events });
      await auth.start();
      const context = { transport: 'http' as const, remoteAddress: '127.0.0.1', requiredScope: 'ingest' as const };
      try {
        const created = [];
        for (let i = 0; i < coldCount; i++) created.push(await keys.create({ userName: 'bench' }));
        const cold: number[] = [];
        for (const k of created) {
          const started = performance.now();
          const outcome = await auth.verify(k.key, context);
          cold.push(performance.now() - started);
          if (!outcome.ok) throw new Error(`cold verify failed: ${outcome.reason}`);
        }
        const warm: number[] = [];
        for (let i = 0; i < warmCount; i++) {
          const key = created[i % created.length]!.key;
          const started = performance.now();
          const outcome = await auth.verify(key, context);
          warm.push(performance.now() - started);
          if (!outcome.ok) throw new Error(`warm verify failed: ${outcome.reason}`);
        }
        process.stdout.write(`auth cold (argon2id + lookup):  ${percentiles(cold)}\n`);
        process.stdout.write(`auth warm (verified cache):     ${percentiles(warm)}\n`);
      } finally {
        await auth.stop();
        await events.stop();
      }
    } finally {
      await pool.end();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
