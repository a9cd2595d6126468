import { createHash } from 'node:crypto';
import type { Logger } from '../log.js';
import { redactUrl } from '../log.js';
import { MemoryRateLimiter } from './memory-limiter.js';
import type { RateLimitMetrics } from './metrics.js';
import { RespClient, RespError } from './resp-client.js';
import { decisionFor } from './token-bucket.js';
import type { RateDecision, RateLimiter, RateRule, RateScope } from './types.js';
import { errorMessage } from '../errors.js';

/**
 * The token bucket of token-bucket.ts, run atomically inside Redis so several instances share
 * one count. Redis' own clock keeps instances with skewed clocks consistent. Returns
 * {allowed, tokens as text} (Lua numbers would be truncated to integers on the way out).
 */
const SCRIPT = `
local burst = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1])
local at = tonumber(saved[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * perMs)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / perMs) + 1000)
return {allowed, tostring(tokens)}
`;
const SCRIPT_SHA = createHash('sha1').update(SCRIPT).digest('hex');

export interface RedisRateLimiterOptions {
  url: string;
  /** Prefix of every key this limiter writes, e.g. "self-sensored:rl:". */
  prefix: string;
  /** A check that takes longer than this falls back to local counting. */
  timeoutMs?: number;
  /** While Redis is down, how often one check tries it again. */
  retryMs?: number;
}

/**
 * Rate limits shared through Redis. When Redis cannot be reached the limiter fails open to
 * per-instance limits: each instance counts alone in memory (so limits still hold per instance,
 * and health data keeps flowing), the failure is counted in a metric, and one log line is
 * written when Redis goes away and one when it is back.
 */
export class RedisRateLimiter implements RateLimiter {
  readonly #client: RespClient;
  readonly #local = new MemoryRateLimiter();
  readonly #prefix: string;
  readonly #retryMs: number;
  readonly #logger: Logger;
  readonly #metrics: RateLimitMetrics;
  readonly #target: string;
  #up = true;
  #nextAttemptAt = 0;

  constructor(options: RedisRateLimiterOptions, logger: Logger, metrics: RateLimitMetrics) {
    this.#client = new RespClient({ url: options.url, timeoutMs: options.timeoutMs ?? 500 });
    this.#prefix = options.prefix;
    this.#retryMs = options.retryMs ?? 1_000;
    this.#logger = logger;
    this.#metrics = metrics;
    this.#target = redactUrl(options.url);
    metrics.backendUp.set({ backend: 'redis' }, 1);
  }

  async consume(scope: RateScope, id: string, rule: RateRule): Promise<RateDecision> {
    if (!this.#up && Date.now() < this.#nextAttemptAt) return this.#counted(scope, id, rule);
    try {
      const [allowed, tokens] = (await this.#run(`${this.#prefix}${scope}:${id}`, rule)) as [number, string];
      this.#setUp(true);
      return decisionFor(allowed === 1, Number(tokens), rule);
    } catch (err) {
      this.#setUp(false, err);
      return this.#counted(scope, id, rule);
    }
  }

  async #run(key: string, rule: RateRule): Promise<unknown> {
    const args = [1, key, rule.burst, rule.perMinute / 60_000];
    try {
      return await this.#client.command(['EVALSHA', SCRIPT_SHA, ...args]);
    } catch (err) {
      // First use on this Redis (or after SCRIPT FLUSH / a restart): EVAL loads the script.
      if (err instanceof RespError && err.message.startsWith('NOSCRIPT')) return this.#client.command(['EVAL', SCRIPT, ...args]);
      throw err;
    }
  }

  #counted(scope: RateScope, id: string, rule: RateRule): RateDecision {
    this.#metrics.backendErrors.inc({ backend: 'redis' });
    return this.#local.consumeNow(scope, id, rule);
  }

  #setUp(up: boolean, err?: unknown): void {
    if (!up) this.#nextAttemptAt = Date.now() + this.#retryMs;
    if (up === this.#up) return;
    this.#up = up;
    this.#metrics.backendUp.set({ backend: 'redis' }, up ? 1 : 0);
    if (up) {
      this.#logger.info({ redis: this.#target }, 'rate limits: Redis is reachable again; counts are shared again');
    } else {
      const error = errorMessage(err);
      this.#logger.warn({ redis: this.#target, error }, 'rate limits: Redis is unreachable; each instance counts alone until it is back');
    }
  }

  close(): Promise<void> {
    this.#client.close();
    return this.#local.close();
  }
}
