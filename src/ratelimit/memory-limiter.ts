import { fullBucket, isFull, takeToken, type BucketState } from './token-bucket.js';
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
  /** The bucket at the new end of the Map: using it again needs no move (one key's publishes, back to back). */
  #newest: Entry | undefined;

  constructor(options: { maxBuckets?: number; now?: () => number } = {}) {
    this.#maxBuckets = options.maxBuckets ?? DEFAULT_MAX_BUCKETS;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** Answers at once: nothing here waits for I/O. */
  consume(scope: RateScope, id: string, rule: RateRule): RateDecision {
    return this.consumeNow(scope, id, rule);
  }

  consumeNow(scope: RateScope, id: string, rule: RateRule): RateDecision {
    const now = this.#now();
    const name = `${scope}:${id}`;
    let entry = this.#buckets.get(name);
    if (entry === undefined) {
      entry = { ...fullBucket(rule, now), rule };
      this.#buckets.set(name, entry);
    } else if (entry !== this.#newest) {
      // Moved to the new end: the Map stays in least-recently-used order.
      this.#buckets.delete(name);
      this.#buckets.set(name, entry);
    }
    this.#newest = entry;
    entry.rule = rule;
    const decision = takeToken(entry, rule, now);
    if (++this.#checks % SWEEP_EVERY === 0) this.#sweep(now);
    while (this.#buckets.size > this.#maxBuckets) this.#forget(this.#buckets.keys().next().value!);
    return decision;
  }

  #sweep(now: number): void {
    for (const [name, entry] of this.#buckets) {
      if (!isFull(entry, entry.rule, now)) return;
      this.#forget(name);
    }
  }

  #forget(name: string): void {
    if (this.#buckets.get(name) === this.#newest) this.#newest = undefined;
    this.#buckets.delete(name);
  }

  close(): Promise<void> {
    this.#buckets.clear();
    this.#newest = undefined;
    return Promise.resolve();
  }
}
