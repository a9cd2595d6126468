import type { PublishRateLimiter } from '../../broker/types.js';
import type { RateLimitMetrics } from './metrics.js';
import type { RateLimiter, RateRule } from './types.js';

/** The broker's view of the per-key limit: the same bucket as the key's HTTP requests. */
export class KeyPublishLimiter implements PublishRateLimiter {
  readonly #limiter: RateLimiter;
  readonly #rule: RateRule;
  readonly #metrics: RateLimitMetrics;

  constructor(limiter: RateLimiter, rule: RateRule, metrics: RateLimitMetrics) {
    this.#limiter = limiter;
    this.#rule = rule;
    this.#metrics = metrics;
  }

  async take(keyId: string): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const decision = await this.#limiter.consume('key', keyId, this.#rule);
    return { allowed: decision.allowed, retryAfterMs: decision.retryAfterMs };
  }

  report(event: 'delayed' | 'disconnected'): void {
    if (event === 'delayed') this.#metrics.limited.inc({ route: 'mqtt', scope: 'key' });
    else this.#metrics.mqttDisconnects.inc();
  }
}
