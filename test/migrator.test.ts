import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { AppError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { migrationsDir } from '../src/paths.js';
import { loadMigrations, migrate } from '../src/store/migrator.js';
import { PartitionManager, monthOf, partitionedTables } from '../src/store/partitions.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const log = createLogger('silent');
let db: TestDatabase;
let pool: pg.Pool;

before(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
});
after(async () => {
  await pool?.end();
  await db?.drop();
});

test('two processes migrating at once apply each migration exactly once', async () => {
  const migrations = await loadMigrations(migrationsDir);
  const [a, b] = await Promise.all([migrate(pool, migrations, log), migrate(pool, migrations, log)]);
  assert.deepEqual([...a.applied, ...b.applied].sort(), migrations.map((m) => m.version));
  const { rows } = await pool.query('SELECT version FROM schema_migrations ORDER BY version');
  assert.deepEqual(rows.map((r) => r.version), migrations.map((m) => m.version));
  const again = await migrate(pool, migrations, log);
  assert.deepEqual(again.applied, []);
});

test('a schema newer than the code is refused', async () => {
  const migrations = await loadMigrations(migrationsDir);
  await pool.query(`INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')`);
  try {
    await assert.rejects(migrate(pool, migrations, log), (err: unknown) => err instanceof AppError && err.code === 'SS_SCHEMA_TOO_NEW');
  } finally {
    await pool.query('DELETE FROM schema_migrations WHERE version = 9999');
  }
});

test('a failing migration is rolled back and reported', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ss-migrations-'));
  try {
    writeFileSync(path.join(dir, '0001_ok.sql'), 'CREATE TABLE mig_probe_ok (id int);');
    writeFileSync(path.join(dir, '0002_broken.sql'), 'CREATE TABLE mig_probe_broken (id int); SELECT no_such_function();');
    const scratch = await createTestDatabase();
    const p = new pg.Pool({ connectionString: scratch.url });
    try {
      await assert.rejects(migrate(p, await loadMigrations(dir), log), (err: unknown) => err instanceof AppError && err.code === 'SS_MIGRATION_FAILED' && /0002|broken/.test(err.message) || (err instanceof AppError && err.details?.version === 2));
      const { rows } = await p.query(`SELECT to_regclass('mig_probe_ok') IS NOT NULL AS ok, to_regclass('mig_probe_broken') IS NOT NULL AS broken`);
      assert.deepEqual(rows[0], { ok: true, broken: false });
    } finally {
      await p.end();
      await scratch.drop();
    }
    writeFileSync(path.join(dir, '0004_gap.sql'), 'SELECT 1;');
    await assert.rejects(loadMigrations(dir), /without gaps/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('partitions: monthly, UTC bounds, created ahead and on demand, idempotent', async () => {
  const partitions = new PartitionManager(pool, log);
  await partitions.ensureAhead(2, new Date('2031-11-15T12:00:00Z'));
  for (const table of partitionedTables) {
    for (const month of ['2031_11', '2031_12', '2032_01']) {
      const { rows } = await pool.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [`${table}_${month}`]);
      assert.equal(rows[0].present, true, `${table}_${month}`);
    }
  }
  // Concurrent creators of the same partition do not collide.
  await Promise.all([1, 2, 3].map(() => new PartitionManager(pool, log).ensureMonths('quantity_samples', ['1999-03-01'])));
  // Bounds render in the session's time zone: read them in UTC.
  const client = await pool.connect();
  const { rows } = await client
    .query(`SET TIME ZONE 'UTC'`)
    .then(() => client.query(`SELECT pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_class c WHERE c.relname = 'quantity_samples_1999_03'`))
    .finally(() => client.query('RESET TIME ZONE').then(() => client.release()));
  assert.equal(rows[0].bound, `FOR VALUES FROM ('1999-03-01 00:00:00+00') TO ('1999-04-01 00:00:00+00')`);
  assert.equal(monthOf(Date.UTC(2024, 0, 31, 23, 59)), '2024-01-01');
  // BRIN on time, inherited by the partitions.
  const brin = await pool.query(`SELECT count(*)::int AS n FROM pg_indexes WHERE tablename = 'quantity_samples_1999_03' AND indexdef ILIKE '%USING brin (start_time)%'`);
  assert.equal(brin.rows[0].n, 1);
});
