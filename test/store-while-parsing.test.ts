import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { IngestRequest } from '../broker/types.js';
import { jsonLimitRefusal } from '../src/ingest/json-body.js';
import { DEFAULT_JSON_LIMITS } from '../src/ingest/json-limits.js';
import type { IngestService } from '../src/ingest/service.js';
import { createMigratedDatabase, type TestDatabase } from './helpers/database.js';
import { singleIngestService } from './helpers/ingest-service.js';

const REFUSED_USER = 987654;
let db: TestDatabase;
let pool: pg.Pool;
let service: IngestService;

/** A valid export of about 9 MB: over the size from which the bytes are stored while parsed. */
const large = JSON.stringify({
  data: {
    metrics: [
      {
        name: 'step_count',
        units: 'count',
        data: Array.from({ length: 160_000 }, (_, i) => ({ date: `2025-04-0${1 + Math.floor(i / 86_400)} ${new Date((i % 86_400) * 1000).toISOString().slice(11, 19)} +0000`, qty: i, source: 'Watch\u2019s' })),
      },
    ],
  },
});

before(async () => {
  ({ db, pool } = await createMigratedDatabase(6));
  // The database refuses the raw rows of one user: a payload the database will not store.
  await pool.query(`CREATE FUNCTION test_refuse_raw() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.user_id = ${REFUSED_USER} THEN RAISE EXCEPTION 'raw row refused by the test trigger' USING ERRCODE = 'check_violation'; END IF;
      RETURN NEW;
    END $$`);
  await pool.query('CREATE TRIGGER test_refuse_raw BEFORE INSERT ON raw_ingestions FOR EACH ROW EXECUTE FUNCTION test_refuse_raw()');
  service = singleIngestService({ pool, options: { maxStoresWhileParsing: 2 } });
  await service.start();
});
after(async () => {
  await service?.stop();
  await pool?.end();
  await db?.drop();
});

/** From the user whose raw rows the database refuses (the test trigger). */
function fromRefusedUser(body: string): IngestRequest {
  return {
    identity: { userId: String(REFUSED_USER), userName: 'ghost', keyId: randomUUID(), keyPrefix: 'ghost', scopes: ['ingest'] },
    transport: 'http',
    topic: null,
    body: Buffer.from(body),
    receivedAt: new Date(),
  };
}

describe('a large payload stored while its JSON is parsed', () => {
  test('refused by the database: the caller gets the error, nothing is stored, the connection is back in the pool', async () => {
    assert.ok(large.length > 8 * 1024 * 1024);
    await assert.rejects(service.accept(fromRefusedUser(large)), (err: Error & { code?: string }) => err.code === '23514');
    assert.equal(Number((await pool.query('SELECT count(*) AS n FROM raw_ingestions')).rows[0].n), 0);
    assert.equal(pool.totalCount - pool.idleCount, 0, 'no connection is still held');
  });

  test('invalid JSON that the database would refuse too: the answer is about the JSON', async () => {
    const broken = `${large.slice(0, -3)}]]`;
    assert.ok(broken.length > 8 * 1024 * 1024);
    const outcome = await service.accept(fromRefusedUser(broken));
    assert.equal(outcome.kind, 'invalid_json');
    assert.ok(outcome.kind === 'invalid_json' && outcome.code === 'SS_INVALID_JSON');
    assert.equal(pool.totalCount - pool.idleCount, 0, 'no connection is still held');
  });

  test('over the JSON limits deep inside: refused with the code and position of the limit, and nothing is stored', async () => {
    const user = (await pool.query<{ id: string }>(`INSERT INTO users (name) VALUES ('limits') RETURNING id::text`)).rows[0]!.id;
    const request = (body: string): IngestRequest => ({ ...fromRefusedUser(body), identity: { ...fromRefusedUser('').identity, userId: user, userName: 'limits' } });
    const at = large.lastIndexOf('{"date"');
    const deep = `${large.slice(0, at)}${'['.repeat(70)}${']'.repeat(70)},${large.slice(at)}`;
    const long = `${large.slice(0, at)}"${'x'.repeat(2 * 1024 * 1024)}",${large.slice(at)}`;
    for (const [body, code] of [
      [deep, 'SS_JSON_TOO_DEEP'],
      [long, 'SS_JSON_STRING_TOO_LONG'],
    ] as const) {
      const outcome = await service.accept(request(body));
      assert.equal(outcome.kind, 'invalid_json');
      assert.ok(outcome.kind === 'invalid_json');
      assert.equal(outcome.code, code);
      // Where the byte scan over the whole body finds it (and after every point before it).
      const scanned = jsonLimitRefusal(Buffer.from(body), DEFAULT_JSON_LIMITS);
      assert.equal(outcome.position, scanned?.position);
      assert.ok(outcome.position !== null && outcome.position > at - 100 && outcome.position <= at + 64);
    }
    assert.equal(Number((await pool.query('SELECT count(*) AS n FROM raw_ingestions WHERE user_id = $1', [user])).rows[0].n), 0);
    assert.equal(pool.totalCount - pool.idleCount, 0, 'no connection is still held');
  });
});
