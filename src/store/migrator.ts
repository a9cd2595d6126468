import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { AppError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

// Any constant works; it only has to be the same for every self-sensored process.
const MIGRATION_LOCK_KEY = 7_314_159_265;
const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export async function loadMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_PATTERN.exec(file);
    if (!match) throw new AppError('SS_MIGRATION_FAILED', `migration file name ${file} is not NNNN_name.sql`);
    const sql = await readFile(path.join(dir, file), 'utf8');
    migrations.push({
      version: Number(match[1]),
      name: match[2]!,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new AppError('SS_MIGRATION_FAILED', `migration versions must be 1..n without gaps; found ${m.version} at position ${i + 1}`);
  });
  return migrations;
}

export interface MigrationReport {
  applied: number[];
  current: number;
}

/**
 * Applies pending migrations, each in its own transaction, under a session advisory lock so
 * that two processes starting together do not race. Refuses a schema newer than the code.
 */
export async function migrate(pool: pg.Pool, migrations: Migration[], logger: Logger): Promise<MigrationReport> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number; checksum: string; name: string }>(
      'SELECT version, checksum, name FROM schema_migrations ORDER BY version',
    );
    const known = new Map(migrations.map((m) => [m.version, m]));
    const latestKnown = migrations.at(-1)?.version ?? 0;
    const newest = rows.at(-1)?.version ?? 0;
    if (newest > latestKnown) {
      throw new AppError(
        'SS_SCHEMA_TOO_NEW',
        `the database schema is at version ${newest} but this version of self-sensored knows migrations up to ${latestKnown}; upgrade self-sensored`,
        { databaseVersion: newest, codeVersion: latestKnown },
      );
    }
    for (const row of rows) {
      if (known.get(row.version)?.checksum !== row.checksum) {
        // Landed migrations are never edited; a mismatch means a hand-edited file or checkout.
        logger.warn({ version: row.version, name: row.name }, 'applied migration differs from the file on disk');
      }
    }
    const applied: number[] = [];
    const done = new Set(rows.map((r) => r.version));
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      try {
        await client.query('BEGIN');
        await client.query(migration.sql);
        await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
          migration.version,
          migration.name,
          migration.checksum,
        ]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new AppError(
          'SS_MIGRATION_FAILED',
          `migration ${migration.version} (${migration.name}) failed: ${errorMessage(err)}`,
          { version: migration.version },
          { cause: err },
        );
      }
      applied.push(migration.version);
      logger.info({ version: migration.version, name: migration.name }, 'migration applied');
    }
    return { applied, current: Math.max(newest, latestKnown) };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    client.release();
  }
}
