import { isFull, takeToken, type BucketState } from './token-bucket.js';
import type { RateDecision, RateLimiter, RateRule, RateScope } from './types.js';

interface Entry extends BucketState {
  rule: RateRule;
}

const DEFAULT_MAX_BUCKETS = 100_000;
/** Every this many checks, refilled buckets at the old end are forgotten. */
const SWEEP_EVERY = 1_000;

/**
 * Token buckets in this process's memory. The Map is kept in least-recently-used order, so
 * memory stays bounded: refilled buckets (identical to a fresh one) are swept from the old end,
 * and past maxBuckets the least recently used is dropped, which only an attacker with more
 * addresses than that can cause.
 */
export class MemoryRateLimiter implements RateLimiter {
  readonly #buckets = new Map<string, Entry>();
  readonly #maxBuckets: number;
  readonly #now: () => number;
  #checks = 0;

  constructor(options: { maxBuckets?: number; now?: () => number } = {}) {
    this.#maxBuckets = options.maxBuckets ?? DEFAULT_MAX_BUCKETS;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#buckets.size;
  }

  consume(scope: RateScope, id: string, rule: RateRule): Promise<RateDecision> {
    return Promise.resolve(this.consumeNow(scope, id, rule));
  }

  consumeNow(scope: RateScope, id: string, rule: RateRule): RateDecision {
    const now = this.#now();
    const name = `${scope}:${id}`;
    const previous = this.#buckets.get(name);
    const { state, decision } = takeToken(previous, rule, now);
    if (previous) this.#buckets.delete(name);
    this.#buckets.set(name, { ...state, rule });
    if (++this.#checks % SWEEP_EVERY === 0) this.#sweep(now);
    while (this.#buckets.size > this.#maxBuckets) this.#buckets.delete(this.#buckets.keys().next().value!);
    return decision;
  }

  #sweep(now: number): void {
    for (const [name, entry] of this.#buckets) {
      if (!isFull(entry, entry.rule, now)) return;
      this.#buckets.delete(name);
    }
  }

  close(): Promise<void> {
    this.#buckets.clear();
    return Promise.resolve();
  }
}
