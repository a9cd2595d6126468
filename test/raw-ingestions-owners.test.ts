import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { createMigratedDatabase, type TestDatabase } from './helpers/database.js';

// Migration 0007: raw_ingestions has no foreign keys; triggers on users and api_keys keep what they guarded.
let db: TestDatabase;
let pool: pg.Pool;

before(async () => {
  ({ db, pool } = await createMigratedDatabase(4));
});
after(async () => {
  await pool?.end();
  await db?.drop();
});

async function userWithKey(name: string): Promise<{ userId: string; keyId: string }> {
  const userId = String((await pool.query<{ id: string }>(`INSERT INTO users (name) VALUES ($1) RETURNING id`, [name])).rows[0]!.id);
  const keyId = randomUUID();
  await pool.query(`INSERT INTO api_keys (id, user_id, prefix, secret_hash) VALUES ($1, $2, $3, 'unused')`, [keyId, userId, `p${randomBytes(4).toString('hex')}`]);
  return { userId, keyId };
}

async function storePayload(sql: pg.Pool | pg.ClientBase, userId: string, keyId: string | null): Promise<string> {
  const body = Buffer.from(`{"data":{"metrics":[]},"n":"${randomBytes(8).toString('hex')}"}`);
  const { rows } = await sql.query<{ id: string }>(
    `INSERT INTO raw_ingestions (user_id, api_key_id, transport, payload, sha256, size_bytes, received_at, last_received_at)
     VALUES ($1, $2, 'http', $3, sha256($3), $4, now(), now()) RETURNING id`,
    [userId, keyId, body, body.length],
  );
  return String(rows[0]!.id);
}

const keyOf = async (id: string): Promise<string | null> =>
  (await pool.query<{ api_key_id: string | null }>(`SELECT api_key_id FROM raw_ingestions WHERE id = $1`, [id])).rows[0]!.api_key_id;

describe('raw_ingestions and the users and keys it names', () => {
  test('the foreign keys are gone: a raw row costs no lookups', async () => {
    const { rows } = await pool.query(`SELECT conname FROM pg_constraint WHERE conrelid = 'raw_ingestions'::regclass AND contype = 'f'`);
    assert.deepEqual(rows, []);
  });

  test('a user with stored payloads cannot be deleted; the refusal is a foreign-key violation and changes nothing', async () => {
    const { userId, keyId } = await userWithKey('keeps-payloads');
    const payload = await storePayload(pool, userId, keyId);
    await assert.rejects(pool.query(`DELETE FROM users WHERE id = $1`, [userId]), (err: Error & { code?: string }) => {
      assert.equal(err.code, '23503');
      assert.match(err.message, /raw_ingestions holds payloads of this user/);
      return true;
    });
    assert.equal((await pool.query(`SELECT 1 FROM users WHERE id = $1`, [userId])).rowCount, 1);
    assert.equal((await pool.query(`SELECT 1 FROM api_keys WHERE id = $1`, [keyId])).rowCount, 1, 'the cascade to the keys was rolled back too');
    assert.equal(await keyOf(payload), keyId);
  });

  test('a user without payloads is deleted, with its keys', async () => {
    const { userId, keyId } = await userWithKey('no-payloads');
    await pool.query(`DELETE FROM users WHERE id = $1`, [userId]);
    assert.equal((await pool.query(`SELECT 1 FROM api_keys WHERE id = $1`, [keyId])).rowCount, 0);
  });

  test('users cannot be truncated while payloads are stored', async () => {
    const { userId, keyId } = await userWithKey('truncate-guard');
    await storePayload(pool, userId, keyId);
    await assert.rejects(pool.query(`TRUNCATE users CASCADE`), (err: Error & { code?: string }) => err.code === '23503');
    assert.equal((await pool.query(`SELECT 1 FROM users WHERE id = $1`, [userId])).rowCount, 1);
  });

  test('deleting a key clears it from the payloads it sent, and only from those', async () => {
    const a = await userWithKey('two-keys');
    const secondKey = randomUUID();
    await pool.query(`INSERT INTO api_keys (id, user_id, prefix, secret_hash) VALUES ($1, $2, $3, 'unused')`, [secondKey, a.userId, `p${randomBytes(4).toString('hex')}`]);
    const viaFirst = await storePayload(pool, a.userId, a.keyId);
    const viaSecond = await storePayload(pool, a.userId, secondKey);
    await pool.query(`DELETE FROM api_keys WHERE id = $1`, [a.keyId]);
    assert.equal(await keyOf(viaFirst), null);
    assert.equal(await keyOf(viaSecond), secondKey);
  });

  test('a key whose id changes takes its payloads along', async () => {
    const { userId, keyId } = await userWithKey('renamed-key');
    const payload = await storePayload(pool, userId, keyId);
    const renamed = randomUUID();
    await pool.query(`UPDATE api_keys SET id = $2 WHERE id = $1`, [keyId, renamed]);
    assert.equal(await keyOf(payload), renamed);
  });

  test('api_keys cannot be truncated while payloads name its keys', async () => {
    const { userId, keyId } = await userWithKey('truncate-keys');
    await storePayload(pool, userId, keyId);
    await assert.rejects(pool.query(`TRUNCATE api_keys`), (err: Error & { code?: string }) => err.code === '23503');
    assert.equal((await pool.query(`SELECT 1 FROM api_keys WHERE id = $1`, [keyId])).rowCount, 1);
  });

  test('a delete waits for a payload being stored at that moment, then sees it and refuses', async () => {
    const { userId, keyId } = await userWithKey('in-flight');
    const writer = await pool.connect();
    const deleter = await pool.connect();
    try {
      await writer.query('BEGIN');
      await storePayload(writer, userId, keyId);
      // The payload is not committed yet: the delete's lock waits for the writer's transaction.
      let settled = false;
      const deleting = deleter.query(`DELETE FROM users WHERE id = $1`, [userId]).finally(() => (settled = true));
      deleting.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(settled, false, 'the delete waits for the transaction storing a payload');
      await writer.query('COMMIT');
      await assert.rejects(deleting, (err: Error & { code?: string }) => err.code === '23503');
      assert.equal((await pool.query(`SELECT 1 FROM users WHERE id = $1`, [userId])).rowCount, 1);
    } finally {
      writer.release();
      deleter.release();
    }
  });
});
