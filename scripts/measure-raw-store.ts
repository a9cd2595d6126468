/**
 * Dev measurement (not a test, not the benchmark): peak RSS and time of storing one large raw
 * payload with the raw store's INSERT, through pg's own query path (which copies the bytea into
 * its Bind message) and through queryWithoutCopy. Each run is a fresh child process with its own
 * database, so each peak (the kernel's VmHWM, reset just before the statement) is its own.
 *
 * Run: TEST_DATABASE_URL=postgres://… npx tsc -p tsconfig.json &&
 *   node dist/scripts/measure-raw-store.js [megabytes=100] [runs=3]
 */
import { fork } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { createLogger } from '../src/log.js';
import { migrationsDir } from '../src/paths.js';
import { loadMigrations, migrate } from '../src/store/migrator.js';
import { queryWithoutCopy } from '../src/store/zero-copy-query.js';
import { createTestDatabase } from '../test/helpers/database.js';

type Mode = 'pg' | 'zero-copy';
interface Measurement {
  mode: Mode;
  baselineMiB: number;
  peakMiB: number;
  ms: number;
  cpuMs: number;
}

const SQL = `INSERT INTO raw_ingestions AS r (user_id, api_key_id, transport, topic, client_id, remote_address, payload, sha256,
     size_bytes, received_at, last_received_at, status)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
   ON CONFLICT (user_id, sha256) DO UPDATE
     SET last_received_at = excluded.last_received_at, receive_count = r.receive_count + 1
   RETURNING id, user_id, sha256, (xmax = 0) AS inserted, status, counts, rejections, not_stored`;

/** Export-like JSON (compressible, as real payloads are, so the server's lz4 time is realistic), with random padding to the size. */
function payload(bytes: number): Buffer {
  const body = Buffer.allocUnsafe(bytes);
  let at = body.write('{"data":{"metrics":[{"name":"heart_rate","units":"count/min","data":[');
  for (let i = 0; at < bytes - 200; i++) {
    at += body.write(`{"date":"2025-01-01 ${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00 +0100","Min":${50 + (i % 40)},"Avg":${60 + (i % 50)},"Max":${70 + (i % 60)},"source":"Anna’s Apple Watch"},`, at);
  }
  randomBytes(bytes - at).copy(body, at);
  return body;
}

function statusMiB(field: 'VmHWM' | 'VmRSS'): number {
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
}

async function child(mode: Mode, megabytes: number): Promise<Measurement> {
  const db = await createTestDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  try {
    await migrate(pool, await loadMigrations(migrationsDir), createLogger('silent'));
    const userId = String((await pool.query<{ id: string }>(`INSERT INTO users (name) VALUES ('measure') RETURNING id`)).rows[0]!.id);
    const keyId = randomUUID();
    await pool.query(`INSERT INTO api_keys (id, user_id, prefix, secret_hash) VALUES ($1, $2, 'measure', 'unused')`, [keyId, userId]);
    const body = payload(megabytes * 1_000_000);
    const sha256 = createHash('sha256').update(body).digest();
    const now = new Date();
    const values = [userId, keyId, 'mqtt-tcp', 'health/export', 'phone', '192.0.2.1', body, sha256, body.length, now, now, 'received'];
    // A warm connection and an empty garbage heap, so the peak is the statement's own.
    await pool.query('SELECT 1');
    (globalThis as { gc?: () => void }).gc?.();
    const baselineMiB = statusMiB('VmRSS');
    writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
    const cpu = process.cpuUsage();
    const started = performance.now();
    const { rows } = mode === 'pg' ? await pool.query(SQL, values) : await queryWithoutCopy<{ inserted: boolean }>(pool, SQL, values);
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const cpuMs = (used.user + used.system) / 1000;
    const peakMiB = statusMiB('VmHWM');
    if (rows[0]?.inserted !== true) throw new Error('the payload was not inserted');
    return { mode, baselineMiB, peakMiB, ms, cpuMs };
  } finally {
    await pool.end();
    await db.drop();
  }
}

function runChild(mode: Mode, megabytes: number): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const c = fork(new URL(import.meta.url).pathname, ['child', mode, String(megabytes)], { execArgv: ['--expose-gc'] });
    c.once('message', (m) => resolve(m as Measurement));
    c.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`child exited with ${code}`))));
  });
}

async function main(): Promise<void> {
  const [first, ...rest] = process.argv.slice(2);
  if (first === 'child') {
    const result = await child(rest[0] as Mode, Number(rest[1]));
    process.send!(result);
    return;
  }
  const megabytes = Number(first ?? 100);
  const runs = Number(rest[0] ?? 3);
  for (let run = 1; run <= runs; run++) {
    for (const mode of ['pg', 'zero-copy'] as const) {
      const m = await runChild(mode, megabytes);
      process.stdout.write(
        `run ${run} ${mode.padEnd(9)} ${megabytes} MB: RSS before ${m.baselineMiB.toFixed(0)} MiB, peak ${m.peakMiB.toFixed(0)} MiB ` +
          `(+${(m.peakMiB - m.baselineMiB).toFixed(0)} MiB), statement ${m.ms.toFixed(0)} ms, this process's CPU ${m.cpuMs.toFixed(0)} ms\n`,
      );
    }
  }
}

await main();
