import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { AcceptOutcome, IngestRequest, ProcessingResult } from '../broker/types.js';
import { defaultLimits } from '../src/hae/limits.js';
import { InCommitProcessor, UPSERT_AFTER_CONFLICT_MS } from '../src/ingest/process-in-commit.js';
import { RawIngestionStore } from '../src/ingest/raw-store.js';
import type { IngestService } from '../src/ingest/service.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { PartitionManager, partitionedTables } from '../src/store/partitions.js';
import { Database } from '../src/store/pool.js';
import { allTypesPayload } from './helpers/all-types-payload.js';
import { waitFor } from './helpers/app.js';
import { createMigratedDatabase, refuseQuantity, type TestDatabase } from './helpers/database.js';
import { batchingIngestService } from './helpers/ingest-service.js';
import { readFixture } from './helpers/fixtures.js';

const log = createLogger('silent');
const monthsFrom = (year: number, month: number, count: number): string[] =>
  Array.from({ length: count }, (_, i) => new Date(Date.UTC(year, month - 1 + i, 1)).toISOString().slice(0, 10));
const POISON_QTY = 666;
let db: TestDatabase;
let pool: pg.Pool;
let groupCommitDb: Database;
let partitions: PartitionManager;

before(async () => {
  ({ db, pool } = await createMigratedDatabase(6));
  groupCommitDb = new Database({ connectionString: db.url, poolMax: 2, groupCommitLockTimeoutMs: 500 }, log);
  await groupCommitDb.start();
  partitions = new PartitionManager(pool, log);
  // The months the payloads use, as a running daemon has them after their first payload; 2011 is left out.
  for (const table of partitionedTables) await partitions.ensureMonths(table, monthsFrom(2023, 1, 48));
  // This database refuses one value the parser accepts: a row refused in the middle of a group.
  await refuseQuantity(pool, POISON_QTY);
});
after(async () => {
  await groupCommitDb?.stop();
  await pool?.end();
  await db?.drop();
});

interface Harness {
  service: IngestService;
  metrics: Metrics;
  userId: string;
  keyId: string;
}

/** A user of its own and a service storing its payloads, processing small ones in the commit or (inCommit false) after it. */
async function harness(name: string, inCommit: boolean, groupCommitPool = groupCommitDb.groupCommitPool, now?: () => number): Promise<Harness> {
  const userId = String((await pool.query<{ id: string }>(`INSERT INTO users (name) VALUES ($1) RETURNING id`, [name])).rows[0]!.id);
  const keyId = randomUUID();
  await pool.query(`INSERT INTO api_keys (id, user_id, prefix, secret_hash) VALUES ($1, $2, $3, 'unused')`, [keyId, userId, name.slice(0, 8)]);
  const metrics = new Metrics();
  const raw = new RawIngestionStore(pool, {
    maxBatchBytes: 8 * 1024 * 1024,
    ...(inCommit && { inCommit: new InCommitProcessor({ pool: groupCommitPool, partitions, limits: defaultLimits, metrics, logger: log, ...(now && { now }) }) }),
  });
  const service = batchingIngestService({ pool, partitions, raw, metrics, maxAttempts: 2 });
  await service.start();
  return { service, metrics, userId, keyId };
}

function request(h: Harness, body: string): IngestRequest {
  return {
    identity: { userId: h.userId, userName: 'u', keyId: h.keyId, keyPrefix: 'x', scopes: ['ingest'] },
    transport: 'http',
    topic: null,
    body: Buffer.from(body),
    receivedAt: new Date(),
  };
}

/**
 * Accepts `blocker` and, while its commit is in flight, every body of `group`: those reach the
 * store together and share the next group commit. Answers each one's outcome and processing result.
 */
async function sendGroup(h: Harness, group: string[], blocker = marker()): Promise<Array<{ outcome: AcceptOutcome; processed: ProcessingResult | { error: string } | null }>> {
  const first = h.service.accept(request(h, blocker));
  const rest = group.map((b) => h.service.accept(request(h, b)));
  await first;
  const outcomes = await Promise.all(rest);
  return Promise.all(outcomes.map(async (outcome) => ({ outcome, processed: outcome.kind === 'stored' ? await outcome.processed : null })));
}

let markers = 0;
/** A payload of its own (one step count far from the others' keys), so that it is never a re-send. */
function marker(): string {
  markers++;
  return steps([point(2024, 1, 1 + (markers % 27), markers % 60, markers)], `marker${markers}`);
}

const point = (year: number, month: number, day: number, minute: number, qty: number, source = 'Watch') => ({
  date: `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')} 10:${String(minute).padStart(2, '0')}:00 +0100`,
  qty,
  source,
});
const steps = (points: object[], name = 'step_count'): string => JSON.stringify({ data: { metrics: [{ name, units: 'count', data: points }] } });

async function inCommitFallbacks(metrics: Metrics): Promise<number> {
  return (await metrics.inCommitFallbacks.get()).values[0]?.value ?? 0;
}

/** Groups whose insert-only statement met stored data and were upserted instead. */
async function inCommitConflicts(metrics: Metrics): Promise<number> {
  return (await metrics.inCommitConflicts.get()).values[0]?.value ?? 0;
}

/**
 * Everything stored for a user, with ingestion ids replaced by the payload's position in the
 * order of arrival (ids differ between users, the order they encode must not).
 */
async function snapshot(userId: string): Promise<unknown> {
  const { rows: raws } = await pool.query<{ id: string; sha: string }>(`SELECT r.id::text AS id, encode(r.sha256, 'hex') AS sha FROM raw_ingestions r WHERE r.user_id = $1 ORDER BY r.id`, [userId]);
  const rank = new Map(raws.map((r, i) => [r.id, i]));
  const rawState = await pool.query(
    `SELECT encode(sha256, 'hex') AS sha, status, receive_count, attempts, counts, rejected_count, rejections, not_stored, error
       FROM raw_ingestions WHERE user_id = $1 ORDER BY id`,
    [userId],
  );
  const samples: Record<string, unknown[]> = {};
  for (const table of partitionedTables) {
    const cols = (await pool.query<{ c: string }>(`SELECT column_name AS c FROM information_schema.columns WHERE table_name = $1 AND column_name NOT IN ('user_id', 'ingestion_id') ORDER BY ordinal_position`, [table])).rows.map((r) => r.c);
    const { rows } = await pool.query(`SELECT ingestion_id::text AS ingestion, ${cols.map((c) => `${c}::text AS ${c}`).join(', ')} FROM ${table} WHERE user_id = $1 ORDER BY ${cols.map((c) => `${c}::text`).join(', ')}`, [userId]);
    samples[table] = rows.map((r: Record<string, unknown>) => ({ ...r, ingestion: rank.get(r.ingestion as string) }));
  }
  return { raw: rawState.rows, samples };
}

describe('small payloads processed by the group commit that stores them', () => {
  test('every stored row, count and status is what processing after the commit gives, through re-sends and groups', { timeout: 120_000 }, async () => {
    const fast = await harness('fast', true);
    const plain = await harness('plain', false);
    const small = readFixture('composed/hae-small.json').toString('utf8');
    const sleep = readFixture('composed/hae-sleep-unaggregated.json').toString('utf8');
    const workouts = readFixture('real/hae-workouts-sample.json').toString('utf8');
    const p1 = steps([point(2025, 3, 1, 0, 100), point(2025, 3, 1, 1, 110), point(2025, 3, 1, 2, 120)]);
    // Same keys as p1, newer values: the later one wins in the group and in the table.
    const p2 = steps([point(2025, 3, 1, 1, 111), point(2025, 3, 1, 2, 121), point(2025, 3, 1, 3, 131)]);
    const p3 = steps([point(2025, 3, 1, 0, 101), point(2025, 3, 1, 3, 132)]);
    const p4 = steps([point(2025, 3, 1, 3, 133), point(2025, 3, 1, 4, 143)]);
    const groups = [
      [JSON.stringify(allTypesPayload()), small, sleep, workouts, p1, p2, '{}', p1 /* the same bytes twice in one group */],
      [p1 /* re-sent: changes nothing */, p3],
      // p2 re-sent after p4: the re-send writes nothing, and p4's rows displace none of its own.
      [p4, p2],
    ];
    const answers: Record<string, unknown[]> = { fast: [], plain: [] };
    markers = 0;
    // Group 1 is new data, written by the insert-only statement; the re-send in group 2 fails it, and the
    // user's later groups are upserted from then on.
    const conflicts: number[] = [];
    for (const group of groups) {
      answers.fast!.push(...(await sendGroup(fast, group)).map((a) => a.processed));
      conflicts.push(await inCommitConflicts(fast.metrics));
    }
    assert.deepEqual(conflicts, [0, 1, 1], 'insert-only, then one conflict, then upserts');
    markers = 0;
    for (const group of groups) answers.plain!.push(...(await sendGroup(plain, group)).map((a) => a.processed));
    assert.ok(await fast.service.drain(60_000));
    assert.ok(await plain.service.drain(60_000));

    const withoutIds = (answers: unknown[]) => answers.map((a) => (a && typeof a === 'object' ? { ...a, ingestionId: undefined } : a));
    assert.deepEqual(withoutIds(answers.fast!), withoutIds(answers.plain!), 'the same answers');
    assert.deepEqual(await snapshot(fast.userId), await snapshot(plain.userId), 'the same rows, counts and statuses');
    const steps2025 = await pool.query<{ qty: number; n: string }>(
      `SELECT q.qty, r.receive_count::text AS n FROM quantity_samples q JOIN raw_ingestions r ON r.id = q.ingestion_id
        WHERE q.user_id = $1 AND q.metric = 'step_count' AND q.start_time >= '2025-03-01' AND q.start_time < '2025-03-02' ORDER BY q.start_time`,
      [fast.userId],
    );
    assert.deepEqual(steps2025.rows.map((r) => r.qty), [101, 111, 121, 133, 143], 'the latest export wins each key');
    const { rows: statuses } = await pool.query<{ status: string; n: string }>(`SELECT status, count(*)::text AS n FROM raw_ingestions WHERE user_id = $1 GROUP BY status`, [fast.userId]);
    // 3 blockers and 9 distinct bodies: the copy in group 1 and the two re-sends are not stored again.
    assert.deepEqual(statuses, [{ status: 'processed', n: '12' }], 'every payload stored once and processed');
    assert.ok((await fast.metrics.batchPayloads.get()).values.find((v) => v.metricName?.endsWith('_count'))!.value > 0, 'groups were processed in the commit');
    await fast.service.stop();
    await plain.service.stop();
  });

  test('the answer comes with the acknowledgement: the payload is processed when accept() resolves', async () => {
    const h = await harness('answer', true);
    const outcome = await h.service.accept(request(h, steps([point(2025, 4, 2, 0, 5), point(2025, 4, 2, 1, 6)])));
    assert.equal(outcome.kind, 'stored');
    if (outcome.kind !== 'stored') return;
    const { rows } = await pool.query<{ status: string; counts: unknown; n: string }>(
      `SELECT status, counts, (SELECT count(*) FROM quantity_samples WHERE ingestion_id = r.id)::text AS n FROM raw_ingestions r WHERE id = $1`,
      [outcome.ingestionId],
    );
    assert.deepEqual(rows[0], { status: 'processed', counts: { quantity: { received: 2, inserted: 2, updated: 0, unchanged: 0, rejected: 0 } }, n: '2' }, 'committed with its samples');
    assert.deepEqual((await outcome.processed as ProcessingResult).counts, { quantity: { received: 2, inserted: 2, updated: 0, unchanged: 0, rejected: 0 } });
    assert.equal(h.service.queueLength, 0, 'nothing left to process');
    await h.service.stop();
  });

  test('the store lets go of a small payload\'s parsed tree once its rows are built; a payload of 1 MiB or more keeps it', { timeout: 60_000 }, async () => {
    const h = await harness('tree', true);
    const raw = new RawIngestionStore(pool, {
      maxBatchBytes: 8 * 1024 * 1024,
      inCommit: new InCommitProcessor({ pool: groupCommitDb.groupCommitPool, partitions, limits: defaultLimits, metrics: h.metrics, logger: log }),
    });
    const small = steps([point(2025, 8, 8, 0, 4)]);
    const large = steps(Array.from({ length: 12_000 }, (_, i) => point(2025, 8, 9, i % 1_440, i, `Watch ${'x'.repeat(40)} ${Math.floor(i / 1_440)}`)));
    assert.ok(Buffer.byteLength(large) >= 1024 * 1024);
    const sha = (body: string) => createHash('sha256').update(body).digest();
    const smallJson = { value: JSON.parse(small) as unknown, mayContainNul: false };
    const largeJson = { value: JSON.parse(large) as unknown, mayContainNul: false };
    try {
      const [smallStored, largeStored] = await Promise.all([raw.store(request(h, small), sha(small), smallJson), raw.store(request(h, large), sha(large), largeJson)]);
      assert.equal(smallJson.value, undefined, 'the small payload\'s tree is let go');
      assert.ok(smallStored.processed, 'and the payload was processed by the statement that stored it');
      assert.deepEqual(largeJson.value, JSON.parse(large), 'the large payload keeps its tree for processing after the commit');
      assert.equal(largeStored.processed, undefined);
      assert.equal(largeStored.status, 'received');
    } finally {
      await h.service.stop();
    }
  });

  test('a re-sent payload whose rows displace another payload of its group: the group is stored plainly, the result is the same', async () => {
    const h = await harness('displace', true);
    const old = steps([point(2025, 5, 3, 0, 1), point(2025, 5, 3, 1, 2)]);
    await sendGroup(h, [old]);
    const newer = steps([point(2025, 5, 3, 0, 10), point(2025, 5, 3, 1, 20)]);
    const before = await inCommitFallbacks(h.metrics);
    // `old` again after `newer`: the re-send writes nothing, so `newer` must keep its rows.
    const answers = await sendGroup(h, [newer, old]);
    assert.equal(await inCommitFallbacks(h.metrics), before + 1, 'the statement refused the group');
    assert.ok(await h.service.drain(30_000));
    assert.equal((answers[1]!.outcome as { duplicatePayload: boolean }).duplicatePayload, true);
    const { rows } = await pool.query<{ qty: number }>(`SELECT qty FROM quantity_samples WHERE user_id = $1 AND start_time >= '2025-05-03' AND start_time < '2025-05-04' ORDER BY start_time`, [h.userId]);
    assert.deepEqual(rows.map((r) => r.qty), [10, 20]);
    await h.service.stop();
  });

  test('a month without a partition: acknowledged without waiting for the DDL, processed in the background, later groups in the commit', async () => {
    const h = await harness('partition', true);
    const first = steps([point(2011, 7, 4, 0, 7)]);
    const before = await inCommitFallbacks(h.metrics);
    const [a] = await sendGroup(h, [first]);
    assert.equal(await inCommitFallbacks(h.metrics), before + 1, 'stored without its samples');
    assert.deepEqual((a!.processed as ProcessingResult).counts.quantity, { received: 1, inserted: 1, updated: 0, unchanged: 0, rejected: 0 }, 'processed after the commit');
    const [b] = await sendGroup(h, [steps([point(2011, 7, 5, 0, 8)])]);
    assert.equal(await inCommitFallbacks(h.metrics), before + 1, 'the partition exists now: no fallback');
    assert.deepEqual((b!.processed as ProcessingResult).counts.quantity, { received: 1, inserted: 1, updated: 0, unchanged: 0, rejected: 0 });
    await h.service.stop();
  });

  test('a sample table locked by someone else holds acknowledgements for at most the lock timeout', { timeout: 30_000 }, async () => {
    const h = await harness('locked', true);
    const body = steps([point(2025, 6, 5, 0, 9)]);
    const locker = await pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE quantity_samples IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const outcome = await h.service.accept(request(h, body));
      const waited = Date.now() - started;
      assert.equal(outcome.kind, 'stored');
      assert.ok(waited >= 400 && waited < 5_000, `acknowledged after the lock timeout (${waited} ms)`);
      const { rows } = await pool.query<{ status: string }>(`SELECT status FROM raw_ingestions WHERE user_id = $1`, [h.userId]);
      assert.deepEqual(rows, [{ status: 'received' }], 'stored, not processed yet');
      await locker.query('COMMIT');
      if (outcome.kind === 'stored') assert.equal(((await outcome.processed) as ProcessingResult).counts.quantity?.inserted, 1, 'processed once the lock is gone');
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
    }
    await h.service.stop();
  });

  test('a row the database refuses: the group is stored plainly, the others processed, only the refused payload fails', { timeout: 60_000 }, async () => {
    const h = await harness('poison', true);
    const good = [steps([point(2025, 7, 6, 0, 1)]), steps([point(2025, 7, 6, 1, 2)])];
    const poison = steps([point(2025, 7, 6, 2, POISON_QTY)]);
    const before = await inCommitFallbacks(h.metrics);
    const answers = await sendGroup(h, [good[0]!, poison, good[1]!]);
    assert.equal(await inCommitFallbacks(h.metrics), before + 1);
    assert.ok(answers.every((a) => a.outcome.kind === 'stored'), 'all acknowledged');
    const shas = [good[0]!, poison, good[1]!].map((b) => createHash('sha256').update(b).digest());
    await waitFor(async () => (await pool.query(`SELECT 1 FROM raw_ingestions WHERE user_id = $1 AND status = 'failed'`, [h.userId])).rowCount === 1, 30_000, 'the poison payload marked failed');
    const { rows } = await pool.query<{ status: string; qty: number | null }>(
      `SELECT r.status, q.qty FROM raw_ingestions r LEFT JOIN quantity_samples q ON q.ingestion_id = r.id
        WHERE r.user_id = $1 AND r.sha256 = ANY($2::bytea[]) ORDER BY r.id`,
      [h.userId, shas],
    );
    assert.deepEqual(rows, [
      { status: 'processed', qty: 1 },
      { status: 'failed', qty: null },
      { status: 'processed', qty: 2 },
    ]);
    await h.service.stop();
  });

  /**
   * Commits `body` as a plain raw row from another session while `h` stores the same bytes: the
   * group statement waits for that insert and sees its commit. Answers the outcome.
   */
  async function raceWithOtherSession(h: Harness, body: string): Promise<AcceptOutcome> {
    const other = await pool.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        `INSERT INTO raw_ingestions (user_id, transport, payload, sha256, size_bytes, received_at, last_received_at) VALUES ($1, 'http', $2, $3, $4, now(), now())`,
        [h.userId, Buffer.from(body), createHash('sha256').update(body).digest(), Buffer.byteLength(body)],
      );
      const accepted = h.service.accept(request(h, body));
      await new Promise((r) => setTimeout(r, 300));
      await other.query('COMMIT');
      return await accepted;
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      other.release();
    }
  }

  async function assertOneReReceipt(h: Harness, outcome: AcceptOutcome, body: string): Promise<void> {
    assert.equal(outcome.kind === 'stored' && outcome.duplicatePayload, true, 'a re-receipt of the committed row');
    const orphans = await pool.query(`SELECT 1 FROM quantity_samples q WHERE q.user_id = $1 AND NOT EXISTS (SELECT 1 FROM raw_ingestions r WHERE r.id = q.ingestion_id)`, [h.userId]);
    assert.equal(orphans.rowCount, 0, 'no sample row carries an ingestion id without its payload');
    const { rows } = await pool.query<{ n: string }>(`SELECT receive_count::text AS n FROM raw_ingestions WHERE user_id = $1 AND sha256 = $2`, [h.userId, createHash('sha256').update(body).digest()]);
    assert.deepEqual(rows, [{ n: '2' }]);
  }

  /**
   * A harness whose group commit has no lock timeout: its statement waits for the other session's
   * insert and sees its commit. Stopped and closed after `run`.
   */
  async function withWaitingHarness(name: string, run: (h: Harness) => Promise<void>): Promise<void> {
    const waitingPool = new pg.Pool({ connectionString: db.url, max: 1 });
    const h = await harness(name, true, waitingPool);
    try {
      await run(h);
    } finally {
      await h.service.stop();
      await waitingPool.end();
    }
  }

  test('the same bytes committed by another session while the insert-only statement runs: it fails, the upsert stores a re-receipt, no row without its payload', { timeout: 30_000 }, () =>
    withWaitingHarness('race-new', async (h) => {
      const body = steps([point(2025, 8, 7, 0, 3)]);
      const [fallbacks, conflicts] = [await inCommitFallbacks(h.metrics), await inCommitConflicts(h.metrics)];
      const outcome = await raceWithOtherSession(h, body);
      assert.equal(await inCommitConflicts(h.metrics), conflicts + 1, 'the insert-only statement met the committed bytes');
      assert.equal(await inCommitFallbacks(h.metrics), fallbacks, 'the upsert took the group');
      await assertOneReReceipt(h, outcome, body);
    }));

  test('the same bytes committed by another session while the upsert runs: refused, stored as a re-receipt, no row without its payload', { timeout: 30_000 }, () =>
    withWaitingHarness('race-upsert', async (h) => {
      // A re-send puts the user's groups on the upsert.
      const first = steps([point(2025, 8, 8, 0, 1)]);
      await h.service.accept(request(h, first));
      await h.service.accept(request(h, first));
      const conflicts = await inCommitConflicts(h.metrics);
      assert.equal(conflicts, 1);
      const body = steps([point(2025, 8, 8, 1, 3)]);
      const fallbacks = await inCommitFallbacks(h.metrics);
      const outcome = await raceWithOtherSession(h, body);
      assert.equal(await inCommitFallbacks(h.metrics), fallbacks + 1, 'the statement refused the group');
      assert.equal(await inCommitConflicts(h.metrics), conflicts, 'no insert-only statement was tried');
      await assertOneReReceipt(h, outcome, body);
    }));

  test('new data overlapping stored keys: the insert-only statement writes nothing, the upsert updates; upserts for the user until the cool-down ends', { timeout: 30_000 }, async () => {
    let clock = Date.now();
    const h = await harness('overlap', true, groupCommitDb.groupCommitPool, () => clock);
    const other = await harness('overlap-other', true, groupCommitDb.groupCommitPool, () => clock);
    const first = await h.service.accept(request(h, steps([point(2025, 9, 1, 0, 10), point(2025, 9, 1, 1, 11)])));
    assert.equal(first.kind, 'stored');
    assert.equal(await inCommitConflicts(h.metrics), 0);
    // Minute 1 again with a new value, minute 2 new: different bytes, one stored key.
    const overlapping = await h.service.accept(request(h, steps([point(2025, 9, 1, 1, 12), point(2025, 9, 1, 2, 13)])));
    assert.equal(await inCommitConflicts(h.metrics), 1, 'the insert-only statement met the stored key');
    assert.equal(await inCommitFallbacks(h.metrics), 0);
    assert.ok(overlapping.kind === 'stored');
    assert.deepEqual(((await overlapping.processed) as ProcessingResult).counts.quantity, { received: 2, inserted: 1, updated: 1, unchanged: 0, rejected: 0 });
    const { rows } = await pool.query<{ qty: number; n: string }>(
      `SELECT qty, (SELECT count(*) FROM raw_ingestions r WHERE r.user_id = q.user_id)::text AS n FROM quantity_samples q WHERE user_id = $1 ORDER BY start_time`,
      [h.userId],
    );
    assert.deepEqual(rows, [{ qty: 10, n: '2' }, { qty: 12, n: '2' }, { qty: 13, n: '2' }], 'the latest export wins; nothing of the failed statement is left');
    // Within the cool-down this user's groups are upserted (no second conflict even when they overlap),
    // while another user's still go insert-only.
    await h.service.accept(request(h, steps([point(2025, 9, 1, 2, 14)])));
    assert.equal(await inCommitConflicts(h.metrics), 1);
    await other.service.accept(request(other, steps([point(2025, 9, 1, 2, 14)])));
    assert.equal(await inCommitConflicts(other.metrics), 0, 'the other user is not held to the upsert');
    await other.service.accept(request(other, steps([point(2025, 9, 1, 2, 15)])));
    assert.equal(await inCommitConflicts(other.metrics), 1, 'until its own data overlaps');
    // After the cool-down the user's overlapping data costs one more failed statement.
    clock += UPSERT_AFTER_CONFLICT_MS;
    await h.service.accept(request(h, steps([point(2025, 9, 1, 2, 16)])));
    assert.equal(await inCommitConflicts(h.metrics), 2);
    const latest = await pool.query<{ qty: number }>(`SELECT qty FROM quantity_samples WHERE user_id = $1 ORDER BY start_time DESC LIMIT 1`, [h.userId]);
    assert.deepEqual(latest.rows, [{ qty: 16 }]);
    await h.service.stop();
    await other.service.stop();
  });
});
