import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { IngestRequest } from '../broker/types.js';
import type { IngestService } from '../src/ingest/service.js';
import { createMigratedDatabase, type TestDatabase } from './helpers/database.js';
import { singleIngestService } from './helpers/ingest-service.js';

/*
 * The processing backlog is bounded in payloads as well as in bytes: a machine that stores and
 * acknowledges faster than it processes must not let the backlog (and RSS) grow until the byte
 * bound, which does not count each payload's bookkeeping.
 */

let db: TestDatabase;
let pool: pg.Pool;
let service: IngestService;
let userId: string;
const keyId = randomUUID();

before(async () => {
  ({ db, pool } = await createMigratedDatabase(6));
  userId = (await pool.query<{ id: string }>(`INSERT INTO users (name) VALUES ('backlog') RETURNING id::text`)).rows[0]!.id;
  await pool.query(`INSERT INTO api_keys (id, user_id, prefix, secret_hash) VALUES ($1, $2, 'backlog', 'unused')`, [keyId, userId]);
  service = singleIngestService({ pool, options: { maxQueuedPayloads: 2 } });
  await service.start();
});
after(async () => {
  await service?.stop();
  await pool?.end();
  await db?.drop();
});

const request = (i: number): IngestRequest => ({
  identity: { userId, userName: 'backlog', keyId, keyPrefix: 'backlog', scopes: ['ingest'] },
  transport: 'http',
  topic: null,
  body: Buffer.from(JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: `2025-06-0${i} 10:00:00 +0000`, qty: i }] }] } })),
  receivedAt: new Date(),
});

const storedCount = async () => Number((await pool.query('SELECT count(*) AS n FROM raw_ingestions')).rows[0].n);

test('at the payload bound, accept waits before storing until processing makes room', async () => {
  const locker = await pool.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE quantity_samples IN ACCESS EXCLUSIVE MODE');
  let locked = true;
  try {
    const first = await service.accept(request(1));
    const second = await service.accept(request(2));
    assert.equal(first.kind, 'stored');
    assert.equal(second.kind, 'stored');
    let thirdDone = false;
    const third = service.accept(request(3)).then((outcome) => {
      thirdDone = true;
      return outcome;
    });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(thirdDone, false, 'the third payload waits while two are queued');
    assert.equal(await storedCount(), 2, 'and is not stored yet');
    await locker.query('COMMIT');
    locked = false;
    const outcome = await third;
    assert.equal(outcome.kind, 'stored');
    for (const o of [first, second, outcome]) if (o.kind === 'stored') assert.ok(!('error' in (await o.processed)));
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM raw_ingestions WHERE status = 'processed'`);
    assert.equal(rows[0]!.n, 3);
  } finally {
    if (locked) await locker.query('ROLLBACK').catch(() => undefined);
    locker.release();
  }
});
