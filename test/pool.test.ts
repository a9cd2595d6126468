import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { createLogger } from '../src/log.js';
import { Database } from '../src/store/pool.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => db?.drop());

test('a connection lost while checked out does not end the process; the pool recovers', async () => {
  const database = new Database({ connectionString: db.url, poolMax: 2 }, createLogger('silent'));
  await database.start();
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    const client = await database.pool.connect();
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    // Killed between two queries, as a network cut mid-transaction would: without a listener on
    // the client this 'error' event is uncaught and the test process itself would die here.
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await new Promise((r) => setTimeout(r, 300));
    await assert.rejects(client.query('SELECT 1'));
    client.release(true);
    assert.deepEqual((await database.pool.query('SELECT 1 AS ok')).rows, [{ ok: 1 }]);
  } finally {
    await admin.end();
    await database.stop();
  }
});
