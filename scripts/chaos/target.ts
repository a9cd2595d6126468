import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { KeyStore } from '../../src/auth/key-store.js';
import { createLogger } from '../../src/log.js';
import { migrationsDir } from '../../src/paths.js';
import { EmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { loadMigrations, migrate } from '../../src/store/migrator.js';

export type DatabaseSource = 'DATABASE_URL' | 'TEST_DATABASE_URL' | 'embedded';

/** The run's own database: created fresh, dropped at the end, so runs never see each other's rows. */
export interface RunDatabase {
  url: string;
  name: string;
  source: DatabaseSource;
  drop(): Promise<void>;
}

interface Server {
  adminUrl: string;
  source: DatabaseSource;
  close(): Promise<void>;
}

async function openServer(env: NodeJS.ProcessEnv): Promise<Server> {
  if (env.DATABASE_URL) return { adminUrl: env.DATABASE_URL, source: 'DATABASE_URL', close: async () => undefined };
  if (env.TEST_DATABASE_URL) return { adminUrl: env.TEST_DATABASE_URL, source: 'TEST_DATABASE_URL', close: async () => undefined };
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ss-chaos-pg-'));
  // mkdtemp makes 0700 folders; the server may run as another user when we are root.
  await chmod(dataDir, 0o711);
  const embedded = new EmbeddedPostgres({ dataDir, port: 0, logger: createLogger('warn') });
  await embedded.start();
  return {
    adminUrl: embedded.connectionString,
    source: 'embedded',
    async close() {
      await embedded.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export async function createRunDatabase(env: NodeJS.ProcessEnv, prefix = 'ss_chaos'): Promise<RunDatabase> {
  const server = await openServer(env);
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  try {
    await adminQuery(server.adminUrl, `CREATE DATABASE ${name}`);
  } catch (err) {
    await server.close();
    throw err;
  }
  const url = new URL(server.adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    source: server.source,
    async drop() {
      try {
        await adminQuery(server.adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await server.close();
      }
    },
  };
}

/** Migrates the run's database and makes the one API key every publisher uses. */
export async function prepareSchema(pool: pg.Pool): Promise<{ key: string }> {
  await migrate(pool, await loadMigrations(migrationsDir), createLogger('silent'));
  const created = await new KeyStore(pool).create({ userName: 'chaos', label: 'chaos run' });
  return { key: created.key };
}
