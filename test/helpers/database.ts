import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createLogger } from '../../src/log.js';
import { migrationsDir } from '../../src/paths.js';
import { loadMigrations, migrate } from '../../src/store/migrator.js';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

export function adminUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the tests with `npm test` (it starts a database when needed)');
  return url;
}

/** A fresh database per test file, so runs and files never collide. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const admin = adminUrl();
  const name = `ss_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      try {
        // pg's pool.end() resolves before its sockets are closed: a FORCE drop right away kills
        // those backends, and the closing clients then throw "terminating connection due to
        // administrator command" into whichever test runs next. Give them a moment to go.
        for (let waited = 0; waited < 2_000; waited += 20) {
          const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
          if (rows[0]!.n === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A fresh database with every migration applied, and a pool on it (the caller ends the pool and drops the database). */
export async function createMigratedDatabase(poolMax = 4): Promise<{ db: TestDatabase; pool: pg.Pool }> {
  const db = await createTestDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: poolMax });
  await migrate(pool, await loadMigrations(migrationsDir), createLogger('silent'));
  return { db, pool };
}

/**
 * Makes this database refuse a quantity sample with this value, which the parser accepts: a row
 * the database refuses in the middle of a payload or a batch.
 */
export async function refuseQuantity(sql: pg.Pool | pg.ClientBase, qty: number, message = 'poison sample refused by the test trigger'): Promise<void> {
  await sql.query(`CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.qty = ${qty} THEN RAISE EXCEPTION '${message}'; END IF;
      RETURN NEW;
    END $$`);
  await sql.query('CREATE TRIGGER test_poison BEFORE INSERT OR UPDATE ON quantity_samples FOR EACH ROW EXECUTE FUNCTION test_poison()');
}
