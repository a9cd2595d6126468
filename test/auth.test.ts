import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { KeyAuthenticator } from '../src/auth/authenticator.js';
import { generateKey, parseKey } from '../src/auth/key-format.js';
import { KeyStore } from '../src/auth/key-store.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { migrationsDir } from '../src/paths.js';
import { loadMigrations, migrate } from '../src/store/migrator.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const log = createLogger('silent');
let db: TestDatabase;
let pool: pg.Pool;
let keys: KeyStore;

before(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  await migrate(pool, await loadMigrations(migrationsDir), log);
  keys = new KeyStore(pool);
});
after(async () => {
  await pool?.end();
  await db?.drop();
});

const ctx = { transport: 'http' as const };

test('key format: random, parseable, the secret never in the database', async () => {
  const a = generateKey();
  const b = generateKey();
  assert.notEqual(a.key, b.key);
  assert.deepEqual(parseKey(a.key)?.prefix, a.prefix);
  assert.equal(parseKey('ss_short_x'), null);
  const created = await keys.create({ userName: 'dana', label: 'phone' });
  const { rows } = await pool.query('SELECT prefix, secret_hash FROM api_keys WHERE id = $1', [created.id]);
  assert.equal(rows[0].prefix, created.prefix);
  assert.match(rows[0].secret_hash, /^\$argon2id\$/);
  assert.ok(!rows[0].secret_hash.includes(parseKey(created.key)!.secret));
});

test('every outcome, counted by reason', async () => {
  const metrics = new Metrics();
  const auth = new KeyAuthenticator({ keys, options: { cacheTtlMs: 60_000, cacheRefreshMs: 100 }, logger: log, metrics });
  await auth.start();
  try {
    const good = await keys.create({ userName: 'erin' });
    const revoked = await keys.create({ userName: 'erin' });
    await keys.revoke(revoked.id);
    const expired = await keys.create({ userName: 'erin', expiresAt: new Date(Date.now() - 1000) });
    const wrongSecret = `ss_${good.prefix}_${'A'.repeat(43)}`;
    const outcomes = await Promise.all([undefined, '', 'nonsense', `ss_zzzzzzzzzz_${'A'.repeat(43)}`, wrongSecret, revoked.key, expired.key, good.key].map((k) => auth.verify(k, ctx)));
    assert.deepEqual(
      outcomes.map((o) => (o.ok ? `ok:${o.identity.userName}` : o.reason)),
      ['missing', 'missing', 'malformed', 'unknown_key', 'wrong_secret', 'revoked', 'expired', 'ok:erin'],
    );
    const text = await metrics.registry.metrics();
    assert.match(text, /self_sensored_auth_attempts_total\{transport="http",outcome="wrong_secret"\} 1/);
    assert.match(text, /self_sensored_auth_attempts_total\{transport="http",outcome="ok"\} 1/);
  } finally {
    await auth.stop();
  }
});

test('the warm path skips argon2; revocation still bites within the refresh interval', async () => {
  const auth = new KeyAuthenticator({ keys, options: { cacheTtlMs: 60_000, cacheRefreshMs: 200 }, logger: log, metrics: new Metrics() });
  await auth.start();
  try {
    const created = await keys.create({ userName: 'frank' });
    const cold = performance.now();
    assert.equal((await auth.verify(created.key, ctx)).ok, true);
    const coldMs = performance.now() - cold;
    const warm = performance.now();
    for (let i = 0; i < 100; i++) assert.equal((await auth.verify(created.key, ctx)).ok, true);
    const warmMs = (performance.now() - warm) / 100;
    // argon2id costs tens of milliseconds; a cache hit costs a hash and a map lookup.
    assert.ok(warmMs * 20 < coldMs, `warm ${warmMs.toFixed(3)} ms vs cold ${coldMs.toFixed(1)} ms`);

    await keys.revoke(created.prefix);
    await new Promise((r) => setTimeout(r, 700));
    const after = await auth.verify(created.key, ctx);
    assert.equal(after.ok, false);
    assert.equal(!after.ok && after.reason, 'revoked');
  } finally {
    await auth.stop();
  }
});

test('last_used_at is written, at most once a minute per key', async () => {
  const auth = new KeyAuthenticator({ keys, options: { cacheTtlMs: 60_000, cacheRefreshMs: 100 }, logger: log, metrics: new Metrics() });
  await auth.start();
  try {
    const created = await keys.create({ userName: 'gina' });
    await auth.verify(created.key, ctx);
    await new Promise((r) => setTimeout(r, 400));
    const first = (await pool.query('SELECT last_used_at FROM api_keys WHERE id = $1', [created.id])).rows[0].last_used_at as Date;
    assert.ok(first instanceof Date);
    await auth.verify(created.key, ctx);
    await new Promise((r) => setTimeout(r, 400));
    const second = (await pool.query('SELECT last_used_at FROM api_keys WHERE id = $1', [created.id])).rows[0].last_used_at as Date;
    assert.equal(second.getTime(), first.getTime());
  } finally {
    await auth.stop();
  }
});
