import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { IngestRequest } from '../broker/types.js';
import { collectGarbage } from '../src/ingest/collect-garbage.js';
import type { IngestService } from '../src/ingest/service.js';
import { createMigratedDatabase, type TestDatabase } from './helpers/database.js';
import { singleIngestService } from './helpers/ingest-service.js';

let db: TestDatabase;
let pool: pg.Pool;
let service: IngestService;
let userId: string;
/** When each full collection the service asked for ran (performance.now()). */
const collections: number[] = [];

/** `points` step counts, one a second from 2025-04-01 (UTC), as an export of one metric. */
function stepCounts(points: number): string {
  const start = Date.UTC(2025, 3, 1);
  const data = Array.from({ length: points }, (_, i) => {
    const iso = new Date(start + i * 1000).toISOString();
    return { date: `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000`, qty: i % 200, source: 'Anna\u2019s iPhone' };
  });
  return JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data }] } });
}

function request(body: string): IngestRequest {
  return {
    identity: { userId, userName: 'collector', keyId: randomUUID(), keyPrefix: 'collector', scopes: ['ingest'] },
    transport: 'http',
    topic: null,
    body: Buffer.from(body),
    receivedAt: new Date(),
  };
}

async function acceptAndProcess(body: string): Promise<{ processedAt: number }> {
  const outcome = await service.accept(request(body));
  assert.equal(outcome.kind, 'stored');
  assert.ok(outcome.kind === 'stored');
  const result = await outcome.processed;
  assert.ok(!('error' in result), `processed without error: ${JSON.stringify(result)}`);
  return { processedAt: performance.now() };
}

/** A few event-loop turns: what the service schedules on the next turn has run after this. */
async function turns(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

before(async () => {
  ({ db, pool } = await createMigratedDatabase(6));
  userId = (await pool.query<{ id: string }>(`INSERT INTO users (name) VALUES ('collector') RETURNING id::text`)).rows[0]!.id;
  service = singleIngestService({
    pool,
    options: { maxStoresWhileParsing: 2 },
    collectGarbage: () => {
      collections.push(performance.now());
      collectGarbage();
    },
  });
  await service.start();
});
after(async () => {
  await service?.stop();
  await pool?.end();
  await db?.drop();
});

describe('memory after a large payload', () => {
  test('a payload of 32 MiB or more is followed by a full collection once its rows are written', async () => {
    const body = stepCounts(500_000);
    assert.ok(body.length >= 32 * 1024 * 1024, `the payload is ${body.length} bytes`);
    const { processedAt } = await acceptAndProcess(body);
    const during = collections.filter((t) => t <= processedAt).length;
    assert.ok(during >= 1, 'collections while it was parsed and its rows built');
    await turns();
    // Without this one the payload's dead tree and rows stay in the heap until V8's own old-generation limit.
    assert.equal(collections.filter((t) => t > processedAt).length, 1, 'one collection after its rows were written');
    const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM quantity_samples WHERE user_id = $1', [userId]);
    assert.equal(Number(rows[0]!.n), 500_000);
  });

  test('a small payload asks for no collection', async () => {
    const before = collections.length;
    await acceptAndProcess(stepCounts(100).replace('Anna', 'Ben'));
    await turns();
    assert.equal(collections.length, before);
  });
});
