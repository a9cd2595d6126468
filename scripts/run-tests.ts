/**
 * `npm test`: runs every compiled test file with node's test runner against TEST_DATABASE_URL,
 * or, when it is unset (a fresh machine), against an embedded PostgreSQL started for this run
 * and removed afterwards. Each test file creates and drops its own database inside it. The
 * rate-limit tests get a Redis the same way (scripts/test-redis.ts).
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../src/log.js';
import { projectRoot } from '../src/paths.js';
import { EmbeddedPostgres } from '../src/store/embedded-postgres.js';
import { provideTestRedis } from './test-redis.js';

async function main(): Promise<number> {
  const testDir = path.join(projectRoot, 'dist', 'test');
  const only = process.argv.slice(2);
  const files = (await readdir(testDir))
    .filter((f) => f.endsWith('.test.js'))
    .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
    .sort()
    .map((f) => path.join(testDir, f));
  if (files.length === 0) {
    process.stderr.write('no test files found in dist/test\n');
    return 1;
  }
  const env = { ...process.env };
  let embedded: EmbeddedPostgres | null = null;
  let dataDir: string | null = null;
  if (!env.TEST_DATABASE_URL) {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'self-sensored-test-'));
    // mkdtemp makes 0700 folders; the server may run as another user (when we are root).
    await chmod(dataDir, 0o711);
    embedded = new EmbeddedPostgres({ dataDir, port: 0, logger: createLogger('warn') });
    process.stdout.write('TEST_DATABASE_URL is not set: starting an embedded PostgreSQL for this run\n');
    await embedded.start();
    env.TEST_DATABASE_URL = embedded.connectionString;
  }
  const redis = await provideTestRedis(env);
  if (redis.url) env.TEST_REDIS_URL = redis.url;
  else if (env.CI) {
    await embedded?.stop();
    process.stderr.write(`CI needs a Redis for the rate-limit tests: ${redis.reason}\n`);
    return 1;
  } else {
    env.TEST_REDIS_UNAVAILABLE = redis.reason;
    process.stdout.write(`NOTE: the Redis rate-limit backend is NOT tested on this machine (${redis.reason}); set TEST_REDIS_URL or install redis-server\n`);
  }
  try {
    return await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=180000', ...files], {
        stdio: 'inherit',
        env,
      });
      const forward = (signal: NodeJS.Signals) => child.kill(signal);
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    });
  } finally {
    await redis.stop();
    await embedded?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`test run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
