import assert from 'node:assert/strict';
import crypto, { randomUUID } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { AuthEventLog } from '../src/auth/auth-events.js';
import { KeyAuthenticator } from '../src/auth/authenticator.js';
import { generateKey, lookupOf, ownKeyLookup, ownKeyProblem, parseKey } from '../src/auth/key-format.js';
import { KeyManagement } from '../src/auth/key-management.js';
import { parseExpiry, parseScopes } from '../src/auth/key-policy.js';
import { KeyStore } from '../src/auth/key-store.js';
import { AuthThrottle, throttleAddress } from '../src/auth/throttle.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { createMigratedDatabase, type TestDatabase } from './helpers/database.js';

const log = createLogger('silent');
let db: TestDatabase;
let pool: pg.Pool;
let keys: KeyStore;

before(async () => {
  ({ db, pool } = await createMigratedDatabase(4));
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
    const huge = good.key + ' '.repeat(10 * 1024 * 1024);
    const outcomes = await Promise.all([undefined, '', 'nonsense', `ss_zzzzzzzzzz_${'A'.repeat(43)}`, wrongSecret, revoked.key, expired.key, good.key, huge].map((k) => auth.verify(k, ctx)));
    assert.deepEqual(
      outcomes.map((o) => (o.ok ? `ok:${o.identity.userName}` : o.reason)),
      ['missing', 'missing', 'malformed', 'unknown_key', 'wrong_secret', 'revoked', 'expired', 'ok:erin', 'malformed'],
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

test('own-choice keys: strength rules, lookup by a derived value, verified with argon2id, scopes enforced', async () => {
  assert.match(ownKeyProblem('short') ?? '', /at least 16 characters/);
  assert.match(ownKeyProblem('a'.repeat(40)) ?? '', /different characters/);
  assert.match(ownKeyProblem('has a space in it 1234') ?? '', /printable ASCII/);
  assert.match(ownKeyProblem(`ss_${'x'.repeat(20)}1234567`) ?? '', /ss_/);
  assert.equal(ownKeyProblem(randomUUID()), null);
  const uuid = randomUUID();
  assert.equal(lookupOf(uuid), ownKeyLookup(uuid));
  assert.equal(lookupOf(`  ${uuid}\n`), ownKeyLookup(uuid));
  assert.equal(lookupOf('tooshort'), null);
  assert.equal(lookupOf('ss_notagoodkey_at_all_really'), null);

  const management = new KeyManagement({ keys });
  await assert.rejects(management.create({ user: 'hana', key: 'password' }), { code: 'SS_KEY_TOO_WEAK' });
  const created = await management.create({ user: 'hana', key: uuid, scopes: ['read'] });
  assert.deepEqual(created.scopes, ['read']);
  await assert.rejects(management.create({ user: 'ivan', key: uuid }), { code: 'SS_KEY_EXISTS' });
  const metrics = new Metrics();
  const auth = new KeyAuthenticator({ keys, options: { cacheTtlMs: 60_000, cacheRefreshMs: 1_000 }, logger: log, metrics });
  await auth.start();
  try {
    const ok = await auth.verify(uuid, { transport: 'http', requiredScope: 'read' });
    assert.equal(ok.ok && ok.identity.userName, 'hana');
    const denied = await auth.verify(uuid, { transport: 'http', requiredScope: 'ingest' });
    assert.equal(!denied.ok && denied.reason, 'insufficient_scope');
    const wrong = await auth.verify(randomUUID(), ctx);
    assert.equal(!wrong.ok && wrong.reason, 'unknown_key');
  } finally {
    await auth.stop();
  }
});

test('scopes and expiry as typed: repeatable or comma-separated scopes, durations and ISO dates in the future', () => {
  assert.deepEqual(parseScopes(undefined), ['ingest']);
  assert.deepEqual(parseScopes(['ingest,admin', 'admin']), ['ingest', 'admin']);
  assert.throws(() => parseScopes(['root']), { code: 'SS_KEY_REQUEST_INVALID' });
  const now = new Date('2026-01-01T00:00:00Z');
  assert.equal(parseExpiry('90d', now).toISOString(), '2026-04-01T00:00:00.000Z');
  assert.equal(parseExpiry('12h', now).toISOString(), '2026-01-01T12:00:00.000Z');
  assert.equal(parseExpiry('2027-01-31', now).toISOString(), '2027-01-31T00:00:00.000Z');
  assert.equal(parseExpiry('2027-01-31T10:00:00+02:00', now).toISOString(), '2027-01-31T08:00:00.000Z');
  assert.throws(() => parseExpiry('2025-12-31', now), /not in the future/);
  assert.throws(() => parseExpiry('soon', now), { code: 'SS_KEY_REQUEST_INVALID' });
});

test('throttle: free failures, doubling delay up to the cap, block, expiry of the block, bounded tables', () => {
  let now = 1_000_000;
  const policy = { freeFailures: 2, baseDelayMs: 100, maxDelayMs: 500, blockAfterFailures: 7, blockMs: 60_000, windowMs: 600_000, maxEntries: 3 };
  const throttle = new AuthThrottle(policy, () => now);
  const delays: number[] = [];
  for (let i = 0; i < 7; i++) {
    delays.push(throttle.delayMs('10.0.0.1'));
    throttle.recordFailure('10.0.0.1');
  }
  assert.deepEqual(delays, [0, 0, 100, 200, 400, 500, 500]);
  assert.deepEqual(throttle.refusal('10.0.0.1'), { scope: 'address', retryAfterMs: 60_000 });
  assert.equal(throttle.refusal('10.0.0.2'), null);
  assert.deepEqual(throttle.blockedCounts(), { address: 1, key: 0 });
  now += 60_001;
  assert.equal(throttle.refusal('10.0.0.1'), null, 'the block ends');
  now += 600_000;
  assert.equal(throttle.delayMs('10.0.0.1'), 0, 'failures are forgotten after the window');

  // Three failures each would mean a 200 ms delay, for the three kept.
  for (const address of ['a', 'b', 'c', 'd', 'e']) for (let i = 0; i < 3; i++) throttle.recordFailure(address, `key-${address}`);
  assert.deepEqual(['a', 'b', 'c', 'd', 'e'].map((a) => throttle.delayMs(a)), [0, 0, 200, 200, 200], 'the least recently failing make room');
  assert.deepEqual(['a', 'b', 'e'].map((a) => throttle.delayMs('x', `key-${a}`)), [0, 0, 200], 'the key table is bounded too');
});

test('throttle identity of an address: IPv4 as is (also mapped), IPv6 by /64', () => {
  assert.equal(throttleAddress('127.0.0.2'), '127.0.0.2');
  assert.equal(throttleAddress('::ffff:192.168.1.9'), '192.168.1.9');
  assert.equal(throttleAddress('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.equal(throttleAddress('2001:db8:1:2::1'), '2001:db8:1:2::/64');
  assert.equal(throttleAddress('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(throttleAddress('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(throttleAddress(undefined), 'unknown');
});

test('a flood of made-up keys runs no argon2: hundreds of attempts cost less than a few argon2 checks', async () => {
  const auth = new KeyAuthenticator({ keys, options: { cacheTtlMs: 60_000, cacheRefreshMs: 1_000 }, logger: log, metrics: new Metrics() });
  await auth.start();
  try {
    const created = await keys.create({ userName: 'jack' });
    const oneArgon2 = performance.now();
    assert.equal((await auth.verify(`ss_${created.prefix}_${'E'.repeat(43)}`, { transport: 'http', remoteAddress: '10.9.9.9' })).ok, false);
    const argon2Ms = performance.now() - oneArgon2;
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: 300 }, (_, i) => auth.verify(i % 2 ? randomUUID() : generateKey().key, { transport: 'http', remoteAddress: `10.1.${i >> 8}.${i & 255}` })),
    );
    const floodMs = performance.now() - started;
    assert.ok(outcomes.every((o) => !o.ok && o.reason === 'unknown_key'));
    assert.ok(floodMs < argon2Ms * 30, `300 unknown keys took ${floodMs.toFixed(0)} ms; one argon2 check ${argon2Ms.toFixed(0)} ms`);
  } finally {
    await auth.stop();
  }
});

test('the warm path compares the key digest with crypto.timingSafeEqual', async () => {
  const auth = new KeyAuthenticator({ keys, options: { cacheTtlMs: 60_000, cacheRefreshMs: 1_000 }, logger: log, metrics: new Metrics() });
  await auth.start();
  const original = crypto.timingSafeEqual;
  let calls = 0;
  try {
    const created = await keys.create({ userName: 'kate' });
    assert.equal((await auth.verify(created.key, ctx)).ok, true);
    crypto.timingSafeEqual = (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      calls++;
      return original(a, b);
    };
    syncBuiltinESMExports();
    assert.equal((await auth.verify(created.key, ctx)).ok, true);
    assert.equal(calls, 1);
  } finally {
    crypto.timingSafeEqual = original;
    syncBuiltinESMExports();
    await auth.stop();
  }
});

test('the auth event queue is bounded: a flood drops events, counts them, and never blocks', async () => {
  const metrics = new Metrics();
  const events = new AuthEventLog({ pool, logger: log, metrics, options: { retentionDays: 90, flushIntervalMs: 60_000, batchRows: 1_000, maxQueued: 100, pruneIntervalMs: 3_600_000 } });
  const event = { at: new Date(), outcome: 'failure' as const, reason: 'unknown_key', transport: 'http' as const, remoteAddress: '10.0.0.1', clientId: 'x'.repeat(1_000), keyPrefix: null, keyId: null, userId: null };
  for (let i = 0; i < 150; i++) events.record(event);
  assert.equal(events.queued, 100);
  assert.match(await metrics.registry.metrics(), /self_sensored_auth_events_dropped_total 50/);
  const before = Number((await pool.query('SELECT count(*) AS n FROM auth_events')).rows[0].n);
  await events.flush();
  const after = (await pool.query<{ n: string; longest: number }>('SELECT count(*) AS n, max(length(client_id)) AS longest FROM auth_events')).rows[0]!;
  assert.equal(Number(after.n) - before, 100);
  assert.equal(after.longest, 256, 'client ids are cut to 256 characters');

  // A client id PostgreSQL cannot store (U+0000) is made storable, and does not poison the batch.
  events.record({ ...event, clientId: 'evil\u0000id' });
  await events.flush();
  assert.equal(events.queued, 0);
  const stored = await pool.query(`SELECT count(*)::int AS n FROM auth_events WHERE client_id = $1`, ['evil\ufffdid']);
  assert.equal(stored.rows[0].n, 1);

  // A batch the database refuses for good is dropped and counted, not retried forever.
  events.record({ ...event, keyId: 'not-a-uuid' });
  await events.flush();
  assert.equal(events.queued, 0);
  assert.match(await metrics.registry.metrics(), /self_sensored_auth_events_dropped_total 51/);
});

test('parallel guesses at one key from one address: argon2 stops once the block is reached', async () => {
  const policy = { freeFailures: 2, baseDelayMs: 100, maxDelayMs: 400, blockAfterFailures: 6, blockMs: 60_000, windowMs: 600_000, maxEntries: 1_000 };
  const metrics = new Metrics();
  const auth = new KeyAuthenticator({ keys, options: { cacheTtlMs: 60_000, cacheRefreshMs: 1_000 }, logger: log, metrics, throttle: new AuthThrottle(policy) });
  await auth.start();
  try {
    const created = await keys.create({ userName: 'lars' });
    const guesses = Array.from({ length: 30 }, (_, i) => `ss_${created.prefix}_${String(i).padStart(2, '0')}${'F'.repeat(41)}`);
    const outcomes = await Promise.all(guesses.map((g) => auth.verify(g, { transport: 'mqtt-tcp', remoteAddress: '10.7.7.7' })));
    const reasons = outcomes.map((o) => (o.ok ? 'ok' : o.reason));
    const checked = reasons.filter((r) => r === 'wrong_secret').length;
    // Two argon2 checks run at a time: at most one more finishes after the sixth failure.
    assert.ok(checked >= 6 && checked <= 7, `argon2 ran ${checked} times: ${reasons.join(',')}`);
    assert.equal(reasons.filter((r) => r === 'throttled').length, 30 - checked);
    const blocked = outcomes.find((o) => !o.ok && o.reason === 'throttled');
    assert.ok(blocked && !blocked.ok && (blocked.retryAfterSeconds ?? 0) > 50);
  } finally {
    await auth.stop();
  }
});
