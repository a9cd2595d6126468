import type { PublishDecision, PublishRateLimiter } from '../../broker/types.js';
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

  take(keyId: string): PublishDecision | Promise<PublishDecision> {
    return this.#limiter.consume('key', keyId, this.#rule);
  }

  report(event: 'delayed' | 'disconnected'): void {
    if (event === 'delayed') this.#metrics.limited.inc({ route: 'mqtt', scope: 'key' });
    else this.#metrics.mqttDisconnects.inc();
  }
}
