import { setTimeout as delay } from 'node:timers/promises';

/**
 * Remembers the sink writes whose PUBACK is still held back, so shutdown can let them finish
 * (and their acknowledgements leave) before connections are closed.
 */
export class InflightTracker {
  private readonly pending = new Set<Promise<void>>();

  get size(): number {
    return this.pending.size;
  }

  /** `work` must never reject: the caller handles its own failures. */
  track(work: Promise<void>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  /** Resolves true once nothing is pending, or false when `timeoutMs` passes first. */
  async waitIdle(timeoutMs: number): Promise<boolean> {
    const abort = new AbortController();
    const timedOut = delay(timeoutMs, true, { signal: abort.signal }).catch(() => false);
    try {
      while (this.pending.size > 0) {
        const idle = Promise.allSettled([...this.pending]).then(() => false);
        if (await Promise.race([idle, timedOut])) return false;
      }
      return true;
    } finally {
      abort.abort();
    }
  }
}
