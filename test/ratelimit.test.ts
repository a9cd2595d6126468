import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import client from 'prom-client';
import { addressBucket, normalizeAddress } from '../src/network-address.js';
import { createLogger } from '../src/log.js';
import { MemoryRateLimiter } from '../src/ratelimit/memory-limiter.js';
import { RateLimitMetrics } from '../src/ratelimit/metrics.js';
import { RedisRateLimiter } from '../src/ratelimit/redis-limiter.js';
import { RespClient } from '../src/ratelimit/resp-client.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

/** The Redis the tests use: TEST_REDIS_URL, or the one on the development machine. */
const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Set by `npm test` on a machine without any Redis (never under CI, where that fails the run). */
const noRedis = process.env.TEST_REDIS_UNAVAILABLE ? { skip: `no Redis here: ${process.env.TEST_REDIS_UNAVAILABLE}` } : {};
const rule = { perMinute: 60, burst: 3 };

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('memory: the burst passes, then one a second; headers values follow', () => {
  const c = clock();
  const limiter = new MemoryRateLimiter({ now: c.now });
  const decisions = [1, 2, 3, 4].map(() => limiter.consumeNow('key', 'k', rule));
  assert.deepEqual(decisions.map((d) => d.allowed), [true, true, true, false]);
  assert.deepEqual(decisions.map((d) => d.remaining), [2, 1, 0, 0]);
  assert.equal(decisions[3]!.retryAfterMs, 1000);
  assert.equal(decisions[3]!.resetMs, 3000);
  assert.equal(decisions[0]!.limit, 3);
  c.advance(999);
  assert.equal(limiter.consumeNow('key', 'k', rule).allowed, false);
  c.advance(1);
  assert.equal(limiter.consumeNow('key', 'k', rule).allowed, true);
  // Another id, and the same id in the other scope, have their own buckets.
  assert.equal(limiter.consumeNow('key', 'other', rule).remaining, 2);
  assert.equal(limiter.consumeNow('address', 'k', rule).remaining, 2);
});

test('memory: bounded by maxBuckets, least recently used first; refilled buckets are swept', () => {
  const c = clock();
  const limiter = new MemoryRateLimiter({ now: c.now, maxBuckets: 100 });
  limiter.consumeNow('address', 'busy', rule);
  limiter.consumeNow('address', 'busy', rule);
  for (let i = 0; i < 500; i++) {
    limiter.consumeNow('address', `scanner-${i}`, rule);
    if (i % 50 === 0) limiter.consumeNow('address', 'busy', rule); // keeps it recently used
  }
  assert.equal(limiter.size, 100);
  assert.equal(limiter.consumeNow('address', 'busy', rule).allowed, false, 'a recently used bucket survives the flood');
  c.advance(10_000);
  for (let i = 0; i < 1_000; i++) limiter.consumeNow('address', 'fresh', rule);
  assert.ok(limiter.size <= 2, `refilled buckets were forgotten (size ${limiter.size})`);
});

test('IPv6 clients share a bucket per /64; IPv4-mapped addresses are plain IPv4', () => {
  assert.equal(addressBucket('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(addressBucket('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  assert.equal(addressBucket('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(addressBucket('::1'), '0:0:0:0::/64');
  assert.equal(addressBucket('192.0.2.7'), '192.0.2.7');
  assert.equal(normalizeAddress('::ffff:192.0.2.7'), '192.0.2.7');
});

function redisLimiter(url: string, prefix: string, registry = new client.Registry(), logs: string[] = []) {
  const metrics = new RateLimitMetrics(registry);
  const logger = createLogger('info', { write: (line: string) => void logs.push(line) });
  return { limiter: new RedisRateLimiter({ url, prefix, retryMs: 100, timeoutMs: 300 }, logger, metrics), registry, logs };
}

test('Redis: two instances share one count (several daemons, one budget)', noRedis, async () => {
  const prefix = `ss-test:${randomUUID()}:`;
  const a = redisLimiter(redisUrl, prefix).limiter;
  const b = redisLimiter(redisUrl, prefix).limiter;
  try {
    const seen = [await a.consume('key', 'k1', rule), await b.consume('key', 'k1', rule), await a.consume('key', 'k1', rule), await b.consume('key', 'k1', rule)];
    assert.deepEqual(seen.map((d) => d.allowed), [true, true, true, false]);
    assert.deepEqual(seen.map((d) => d.remaining), [2, 1, 0, 0]);
    assert.ok(seen[3]!.retryAfterMs > 0 && seen[3]!.retryAfterMs <= 1000);
    assert.equal((await b.consume('address', 'k1', rule)).remaining, 2, 'scopes are separate buckets');
    // The script is cached in Redis (EVALSHA works from now on), and the buckets expire by themselves.
    const raw = new RespClient({ url: redisUrl, timeoutMs: 1000 });
    const ttl = (await raw.command(['PTTL', `${prefix}key:k1`])) as number;
    assert.ok(ttl > 0 && ttl <= 4_000, `bucket expires (pttl ${ttl})`);
    const fields = (await raw.command(['HGETALL', `${prefix}key:k1`])) as string[];
    assert.equal(fields.length, 4);
    raw.close();
  } finally {
    await a.close();
    await b.close();
  }
});

test('Redis unreachable: fails open to local counting, logs once per change, counts it; shared again when back', noRedis, async () => {
  const target = new URL(redisUrl);
  const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
  await proxy.start();
  const url = new URL(redisUrl);
  url.host = `127.0.0.1:${proxy.port}`;
  const prefix = `ss-test:${randomUUID()}:`;
  const { limiter, registry, logs } = redisLimiter(url.toString(), prefix);
  const metric = async (name: string) => (await registry.getSingleMetric(name)!.get()).values.find((v) => v.labels['backend'] === 'redis')?.value ?? 0;
  try {
    assert.equal((await limiter.consume('key', 'k', rule)).remaining, 2);
    proxy.cut();
    // Still limited, now per instance: its own burst of 3, then refused.
    const local = [];
    for (let i = 0; i < 4; i++) local.push(await limiter.consume('key', 'k', rule));
    assert.deepEqual(local.map((d) => d.allowed), [true, true, true, false]);
    assert.equal(await metric('self_sensored_rate_limit_backend_up'), 0);
    assert.ok((await metric('self_sensored_rate_limit_backend_errors_total')) >= 4);
    proxy.restore();
    await new Promise((r) => setTimeout(r, 150)); // past retryMs
    const shared = await limiter.consume('key', 'k', rule);
    assert.equal(shared.remaining, 1, 'back on the shared bucket, which still holds the first request');
    assert.equal(await metric('self_sensored_rate_limit_backend_up'), 1);
    const changes = logs.map((l) => JSON.parse(l) as { msg: string; redis?: string });
    assert.deepEqual(
      changes.map((l) => l.msg),
      ['rate limits: Redis is unreachable; each instance counts alone until it is back', 'rate limits: Redis is reachable again; counts are shared again'],
    );
  } finally {
    await limiter.close();
    await proxy.stop();
  }
});

test('Redis URL credentials are sent with AUTH and never logged', noRedis, async () => {
  const prefix = `ss-test:${randomUUID()}:`;
  const url = new URL(redisUrl);
  url.password = 'not-the-password-s3cr3t';
  const { limiter, logs } = redisLimiter(url.toString(), prefix);
  try {
    // This Redis has no password: AUTH fails, so the limiter counts locally and says so once.
    assert.equal((await limiter.consume('key', 'k', rule)).allowed, true);
    assert.equal(logs.length, 1);
    assert.ok(!logs.join('').includes('s3cr3t'), logs.join(''));
    assert.match(logs[0]!, /redis:\/\/:redacted@/);
  } finally {
    await limiter.close();
  }
});
