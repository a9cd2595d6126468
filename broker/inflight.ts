/**
 * Counts the sink writes whose PUBACK is still held back, so shutdown can let them finish (and
 * their acknowledgements leave) before connections are closed.
 *
 * A count, not a set of promises: every publish passes here, and a promise reaction per publish
 * (`finally`) to drop it from a set costs more than the publish's own bookkeeping.
 */
export class InflightTracker {
  #pending = 0;
  #idleWaiters: Array<() => void> = [];

  get size(): number {
    return this.#pending;
  }

  /** Counts one write in; the function returned counts it out (once, however often it is called). */
  begin(): () => void {
    this.#pending++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.#pending === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
    };
  }

  /** Resolves true once nothing is pending, or false when `timeoutMs` passes first. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.#pending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#idleWaiters = this.#idleWaiters.filter((w) => w !== idle);
        resolve(false);
      }, timeoutMs);
      const idle = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#idleWaiters.push(idle);
    });
  }
}
