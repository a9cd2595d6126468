import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { defaultLimits } from '../src/hae/limits.js';
import { parseHaePayload, parseHaePayloadInSteps } from '../src/hae/parse.js';
import { ConstraintViolationError, PayloadProcessor, type ProcessedPayload } from '../src/ingest/processor.js';
import { createLogger } from '../src/log.js';
import { PartitionManager, partitionedTables } from '../src/store/partitions.js';
import { allTypesPayload } from './helpers/all-types-payload.js';
import { createMigratedDatabase, type TestDatabase } from './helpers/database.js';

/*
 * A large payload's metric rows are written while the rest of it is parsed (processor.ts,
 * streaming-writer.ts). Whatever happens, the tables and counts must be exactly those of writing
 * after the parse: each case runs both ways, for two users, and compares every stored row.
 */

const log = createLogger('silent');
let db: TestDatabase;
let pool: pg.Pool;
let partitions: PartitionManager;

before(async () => {
  ({ db, pool } = await createMigratedDatabase(6));
  partitions = new PartitionManager(pool, log);
});
after(async () => {
  await pool?.end();
  await db?.drop();
});

const pad = (n: number): string => String(n).padStart(2, '0');
const utc = (ms: number, offset = '+0000'): string => {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${offset}`;
};

/** Heart rates and two quantity metrics, minute by minute from `start`, plus every other data type. */
function export_(start: number, points: number, value: (i: number) => number = (i) => i % 90): Record<string, unknown> {
  const base = allTypesPayload() as { data: { metrics: unknown[] } & Record<string, unknown> };
  const minute = (i: number) => utc(start + i * 60_000);
  base.data.metrics.push(
    { name: 'heart_rate', units: 'count/min', data: Array.from({ length: points }, (_, i) => ({ date: minute(i), Min: 50 + value(i), Avg: 60 + value(i), Max: 70 + value(i), source: 'Watch’s' })) },
    { name: 'step_count', units: 'count', data: Array.from({ length: points }, (_, i) => ({ date: minute(i), qty: value(i), source: i % 2 ? 'Phone' : 'Watch' })) },
    { name: 'active_energy', units: 'kcal', data: Array.from({ length: points }, (_, i) => ({ date: minute(i), qty: value(i) / 4 })) },
  );
  return base;
}

const processor = (writeConnections = 2) => new PayloadProcessor({ pool, partitions, chunkRows: 100, limits: defaultLimits, writeConnections, pointsPerParseStep: 150 });

/** The same payload for two users: one written while parsed, one after. Returns both outcomes. */
async function bothWays(ingestionId: string, users: [string, string], payload: () => unknown): Promise<[ProcessedPayload, ProcessedPayload]> {
  const whileParsing = await processor().processPayload(ingestionId, users[0], { json: payload(), mayContainNul: false, writeWhileParsing: true });
  const afterParse = await processor().processPayload(ingestionId, users[1], { json: payload(), mayContainNul: false });
  return [whileParsing, afterParse];
}

/** Every stored row of a user in every sample table, user id left out. */
async function storedRows(userId: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const table of partitionedTables) {
    const { rows } = await pool.query<{ row: string }>(`SELECT (to_jsonb(t) - 'user_id')::text AS row FROM ${table} t WHERE user_id = $1 ORDER BY 1`, [userId]);
    out[table] = rows.map((r) => r.row);
  }
  return out;
}

async function assertSameOutcome([a, b]: [ProcessedPayload, ProcessedPayload], users: [string, string]): Promise<void> {
  assert.deepEqual(a.result, b.result);
  assert.deepEqual(a.rejectionTallies, b.rejectionTallies);
  const [rowsA, rowsB] = [await storedRows(users[0]), await storedRows(users[1])];
  assert.ok(rowsA['heart_rate_samples']!.length > 0);
  assert.deepEqual(rowsA, rowsB);
}

describe('writing rows while the payload is parsed', () => {
  test('the parser in steps yields the rows read so far and ends with what parseHaePayload gives', () => {
    const payload = export_(Date.UTC(2024, 0, 1), 1_000);
    const steps = parseHaePayloadInSteps(payload, { limits: defaultLimits, now: new Date(Date.UTC(2026, 0, 1)) }, 100);
    const seen: number[] = [];
    let step = steps.next();
    const result = step.value;
    for (; !step.done; step = steps.next()) {
      assert.equal(step.value, result, 'every pause yields the one result being filled');
      seen.push(result.heartRate.length + result.quantity.length);
    }
    assert.ok(seen.length >= 30, `paused ${seen.length} times`);
    assert.ok(seen.some((n, i) => i > 0 && n > seen[i - 1]!), 'rows grow between pauses');
    assert.deepEqual(step.value, parseHaePayload(payload, { limits: defaultLimits, now: new Date(Date.UTC(2026, 0, 1)) }));
  });

  test('a first export, then a newer one changing some values: same rows and counts as writing after the parse', async () => {
    const users: [string, string] = ['101', '102'];
    const start = Date.UTC(2024, 0, 31, 20);
    const first = await bothWays('500', users, () => export_(start, 1_500));
    assert.equal(first[0].writtenAfterParseBecause, null, 'written while parsed');
    assert.equal(first[1].writtenAfterParseBecause, undefined);
    assert.deepEqual(first[0].result.counts.heart_rate, { received: 1_500, inserted: 1_500, updated: 0, unchanged: 0, rejected: 0 });
    await assertSameOutcome(first, users);

    // Newer: every fifth value changes, and the export reaches 300 points further.
    const newer = await bothWays('501', users, () => export_(start, 1_800, (i) => (i % 5 === 0 ? (i % 90) + 1 : i % 90)));
    assert.equal(newer[0].writtenAfterParseBecause, null);
    const changed = Array.from({ length: 1_500 }, (_, i) => i).filter((i) => i % 5 === 0 && (i % 90) + 1 !== i % 90).length;
    assert.deepEqual(newer[0].result.counts.heart_rate, { received: 1_800, inserted: 300, updated: changed, unchanged: 1_500 - changed, rejected: 0 });
    await assertSameOutcome(newer, users);

    // The older export again changes nothing.
    const older = await bothWays('500', users, () => export_(start, 1_500));
    assert.deepEqual(older[0].result.counts.heart_rate, { received: 1_500, inserted: 0, updated: 0, unchanged: 1_500, rejected: 0 });
    await assertSameOutcome(older, users);
  });

  test('points out of time order or twice: rolled back and written after the parse, with the same rows and counts', async () => {
    const users: [string, string] = ['111', '112'];
    const payload = () => {
      const p = export_(Date.UTC(2024, 3, 1), 1_200) as { data: { metrics: Array<{ name: string; data: Array<Record<string, unknown>> }> } };
      const heart = p.data.metrics.find((m) => m.name === 'heart_rate')!.data;
      // Late in the metric, after several chunks went out: a minute again with another value.
      heart.push({ ...heart[40]!, Avg: 99 });
      return p;
    };
    const outcome = await bothWays('510', users, payload);
    assert.match(outcome[0].writtenAfterParseBecause ?? '', /heart_rate rows are not in key order/);
    assert.deepEqual(outcome[0].result.counts.heart_rate, { received: 1_201, inserted: 1_200, updated: 0, unchanged: 1, rejected: 0 });
    await assertSameOutcome(outcome, users);
    const kept = await pool.query<{ avg: number; revision: number }>(`SELECT avg_bpm AS avg, revision FROM heart_rate_samples WHERE user_id = 111 AND start_time = $1`, [
      new Date(Date.UTC(2024, 3, 1) + 40 * 60_000),
    ]);
    assert.deepEqual(kept.rows, [{ avg: 99, revision: 1 }], 'the last one of the key, written once');
  });

  test('rows in a month no partition was made ready for: rolled back and written after the parse', async () => {
    const users: [string, string] = ['121', '122'];
    const payload = () => {
      const p = export_(Date.UTC(2019, 6, 1), 900) as { data: { metrics: Array<{ name: string; data: Array<Record<string, unknown>> }> } };
      // Steps in a month of their own, and the first point's date cannot be read: the metric's
      // span is unknown before the parse.
      const steps = p.data.metrics.find((m) => m.name === 'step_count')!.data;
      steps.forEach((point, i) => (point['date'] = utc(Date.UTC(2018, 2, 1) + i * 60_000)));
      steps[0]!['date'] = 'yesterday';
      return p;
    };
    const outcome = await bothWays('520', users, payload);
    assert.match(outcome[0].writtenAfterParseBecause ?? '', /quantity rows reach a month whose partition was not made ready/);
    assert.equal(outcome[0].result.counts.quantity!.rejected, 1);
    await assertSameOutcome(outcome, users);
  });

  test('a chunk the database refuses fails the whole payload, and no connection keeps its rows', async () => {
    await pool.query(`CREATE FUNCTION test_refuse_streamed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.user_id = 131 AND NEW.start_time = '2024-08-01 10:00:00+00' THEN RAISE EXCEPTION USING ERRCODE = '23514', MESSAGE = 'refused'; END IF;
        RETURN NEW;
      END $$`);
    await pool.query('CREATE TRIGGER test_refuse_streamed BEFORE INSERT ON heart_rate_samples FOR EACH ROW EXECUTE FUNCTION test_refuse_streamed()');
    try {
      await assert.rejects(
        processor().processPayload('530', '131', { json: export_(Date.UTC(2024, 7, 1), 1_000), mayContainNul: false, writeWhileParsing: true }),
        (err: unknown) => err instanceof ConstraintViolationError && /heart_rate/.test(err.message),
      );
      for (const table of partitionedTables) {
        const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE user_id = 131`);
        assert.equal(rows[0]!.n, 0, table);
      }
      const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`);
      assert.equal(rows[0]!.n, 0, 'no transaction left open');
    } finally {
      await pool.query('DROP TRIGGER test_refuse_streamed ON heart_rate_samples');
    }
  });

  test('one connection, and a payload of a few rows of every type, come out the same as well', async () => {
    const single = await new PayloadProcessor({ pool, partitions, chunkRows: 64, limits: defaultLimits, writeConnections: 1, pointsPerParseStep: 50 }).processPayload('540', '141', {
      json: export_(Date.UTC(2024, 9, 1), 700),
      mayContainNul: false,
      writeWhileParsing: true,
    });
    const reference = await processor().processPayload('540', '142', { json: export_(Date.UTC(2024, 9, 1), 700), mayContainNul: false });
    assert.equal(single.writtenAfterParseBecause, null);
    await assertSameOutcome([single, reference], ['141', '142']);

    const none = await processor().processPayload('541', '143', { json: allTypesPayload(), mayContainNul: false, writeWhileParsing: true });
    const noneReference = await processor().processPayload('541', '144', { json: allTypesPayload(), mayContainNul: false });
    assert.deepEqual(none.result, noneReference.result);
    assert.deepEqual(await storedRows('143'), await storedRows('144'));
  });
});
