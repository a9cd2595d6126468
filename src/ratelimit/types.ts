/** A token bucket: `burst` requests at once, refilled at `perMinute` a minute. */
export interface RateRule {
  perMinute: number;
  burst: number;
}

export interface RateDecision {
  allowed: boolean;
  /** The bucket's size (X-RateLimit-Limit). */
  limit: number;
  /** Whole requests left right now (X-RateLimit-Remaining). */
  remaining: number;
  /** Until the next request would be allowed; 0 when this one was (Retry-After). */
  retryAfterMs: number;
  /** Until the bucket is full again (X-RateLimit-Reset). */
  resetMs: number;
}

/**
 * Counts requests per bucket. `scope` keeps the address and key budgets apart; `id` is an API key
 * id or a client address, never a secret.
 */
export interface RateLimiter {
  /** A decision at once when the limiter needs no I/O for it (every MQTT publish asks). */
  consume(scope: RateScope, id: string, rule: RateRule): RateDecision | Promise<RateDecision>;
  close(): Promise<void>;
}

export type RateScope = 'key' | 'address';
