import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { BenchChild } from '../scripts/bench/child.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { connected, mqttClient } from './helpers/mqtt-broker.js';

const TABLE = 'store_only_payloads';

// The bench compares the daemon with this receiver; its figure only means something if it
// acknowledges exactly when the bytes are committed, and stores each distinct payload once.
describe('bench: the store-only receiver of scenario 2', () => {
  let db: TestDatabase;
  let sql: pg.Pool;
  let receiver: BenchChild;
  let url: string;
  before(async () => {
    db = await createTestDatabase();
    sql = new pg.Pool({ connectionString: db.url, max: 2 });
    await sql.query(`CREATE TABLE ${TABLE} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sha256 bytea NOT NULL UNIQUE, payload bytea NOT NULL)`);
    receiver = BenchChild.start('store-only-child.js', 'store-only receiver');
    const { port } = await receiver.request<{ port: number }>({ type: 'start', databaseUrl: db.url, table: TABLE });
    url = `ws://127.0.0.1:${port}/mqtt`;
  });
  after(async () => {
    await receiver?.stop();
    await sql?.end();
    await db?.drop();
  });

  const stored = async (): Promise<Buffer[]> => (await sql.query<{ payload: Buffer }>(`SELECT payload FROM ${TABLE} ORDER BY id`)).rows.map((r) => r.payload);

  test('a PUBACK waits for the COMMIT of the bytes; re-sent bytes are stored once; invalid JSON is acknowledged, not stored', async (t) => {
    const client = await connected(mqttClient(t, url));
    const body = Buffer.from(JSON.stringify({ data: { metrics: [{ name: 'heart_rate', units: 'count/min', data: [{ date: '2026-11-20 10:00:00 +0100', Avg: 61, Min: 60, Max: 63 }] }] } }));

    // While another transaction holds the table, the statement waits and so must the PUBACK.
    const lock = await sql.connect();
    let acked = false;
    let publish: Promise<unknown>;
    try {
      await lock.query('BEGIN');
      await lock.query(`LOCK TABLE ${TABLE} IN ACCESS EXCLUSIVE MODE`);
      publish = client.publishAsync('health/anything', body, { qos: 1 }).then(() => (acked = true));
      await delay(500);
      assert.equal(acked, false, 'no PUBACK while the bytes cannot be committed');
      await lock.query('COMMIT');
    } finally {
      lock.release();
    }
    await publish;
    assert.deepEqual(await stored(), [body]);
    const digest = (await sql.query<{ sha256: Buffer }>(`SELECT sha256 FROM ${TABLE}`)).rows[0]!.sha256;
    assert.deepEqual(digest, createHash('sha256').update(body).digest());

    await client.publishAsync('health/anything', body, { qos: 1 });
    await client.publishAsync('health/anything', Buffer.from('{"data": '), { qos: 1 });
    assert.deepEqual(await stored(), [body], 'the same bytes again and invalid JSON add nothing');
  });
});
