import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { IngestRequest, TypeCounts } from '../broker/types.js';
import { defaultLimits } from '../src/hae/limits.js';
import { BatchProcessor, MAX_BATCH_PAYLOADS, MAX_BATCH_ROWS, SMALL_PAYLOAD_BYTES } from '../src/ingest/batch-processor.js';
import { RawIngestionStore } from '../src/ingest/raw-store.js';
import { countsJson } from '../src/ingest/sample-batch.js';
import type { IngestService } from '../src/ingest/service.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { PartitionManager } from '../src/store/partitions.js';
import { waitFor } from './helpers/app.js';
import { createMigratedDatabase, refuseQuantity, type TestDatabase } from './helpers/database.js';
import { batchingIngestService } from './helpers/ingest-service.js';

const log = createLogger('silent');
const MAX_ATTEMPTS = 2;
const POISON_QTY = 666;
let db: TestDatabase;
let pool: pg.Pool;
let partitions: PartitionManager;
let userId: string;
let keyId: string;

before(async () => {
  ({ db, pool } = await createMigratedDatabase(4));
  partitions = new PartitionManager(pool, log);
  userId = String((await pool.query<{ id: string }>(`INSERT INTO users (name) VALUES ('batch') RETURNING id`)).rows[0]!.id);
  keyId = randomUUID();
  await pool.query(`INSERT INTO api_keys (id, user_id, prefix, secret_hash) VALUES ($1, $2, 'batchkey', 'unused')`, [keyId, userId]);
  // The poison: this database refuses one value, which the parser accepts.
  await refuseQuantity(pool, POISON_QTY);
});
after(async () => {
  await pool?.end();
  await db?.drop();
});

interface Harness {
  service: IngestService;
  metrics: Metrics;
  raw: RawIngestionStore;
}

function harness(): Harness {
  const metrics = new Metrics();
  const raw = new RawIngestionStore(pool, { maxBatchBytes: 8 * 1024 * 1024 });
  const service = batchingIngestService({ pool, partitions, raw, metrics, maxAttempts: MAX_ATTEMPTS });
  return { service, metrics, raw };
}

function request(body: string): IngestRequest {
  return {
    identity: { userId, userName: 'batch', keyId, keyPrefix: 'batchkey', scopes: ['ingest'] },
    transport: 'http',
    topic: null,
    body: Buffer.from(body),
    receivedAt: new Date(),
  };
}

const point = (day: number, minute: number, qty: number, source = 'Watch') =>
  ({ date: `2025-${String(1 + (day % 12)).padStart(2, '0')}-${String(1 + (day % 28)).padStart(2, '0')} 10:${String(minute).padStart(2, '0')}:00 +0100`, qty, source });
const steps = (points: object[]): string => JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: points }] } });

/** Processing transactions so far, and the payloads they processed. */
async function batchStats(metrics: Metrics): Promise<{ transactions: number; payloads: number }> {
  const values = (await metrics.batchPayloads.get()).values;
  return {
    transactions: values.find((v) => v.metricName?.endsWith('_count'))!.value,
    payloads: values.find((v) => v.metricName?.endsWith('_sum'))!.value,
  };
}

/** Stores the payloads as received, unprocessed: a service started afterwards finds them all queued at once. */
async function storeAll(bodies: string[]): Promise<string[]> {
  const raw = new RawIngestionStore(pool, { maxBatchBytes: 8 * 1024 * 1024 });
  const stored = await Promise.all(bodies.map((b) => raw.store(request(b), createHash('sha256').update(b).digest())));
  return stored.map((s) => s.id);
}

/** Starts a service on the stored backlog and waits until its queue is empty. */
async function processStored(): Promise<Harness> {
  const h = harness();
  await h.service.start();
  assert.ok(await h.service.drain(100_000), 'drained');
  return h;
}

type StoredCounts = Record<string, { received: number; inserted: number; updated: number; unchanged: number; rejected: number }>;

async function storedCounts(ids: string[]): Promise<StoredCounts[]> {
  const { rows } = await pool.query<{ counts: StoredCounts }>(`SELECT counts FROM raw_ingestions WHERE id = ANY($1::int8[]) ORDER BY id`, [ids]);
  return rows.map((r) => r.counts);
}

describe('queued small payloads are processed in batches', () => {
  let ids: string[] = [];
  const PAYLOADS = 2_000;

  test(`${PAYLOADS} queued payloads: few transactions, every row with its own ingestion id`, { timeout: 120_000 }, async () => {
    const bodies = Array.from({ length: PAYLOADS }, (_, i) => steps(Array.from({ length: 1 + (i % 10) }, (_, k) => point(i % 300, k, i * 100 + k, `src${i}`))));
    ids = await storeAll(bodies);
    const { service, metrics } = await processStored();
    await service.stop();

    const { transactions, payloads } = await batchStats(metrics);
    assert.equal(payloads, PAYLOADS);
    assert.ok(transactions <= Math.ceil(PAYLOADS / MAX_BATCH_PAYLOADS) + 2, `${transactions} transactions for ${PAYLOADS} payloads`);
    assert.equal((await pool.query(`SELECT count(*)::int AS n FROM raw_ingestions WHERE status = 'processed' AND attempts = 1`)).rows[0].n, PAYLOADS);

    const expectedRows = bodies.reduce((n, _, i) => n + 1 + (i % 10), 0);
    const { rows } = await pool.query<{ source: string; ingestion_id: string; n: number }>(
      `SELECT source, ingestion_id::text, count(*)::int AS n FROM quantity_samples GROUP BY source, ingestion_id`,
    );
    assert.equal(rows.reduce((n, r) => n + r.n, 0), expectedRows);
    assert.equal(rows.length, PAYLOADS);
    for (const r of rows) {
      const i = Number(r.source.slice(3));
      assert.equal(r.ingestion_id, ids[i], `rows of payload ${i}`);
      assert.equal(r.n, 1 + (i % 10));
    }
    (await storedCounts(ids)).forEach((c, i) => {
      assert.deepEqual(c.quantity, { received: 1 + (i % 10), inserted: 1 + (i % 10), updated: 0, unchanged: 0, rejected: 0 });
    });
  });

  test('processing the same batch again changes nothing and reports every row unchanged', { timeout: 120_000 }, async () => {
    const before = (await pool.query(`SELECT count(*)::int AS n, sum(revision)::int AS r FROM quantity_samples`)).rows[0];
    await pool.query(`UPDATE raw_ingestions SET status = 'received', attempts = 0 WHERE id = ANY($1::int8[])`, [ids]);
    const { service, metrics } = await processStored();
    await service.stop();
    assert.ok((await batchStats(metrics)).transactions <= Math.ceil(PAYLOADS / MAX_BATCH_PAYLOADS) + 2);
    assert.deepEqual((await pool.query(`SELECT count(*)::int AS n, sum(revision)::int AS r FROM quantity_samples`)).rows[0], before);
    const counts = await storedCounts(ids);
    assert.equal(counts.length, PAYLOADS);
    for (const c of counts) {
      const q = c.quantity!;
      assert.equal(q.inserted + q.updated, 0);
      assert.equal(q.unchanged, q.received);
    }
  });

  test('two payloads of one batch with the same key: the newer value wins, counts go to the payload whose row was written', async () => {
    const batches = new BatchProcessor({ pool, partitions, chunkRows: 20_000, limits: defaultLimits });
    const key = point(5, 30, 0, 'Shared');
    const other = point(5, 31, 5, 'Shared');
    const bodies = [steps([key]), steps([{ ...key, qty: 1 }, other]), steps([{ ...key, qty: 2 }])];
    const [firstId, olderId, newerId] = await storeAll(bodies);
    const item = (id: string, body: string) => ({ ingestionId: id, userId, json: JSON.parse(body) as unknown, mayContainNul: false });
    // A row that is already stored: the batch below updates it.
    const [first] = await batches.processBatch([item(firstId!, bodies[0]!)]);
    assert.equal(first!.result.counts.quantity?.inserted, 1);

    const [older, newer] = await batches.processBatch([item(olderId!, bodies[1]!), item(newerId!, bodies[2]!)]);
    assert.ok(BigInt(olderId!) < BigInt(newerId!));
    // The older payload's row for the shared key was superseded inside the batch: unchanged for it.
    assert.deepEqual(older!.result.counts.quantity, { received: 2, inserted: 1, updated: 0, unchanged: 1, rejected: 0 });
    assert.deepEqual(newer!.result.counts.quantity, { received: 1, inserted: 0, updated: 1, unchanged: 0, rejected: 0 });
    const { rows } = await pool.query<{ qty: number; ingestion_id: string; revision: number }>(
      `SELECT qty, ingestion_id::text, revision FROM quantity_samples WHERE source = 'Shared' ORDER BY start_time`,
    );
    assert.deepEqual(rows, [
      { qty: 2, ingestion_id: newerId, revision: 2 },
      { qty: 5, ingestion_id: olderId, revision: 1 },
    ]);
    // What a re-send or the status message is told later matches the answer given now.
    assert.deepEqual(await storedCounts([olderId!, newerId!]), [older!.result.counts, newer!.result.counts]);
  });

  test('a batch ends at the row bound; the payloads behind it are processed next, in order', { timeout: 120_000 }, async () => {
    const rowsEach = 5_000;
    const payloads = Math.floor(MAX_BATCH_ROWS / rowsEach) + 2;
    const bodies = Array.from({ length: payloads }, (_, i) =>
      JSON.stringify({ data: { metrics: [{ name: 'heart_rate', units: 'count/min', data: Array.from({ length: rowsEach }, (_, k) => ({ date: new Date(Date.UTC(2024, 0, 1) + (i * rowsEach + k) * 60_000).toISOString(), Avg: 60 + (k % 40), source: 'Bound' })) }] } }),
    );
    assert.ok(bodies.every((b) => b.length < SMALL_PAYLOAD_BYTES), 'each payload is small');
    const ids = await storeAll(bodies);
    const { service, metrics } = await processStored();
    await service.stop();
    assert.deepEqual(await batchStats(metrics), { transactions: 2, payloads });
    assert.equal((await pool.query(`SELECT count(*)::int AS n FROM heart_rate_samples WHERE source = 'Bound'`)).rows[0].n, payloads * rowsEach);
    for (const c of await storedCounts(ids)) assert.equal(c.heart_rate?.inserted, rowsEach);
    // Two transactions: the first ten payloads together, then the two left over.
    const { rows } = await pool.query<{ id: string; at: Date }>(`SELECT id::text, processed_at AS at FROM raw_ingestions WHERE id = ANY($1::int8[]) ORDER BY id`, [ids]);
    const first = rows.slice(0, payloads - 2).map((r) => r.at.getTime());
    const rest = rows.slice(payloads - 2).map((r) => r.at.getTime());
    assert.equal(new Set(first).size, 1, 'the first batch committed at one time');
    assert.ok(Math.min(...rest) > first[0]!, 'the payloads left over were processed afterwards');
  });

  test('a payload the database refuses fails alone: the rest of its batch is stored', { timeout: 60_000 }, async () => {
    const bodies = [0, 1, 2, 3, 4].map((i) => steps([point(7, i, i === 2 ? POISON_QTY : 7_000 + i, 'Neighbour'), point(8, i, 8_000 + i, 'Neighbour')]));
    const ids = await storeAll(bodies);
    const { service, metrics } = await processStored();
    await waitFor(async () => (await pool.query(`SELECT status FROM raw_ingestions WHERE id = $1`, [ids[2]])).rows[0].status === 'failed', 10_000, 'the poison to be given up');
    await service.stop();
    assert.equal((await metrics.batchFallbacks.get()).values[0]!.value, 1, 'the batch was rolled back once');
    const poison = (await pool.query(`SELECT status, attempts, error FROM raw_ingestions WHERE id = $1`, [ids[2]])).rows[0];
    assert.equal(poison.status, 'failed');
    assert.equal(poison.attempts, MAX_ATTEMPTS);
    assert.match(poison.error, /poison sample refused/);
    assert.equal((await pool.query(`SELECT count(*)::int AS n FROM quantity_samples WHERE source = 'Neighbour'`)).rows[0].n, 8);
    assert.equal((await pool.query(`SELECT count(*)::int AS n FROM quantity_samples WHERE qty = $1`, [POISON_QTY])).rows[0].n, 0);
    const others = ids.filter((_, i) => i !== 2);
    assert.equal((await pool.query(`SELECT count(*)::int AS n FROM raw_ingestions WHERE id = ANY($1::int8[]) AND status = 'processed' AND attempts = 1`, [others])).rows[0].n, 4);
    for (const c of await storedCounts(others)) assert.deepEqual(c.quantity, { received: 2, inserted: 2, updated: 0, unchanged: 0, rejected: 0 });
  });
});

test('a payload\'s counts as stored are the text JSON.stringify makes, whatever the labels and numbers', () => {
  const counts = (entries: Array<[string, number[]]>): Record<string, TypeCounts> =>
    Object.fromEntries(entries.map(([label, [received, inserted, updated, unchanged, rejected]]) => [label, { received: received!, inserted: inserted!, updated: updated!, unchanged: unchanged!, rejected: rejected! }]));
  const cases = [
    counts([]),
    counts([['heart_rate', [6, 6, 0, 0, 0]]]),
    counts([['quantity', [1_000_000, 0, 999_999, 1, 0]], ['heart_rate', [3, 1, 1, 0, 1]], ['sleep_segments', [0, 0, 0, 0, 0]]]),
    // Not a label the tables have, but one JSON must escape.
    counts([['odd "label"\\\u0001', [1, 1, 0, 0, 0]]]),
  ];
  for (const c of cases) {
    assert.equal(countsJson(c), JSON.stringify(c));
    assert.deepEqual(JSON.parse(countsJson(c)), c);
  }
});
