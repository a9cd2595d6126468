import type { ServerResponse } from 'node:http';
import { AppError } from '../errors.js';
import type { RateLimitMetrics } from '../ratelimit/metrics.js';
import type { RateDecision, RateLimiter, RateRule, RateScope } from '../ratelimit/types.js';
import { addressBucket } from '../network-address.js';

export interface HttpRateLimitRules {
  key: RateRule | null;
  address: RateRule | null;
}

/**
 * The per-address (before authentication) and per-key (after it) limits of the HTTP routes.
 * Every answer of a limited route carries X-RateLimit-* for the tighter of the limits applied.
 */
export class HttpRateLimits {
  readonly #limiter: RateLimiter;
  readonly #rules: HttpRateLimitRules;
  readonly #metrics: RateLimitMetrics;
  /** The decision behind the headers already set on an answer. */
  readonly #shown = new WeakMap<ServerResponse, RateDecision>();

  constructor(limiter: RateLimiter, rules: HttpRateLimitRules, metrics: RateLimitMetrics) {
    this.#limiter = limiter;
    this.#rules = rules;
    this.#metrics = metrics;
  }

  /** Counts the request against the address's budget; the 429 to send when it is spent. */
  admitAddress(res: ServerResponse, route: string, address: string | undefined): Promise<AppError | null> {
    if (address === undefined) return Promise.resolve(null);
    return this.#admit(res, route, 'address', addressBucket(address));
  }

  /** Counts the request against the API key's budget (by key id: Redis never sees a key). */
  admitKey(res: ServerResponse, route: string, keyId: string): Promise<AppError | null> {
    return this.#admit(res, route, 'key', keyId);
  }

  async #admit(res: ServerResponse, route: string, scope: RateScope, id: string): Promise<AppError | null> {
    const rule = this.#rules[scope];
    if (!rule) return null;
    const decision = await this.#limiter.consume(scope, id, rule);
    this.#show(res, decision);
    if (decision.allowed) return null;
    this.#metrics.limited.inc({ route, scope });
    const retryAfterSeconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    if (!res.headersSent) res.setHeader('Retry-After', String(retryAfterSeconds));
    return new AppError('SS_RATE_LIMITED', `Too many requests for this ${scope === 'key' ? 'API key' : 'address'}; retry in ${retryAfterSeconds} s`, {
      scope,
      retryAfterSeconds,
    });
  }

  #show(res: ServerResponse, decision: RateDecision): void {
    const shown = this.#shown.get(res);
    if (res.headersSent || (shown && shown.allowed === decision.allowed && shown.remaining <= decision.remaining)) return;
    this.#shown.set(res, decision);
    res.setHeader('X-RateLimit-Limit', String(decision.limit));
    res.setHeader('X-RateLimit-Remaining', String(decision.remaining));
    res.setHeader('X-RateLimit-Reset', String(Math.ceil(decision.resetMs / 1000)));
  }
}
