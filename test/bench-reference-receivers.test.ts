import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { BenchChild } from '../scripts/bench/child.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { connected, mqttClient } from './helpers/mqtt-broker.js';

// The bench compares the daemon with these receivers; their figures only mean something if they
// acknowledge exactly when the bytes (and rows) are committed, and store each payload once.
for (const { file, rows } of [
  { file: 'store-only-child.js', rows: false },
  { file: 'store-rows-child.js', rows: true },
]) {
  describe(`bench: the reference receiver ${file} of scenario 2`, () => {
    let db: TestDatabase;
    let sql: pg.Pool;
    let receiver: BenchChild;
    let url: string;
    let tables: string[];
    before(async () => {
      db = await createTestDatabase();
      sql = new pg.Pool({ connectionString: db.url, max: 2 });
      receiver = BenchChild.start(file, file);
      const started = await receiver.request<{ port: number; tables: string[] }>({ type: 'start', databaseUrl: db.url });
      url = `ws://127.0.0.1:${started.port}/mqtt`;
      tables = started.tables;
    });
    after(async () => {
      await receiver?.stop();
      await sql?.end();
      await db?.drop();
    });

    const payloadsTable = (): string => tables.find((t) => t.endsWith('_payloads'))!;
    const stored = async (): Promise<Buffer[]> => (await sql.query<{ payload: Buffer }>(`SELECT payload FROM ${payloadsTable()} ORDER BY id`)).rows.map((r) => r.payload);

    test('a PUBACK waits for the COMMIT; the same bytes again add nothing; invalid JSON is acknowledged, not stored', async (t) => {
      const client = await connected(mqttClient(t, url));
      const point = { date: '2026-11-20 10:00:00 +0100', Avg: 61, Min: 60, Max: 63, source: 'Anna’s Apple Watch' };
      const body = Buffer.from(JSON.stringify({ data: { metrics: [{ name: 'heart_rate', units: 'count/min', data: [point] }] } }));

      // While another transaction holds the tables, the statement waits and so must the PUBACK.
      const lock = await sql.connect();
      let acked = false;
      let publish: Promise<unknown>;
      try {
        await lock.query('BEGIN');
        await lock.query(`LOCK TABLE ${tables.join(', ')} IN ACCESS EXCLUSIVE MODE`);
        publish = client.publishAsync('health/anything', body, { qos: 1 }).then(() => (acked = true));
        await delay(500);
        assert.equal(acked, false, 'no PUBACK while the bytes cannot be committed');
        await lock.query('COMMIT');
      } finally {
        lock.release();
      }
      await publish;
      assert.deepEqual(await stored(), [body]);
      const { rows: digests } = await sql.query<{ id: string; sha256: Buffer }>(`SELECT id::text, sha256 FROM ${payloadsTable()}`);
      assert.deepEqual(digests[0]!.sha256, createHash('sha256').update(body).digest());
      if (rows) {
        const { rows: written } = await sql.query(`SELECT start_time, source, min_bpm, avg_bpm, max_bpm, ingestion_id::text FROM ${tables.find((x) => x.endsWith('_heart_rate'))}`);
        assert.deepEqual(written, [{ start_time: new Date('2026-11-20T09:00:00Z'), source: point.source, min_bpm: 60, avg_bpm: 61, max_bpm: 63, ingestion_id: digests[0]!.id }]);
      }

      if (!rows) await client.publishAsync('health/anything', body, { qos: 1 });
      await client.publishAsync('health/anything', Buffer.from('{"data": '), { qos: 1 });
      assert.deepEqual(await stored(), [body], 'invalid JSON (and, without rows, the same bytes again) adds nothing');
    });
  });
}
