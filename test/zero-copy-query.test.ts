import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { IngestRequest } from '../broker/types.js';
import { isTransientDatabaseError } from '../src/errors.js';
import { RawIngestionStore, ZERO_COPY_BODY_BYTES } from '../src/ingest/raw-store.js';
import { createLogger } from '../src/log.js';
import { migrationsDir } from '../src/paths.js';
import { loadMigrations, migrate } from '../src/store/migrator.js';
import { encodeExtendedQuery, queryWithoutCopy, SEPARATE_BUFFER_MIN_BYTES, ZeroCopyQuery, type ZeroCopyParam } from '../src/store/zero-copy-query.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const MiB = 1024 * 1024;
const sha256 = (bytes: Buffer): Buffer => createHash('sha256').update(bytes).digest();

/** A stand-in socket that keeps what is written to it, as written, and counts the write calls. */
function recordingConnection(): { connection: pg.Connection; chunks: Buffer[]; writeCalls: () => number } {
  const chunks: Buffer[] = [];
  let calls = 0;
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      calls++;
      chunks.push(chunk);
      done();
    },
    writev(entries, done) {
      calls++;
      for (const e of entries) chunks.push(e.chunk as Buffer);
      done();
    },
  });
  const connection = new pg.Connection({ stream: stream as never });
  return { connection, chunks, writeCalls: () => calls };
}

describe('the extended-protocol messages', () => {
  const large = randomBytes(SEPARATE_BUFFER_MIN_BYTES + 3);
  const params: ZeroCopyParam[] = [
    null,
    'plain',
    'ünïcödé ’ and 🙂',
    '',
    42,
    -1.5,
    new Date('2025-03-30T01:30:00.123Z'),
    Buffer.from([0, 1, 2, 255]),
    large,
    Buffer.alloc(0),
    'after the large one',
    randomBytes(SEPARATE_BUFFER_MIN_BYTES * 2),
  ];
  const text = 'SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 -- ’';

  test('are byte for byte what pg sends for the same statement and values', () => {
    const ours = Buffer.concat(encodeExtendedQuery(text, params));
    const theirs = recordingConnection();
    new pg.Query(text, params).submit(theirs.connection);
    assert.ok(Buffer.concat(theirs.chunks).equals(ours));
  });

  test('carry each large Buffer itself, uncopied, and leave in one corked write', () => {
    const { connection, chunks, writeCalls } = recordingConnection();
    assert.equal(new ZeroCopyQuery(text, params).submit(connection), null);
    assert.ok(chunks.includes(large), 'the caller’s own Buffer is written');
    assert.ok(chunks.includes(params[11] as Buffer));
    // header + small parameters, large, small, large, trailer
    assert.equal(chunks.length, 5);
    assert.equal(chunks.reduce((n, c) => n + c.length, 0), Buffer.concat(encodeExtendedQuery(text, params)).length);
    assert.equal(writeCalls(), 1, 'one writev for the whole round trip');
    assert.equal(connection.stream.writableCorked, 0, 'uncorked again');
  });

  test('a named statement is parsed in its first round trip on a connection and only bound after, byte for byte as pg does it', () => {
    const name = 'ss_test_named_’';
    const theirs = recordingConnection();
    const ours = recordingConnection();
    for (let round = 0; round < 2; round++) {
      theirs.chunks.length = 0;
      ours.chunks.length = 0;
      new pg.Query({ name, text, values: params }).submit(theirs.connection);
      assert.equal(new ZeroCopyQuery(text, params, name).submit(ours.connection), null);
      assert.ok(Buffer.concat(ours.chunks).equals(Buffer.concat(theirs.chunks)), `round ${round + 1}`);
      // What a ParseComplete makes pg's Client do.
      for (const c of [theirs.connection, ours.connection] as unknown as Array<{ parsedStatements: Record<string, string> }>) c.parsedStatements[name] = text;
    }
    assert.ok(!Buffer.concat(ours.chunks).includes(Buffer.from(text)), 'the second round trip does not send the text again');
    // As pg: one name, one text per connection.
    assert.match(String(new ZeroCopyQuery('SELECT 2', [], name).submit(ours.connection)), /Prepared statements must be unique/);
  });

  test('a statement that cannot be encoded fails before anything is written', () => {
    const { connection, chunks } = recordingConnection();
    const tooMany = Array.from({ length: 70_000 }, () => 1);
    const err = new ZeroCopyQuery('SELECT 1', tooMany).submit(connection);
    assert.ok(err instanceof RangeError);
    assert.equal(chunks.length, 0);
  });
});

describe('against PostgreSQL', () => {
  const log = createLogger('silent');
  let db: TestDatabase;
  let pool: pg.Pool;
  let userId: string;
  let keyId: string;

  before(async () => {
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 3 });
    // As src/store/pool.ts does: a connection killed while checked out must not be an uncaught 'error'.
    pool.on('connect', (client) => client.on('error', () => undefined));
    await migrate(pool, await loadMigrations(migrationsDir), log);
    userId = String((await pool.query<{ id: string }>(`INSERT INTO users (name) VALUES ('zerocopy') RETURNING id`)).rows[0]!.id);
    keyId = randomUUID();
    await pool.query(`INSERT INTO api_keys (id, user_id, prefix, secret_hash) VALUES ($1, $2, 'zerocopy', 'unused')`, [keyId, userId]);
    await pool.query(`CREATE TABLE zc (
      id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      b bytea, t text, n numeric, d timestamptz, j jsonb,
      positive int CHECK (positive > 0))`);
  });
  after(async () => {
    await pool?.end();
    await db?.drop();
  });

  /** Counts how many statements go through the pool as a ZeroCopyQuery (observation only; the database is real). */
  function countZeroCopy(target: pg.Pool): { count: () => number; restore: () => void } {
    const original = target.query;
    let n = 0;
    target.query = function (this: pg.Pool, ...args: unknown[]) {
      if (args[0] instanceof ZeroCopyQuery) n++;
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof target.query;
    return { count: () => n, restore: () => void (target.query = original) };
  }

  function request(body: Buffer, overrides: Partial<IngestRequest> = {}): IngestRequest {
    return {
      identity: { userId, userName: 'zerocopy', keyId, keyPrefix: 'zerocopy', scopes: ['ingest'] },
      transport: 'mqtt-tcp',
      topic: 'health/\u0000export',
      clientId: 'phone',
      remoteAddress: '192.0.2.7',
      body,
      receivedAt: new Date('2025-06-01T12:00:00.5Z'),
      ...overrides,
    };
  }

  test('parameters of every kind are stored as pg would store them; results are parsed as pg parses them', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const big = randomBytes(SEPARATE_BUFFER_MIN_BYTES * 4);
    const when = new Date('2024-02-29T23:59:59.999Z');
    const result = await queryWithoutCopy<{ id: number; b: Buffer; t: string; n: string; d: Date; j: unknown; positive: number | null }>(
      pool,
      `INSERT INTO zc (b, t, n, d, j, positive) VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12) RETURNING *`,
      [bytes, 'ẞ ’ 🙂', 12.25, when, '{"a": [1, null]}', null, big, '', -7, when, null, 3],
    );
    assert.equal(result.command, 'INSERT');
    assert.equal(result.rowCount, 2);
    const [first, second] = result.rows;
    assert.ok(first!.b.equals(bytes), 'every byte value round-trips inline');
    assert.ok(second!.b.equals(big), 'a separately written Buffer round-trips');
    assert.equal(first!.t, 'ẞ ’ 🙂');
    assert.equal(first!.n, '12.25');
    assert.equal(second!.n, '-7');
    assert.equal(first!.d.getTime(), when.getTime());
    assert.deepEqual(first!.j, { a: [1, null] });
    assert.equal(first!.positive, null);
    assert.equal(typeof first!.id, 'number');
    // pg's own query answers the same for the same row.
    const viaPg = await pool.query('SELECT * FROM zc WHERE id = $1', [first!.id]);
    assert.deepEqual(viaPg.rows[0], first);
  });

  test(`a ${64} MiB random payload is stored by the raw store without copy and reads back byte-identical`, { timeout: 120_000 }, async () => {
    const body = randomBytes(64 * MiB);
    const hash = sha256(body);
    const raw = new RawIngestionStore(pool, { maxBatchBytes: 256 * MiB });
    const spy = countZeroCopy(pool);
    let stored;
    try {
      stored = await raw.store(request(body), hash);
    } finally {
      spy.restore();
    }
    assert.equal(spy.count(), 1, 'the large body took the zero-copy path');
    assert.equal(stored.inserted, true);
    assert.equal(stored.status, 'received');
    assert.equal(stored.counts, null);
    assert.match(stored.id, /^\d+$/);
    const { rows } = await pool.query<{ payload: Buffer; sha256: Buffer; size_bytes: number; matches: boolean; topic: string; client_id: string; received_at: Date }>(
      `SELECT payload, sha256, size_bytes, sha256(payload) = sha256 AS matches, topic, client_id, received_at FROM raw_ingestions WHERE id = $1`,
      [stored.id],
    );
    const row = rows[0]!;
    assert.ok(row.payload.equals(body), 'payload byte-identical');
    assert.ok(row.sha256.equals(hash));
    assert.equal(row.matches, true, 'the server’s sha256 of what it stored is ours');
    assert.equal(row.size_bytes, body.length);
    assert.equal(row.topic, 'health/\\u0000export', 'storableText applied to the topic');
    assert.equal(row.client_id, 'phone');
    assert.equal(row.received_at.getTime(), Date.parse('2025-06-01T12:00:00.5Z'));
  });

  test('a payload with every byte value, large and small', async () => {
    const pattern = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));
    const body = Buffer.concat(Array.from({ length: ZERO_COPY_BODY_BYTES / 256 + 1 }, () => pattern));
    const stored = await new RawIngestionStore(pool, { maxBatchBytes: 8 * MiB }).store(request(body), sha256(body));
    const { rows } = await pool.query<{ payload: Buffer }>('SELECT payload FROM raw_ingestions WHERE id = $1', [stored.id]);
    assert.ok(rows[0]!.payload.equals(body));
    const echoed = await queryWithoutCopy<{ b: Buffer }>(pool, 'SELECT $1::bytea AS b', [pattern]);
    assert.ok(echoed.rows[0]!.b.equals(pattern));
  });

  test('the same bytes twice: one row, receive_count 2, inserted false the second time', async () => {
    const body = randomBytes(2 * MiB);
    const raw = new RawIngestionStore(pool, { maxBatchBytes: 8 * MiB });
    const first = await raw.store(request(body), sha256(body));
    const second = await raw.store(request(body, { receivedAt: new Date('2025-06-02T00:00:00Z') }), sha256(body));
    assert.equal(first.inserted, true);
    assert.equal(second.inserted, false);
    assert.equal(second.id, first.id);
    const { rows } = await pool.query<{ n: number; receive_count: number; last_received_at: Date }>(
      'SELECT count(*) OVER ()::int AS n, receive_count, last_received_at FROM raw_ingestions WHERE sha256 = $1',
      [sha256(body)],
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.receive_count, 2);
    assert.equal(rows[0]!.last_received_at.toISOString(), '2025-06-02T00:00:00.000Z');
  });

  test('one group commit with several large bodies, a small one and a duplicate', async () => {
    const a = randomBytes(3 * MiB);
    const b = randomBytes(ZERO_COPY_BODY_BYTES);
    const small = Buffer.from('{"data":{}}');
    const raw = new RawIngestionStore(pool, { maxBatchBytes: 64 * MiB });
    // The first store starts a commit on its own; the rest queue behind it and share the next one.
    const results = await Promise.all([a, a, b, small, b].map((body) => raw.store(request(body), sha256(body))));
    assert.deepEqual(results.map((r) => r.inserted), [true, false, true, true, false]);
    assert.equal(results[1]!.id, results[0]!.id);
    assert.equal(results[4]!.id, results[2]!.id);
    const { rows } = await pool.query<{ id: string; ok: boolean }>(
      'SELECT id, sha256(payload) = sha256 AS ok FROM raw_ingestions WHERE id = ANY($1::int8[])',
      [results.map((r) => r.id)],
    );
    assert.equal(rows.length, 3);
    assert.ok(rows.every((r) => r.ok));
  });

  test('a server error rejects with pg’s DatabaseError and its code; the connection stays usable and uncorked', async () => {
    const client = await pool.connect();
    try {
      const big = randomBytes(4 * MiB);
      const violation = await queryWithoutCopy(client, 'INSERT INTO zc (b, positive) VALUES ($1, $2)', [big, -1]).then(
        () => assert.fail('a CHECK violation must reject'),
        (err: unknown) => err,
      );
      assert.ok(violation instanceof pg.DatabaseError);
      assert.equal(violation.code, '23514');
      assert.equal(violation.constraint, 'zc_positive_check');
      assert.equal(isTransientDatabaseError(violation), false);
      assert.equal(client.connection.stream.writableCorked, 0);
      assert.deepEqual((await client.query('SELECT 1 AS ok')).rows, [{ ok: 1 }]);

      // Refused at Parse: the server skips the 4 MiB Bind that follows, up to our Sync.
      const syntax = await queryWithoutCopy(client, 'INSERT INTO nowhere VALUES ($1', [big]).then(
        () => assert.fail('a syntax error must reject'),
        (err: unknown) => err,
      );
      assert.ok(syntax instanceof pg.DatabaseError);
      assert.equal(syntax.code, '42601');
      assert.deepEqual((await queryWithoutCopy(client, 'SELECT $1::text AS ok', ['yes'])).rows, [{ ok: 'yes' }]);
      assert.equal(client.getTransactionStatus(), 'I');
    } finally {
      client.release();
    }
    assert.deepEqual((await pool.query('SELECT 2 AS ok')).rows, [{ ok: 2 }]);
  });

  test('a named statement is prepared once per connection, shared with pg\'s own named queries, and forgotten when its parse fails', async () => {
    const client = await pool.connect();
    try {
      const text = 'SELECT $1::int4 + 1 AS n, $2::bytea AS b';
      const big = randomBytes(SEPARATE_BUFFER_MIN_BYTES * 2);
      for (let i = 0; i < 3; i++) {
        const { rows } = await queryWithoutCopy<{ n: number; b: Buffer }>(client, text, [i, big], 'ss_test_plus_one');
        assert.equal(rows[0]!.n, i + 1);
        assert.ok(rows[0]!.b.equals(big));
      }
      const prepared = await client.query<{ name: string; statement: string }>(`SELECT name, statement FROM pg_prepared_statements WHERE name = 'ss_test_plus_one'`);
      assert.deepEqual(prepared.rows, [{ name: 'ss_test_plus_one', statement: text }]);
      // pg's own query of the same name and text binds the statement already there.
      assert.equal((await client.query({ name: 'ss_test_plus_one', text, values: [41, Buffer.alloc(1)] })).rows[0].n, 42);
      // A parse that fails leaves the name free: the next try parses again (and fails the same way, not as "unique").
      for (let i = 0; i < 2; i++) {
        const err = await queryWithoutCopy(client, 'SELECT FROM nowhere WHERE $1', [1], 'ss_test_broken').then(
          () => assert.fail('must reject'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof pg.DatabaseError);
        assert.equal(err.code, '42P01');
      }
      assert.equal(client.getTransactionStatus(), 'I');
    } finally {
      client.release();
    }
  });

  test('an error reaches every waiter of the group commit, and the store goes on', async () => {
    const raw = new RawIngestionStore(pool, { maxBatchBytes: 64 * MiB });
    const good = randomBytes(2 * MiB);
    const bad = randomBytes(2 * MiB);
    const blocker = raw.store(request(randomBytes(2 * MiB)), sha256(randomBytes(32)));
    // These two share a commit; the bad transport violates a CHECK, so both must fail.
    const results = await Promise.allSettled([
      raw.store(request(good), sha256(good)),
      raw.store(request(bad, { transport: 'carrier-pigeon' as IngestRequest['transport'] }), sha256(bad)),
    ]);
    await blocker;
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.equal((r.reason as { code?: string }).code, '23514');
    }
    const again = await raw.store(request(good), sha256(good));
    assert.equal(again.inserted, true);
  });

  test('a connection killed during the statement: the error is transient and the pool recovers', async () => {
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE raw_ingestions IN EXCLUSIVE MODE');
      const body = randomBytes(2 * MiB);
      // Settled into a value at once: the rejection can arrive before pg_terminate_backend returns.
      const pending = new RawIngestionStore(pool, { maxBatchBytes: 8 * MiB }).store(request(body), sha256(body)).then(
        () => assert.fail('must reject'),
        (e: unknown) => e,
      );
      let pid: number | undefined;
      for (let waited = 0; pid === undefined && waited < 10_000; waited += 20) {
        const { rows } = await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO raw_ingestions%'`,
        );
        pid = rows[0]?.pid;
        if (pid === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(pid !== undefined, 'the insert waits for the lock');
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      const err = await pending;
      assert.equal(isTransientDatabaseError(err), true, `transient: ${String(err)}`);
      await admin.query('ROLLBACK');
      const after = await new RawIngestionStore(pool, { maxBatchBytes: 8 * MiB }).store(request(body), sha256(body));
      assert.equal(after.inserted, true);
    } finally {
      await admin.end();
    }
  });
});
