import { addressBucket, normalizeAddress } from '../network-address.js';

export interface ThrottlePolicy {
  /** Failures within the window answered without delay. */
  freeFailures: number;
  /** First delay once the free failures are used; doubles with each further failure. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Failures within the window after which the source is refused outright. */
  blockAfterFailures: number;
  blockMs: number;
  /** A source's failures are forgotten once it has had none for this long. */
  windowMs: number;
  /** Most sources remembered per table; the least recently failing ones are forgotten first. */
  maxEntries: number;
}

export type ThrottleScope = 'address' | 'key';

interface Entry {
  failures: number;
  lastFailureAt: number;
  blockedUntil: number;
}

export interface Refusal {
  scope: ThrottleScope;
  retryAfterMs: number;
}

/**
 * Counts failed authentication attempts per remote address and per key lookup value (the public
 * prefix), and turns them into a growing delay and then a temporary block. Everything is in
 * memory and bounded: entries expire with their window and each table holds at most maxEntries.
 */
export class AuthThrottle {
  readonly #policy: ThrottlePolicy;
  readonly #now: () => number;
  readonly #tables: Record<ThrottleScope, Map<string, Entry>> = { address: new Map(), key: new Map() };

  constructor(policy: ThrottlePolicy, now: () => number = Date.now) {
    this.#policy = policy;
    this.#now = now;
  }

  /** A block in force for this address or key, if any. */
  refusal(address: string, lookup?: string | null): Refusal | null {
    return this.#blocked('address', address) ?? (lookup ? this.#blocked('key', lookup) : null);
  }

  addressRefusal(address: string): Refusal | null {
    return this.#blocked('address', address);
  }

  keyRefusal(lookup: string): Refusal | null {
    return this.#blocked('key', lookup);
  }

  /** How long to hold the next attempt of this address / key before checking it. */
  delayMs(address: string, lookup?: string | null): number {
    const failures = Math.max(this.#failures('address', address), lookup ? this.#failures('key', lookup) : 0);
    const { freeFailures, baseDelayMs, maxDelayMs } = this.#policy;
    if (failures < freeFailures) return 0;
    return Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(30, failures - freeFailures));
  }

  /** Counts a failure; returns the scopes that became blocked by it. */
  recordFailure(address: string, lookup?: string | null): ThrottleScope[] {
    const blocked: ThrottleScope[] = [];
    if (this.#count('address', address)) blocked.push('address');
    if (lookup && this.#count('key', lookup)) blocked.push('key');
    return blocked;
  }

  /** Sources blocked right now, per scope (for the metrics gauge). */
  blockedCounts(): Record<ThrottleScope, number> {
    const now = this.#now();
    const count = (table: Map<string, Entry>) => [...table.values()].filter((e) => e.blockedUntil > now).length;
    return { address: count(this.#tables.address), key: count(this.#tables.key) };
  }

  /** Forgets expired entries; called periodically. */
  sweep(): void {
    const now = this.#now();
    for (const table of Object.values(this.#tables)) {
      for (const [id, entry] of table) if (this.#expired(entry, now)) table.delete(id);
    }
  }

  #expired(entry: Entry, now: number): boolean {
    return entry.blockedUntil <= now && now - entry.lastFailureAt >= this.#policy.windowMs;
  }

  #live(scope: ThrottleScope, id: string): Entry | undefined {
    const table = this.#tables[scope];
    const entry = table.get(id);
    if (entry && this.#expired(entry, this.#now())) {
      table.delete(id);
      return undefined;
    }
    return entry;
  }

  #blocked(scope: ThrottleScope, id: string): Refusal | null {
    const entry = this.#live(scope, id);
    const left = entry ? entry.blockedUntil - this.#now() : 0;
    return left > 0 ? { scope, retryAfterMs: left } : null;
  }

  #failures(scope: ThrottleScope, id: string): number {
    return this.#live(scope, id)?.failures ?? 0;
  }

  #count(scope: ThrottleScope, id: string): boolean {
    const table = this.#tables[scope];
    const now = this.#now();
    const entry = this.#live(scope, id) ?? { failures: 0, lastFailureAt: now, blockedUntil: 0 };
    entry.failures++;
    entry.lastFailureAt = now;
    // Re-inserted at the end: the Map's order is then least recently failing first.
    table.delete(id);
    table.set(id, entry);
    if (table.size > this.#policy.maxEntries) {
      this.sweep();
      for (const oldest of table.keys()) {
        if (table.size <= this.#policy.maxEntries) break;
        table.delete(oldest);
      }
    }
    if (entry.failures >= this.#policy.blockAfterFailures && entry.blockedUntil <= now) {
      entry.blockedUntil = now + this.#policy.blockMs;
      // A fresh window after the block: the next failure starts the delays again, not another block.
      entry.failures = this.#policy.freeFailures;
      return true;
    }
    return false;
  }
}

/** The throttling identity of a remote address: the same bucket the rate limits use. */
export function throttleAddress(remoteAddress: string | undefined): string {
  const address = normalizeAddress(remoteAddress);
  return address ? addressBucket(address) : 'unknown';
}
