import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DestinationStream } from 'pino';
import pg from 'pg';
import { App } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestApp {
  app: App;
  db: TestDatabase;
  /** A pool of the test's own, for assertions (not the daemon's). */
  sql: pg.Pool;
  httpUrl: string;
  wsUrl: string;
  tcpUrl: string;
  createKey(user: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * The whole daemon against a fresh database: real PostgreSQL, real listeners on ephemeral ports.
 * `settings` are environment-variable settings, as a user would give them.
 */
export async function startTestApp(
  settings: Record<string, string> = {},
  options: { database?: TestDatabase; tweak?: (c: Config) => Config; logLines?: string[]; logDestination?: DestinationStream } = {},
): Promise<TestApp> {
  const db = options.database ?? (await createTestDatabase());
  // Each app gets its own data directory (the spool lives there), removed on close.
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ss-app-'));
  const base = loadConfig({
    DATABASE_URL: db.url,
    DATA_DIR: dataDir,
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    MQTT_TCP_HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    BOOTSTRAP_KEY: 'false',
    PG_POOL_MAX: '4',
    ...settings,
  });
  // Port 0 in the environment means "TCP off"; tests want it on, on an ephemeral port.
  let config: Config = { ...base, mqtt: { ...base.mqtt, tcpEnabled: true, tcpPort: 0 } };
  if (options.tweak) config = options.tweak(config);
  const logLines = options.logLines;
  const logger = logLines ? createLogger(config.log.level, { write: (line: string) => void logLines.push(line) }) : createLogger(config.log.level, options.logDestination);
  const app = new App({ config, logger, version: 'test' });
  await app.start();
  const sql = new pg.Pool({ connectionString: db.url, max: 2 });
  // pool.end() resolves before its sockets are closed; the DROP DATABASE … WITH (FORCE) in close()
  // can then end one of them, which the pool reports as an 'error' that nobody else would handle.
  sql.on('error', () => undefined);
  const http = app.httpAddress;
  const tcp = app.mqttTcpAddress!;
  return {
    app,
    db,
    sql,
    httpUrl: `http://127.0.0.1:${http.port}`,
    wsUrl: `ws://127.0.0.1:${http.port}/mqtt`,
    tcpUrl: `mqtt://127.0.0.1:${tcp.port}`,
    async createKey(user: string) {
      return (await app.keys.create({ userName: user })).key;
    },
    async close() {
      await app.stop();
      await sql.end();
      if (!options.database) await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function count(sql: pg.Pool, table: string, where = 'true', params: unknown[] = []): Promise<number> {
  const { rows } = await sql.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${where}`, params);
  return Number(rows[0]!.n);
}

/** Polls until `check` returns true or the time runs out. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
