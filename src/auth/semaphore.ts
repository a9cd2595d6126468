/**
 * At most `limit` holders at once and at most `maxWaiting` waiting; past that, tryAcquire says no
 * at once instead of queueing without bound.
 */
export class Semaphore {
  readonly #limit: number;
  readonly #maxWaiting: number;
  readonly #waiting: Array<() => void> = [];
  #held = 0;

  constructor(limit: number, maxWaiting: number) {
    this.#limit = limit;
    this.#maxWaiting = maxWaiting;
  }

  /** Resolves to a release function, or to null when the wait queue is full. */
  async tryAcquire(): Promise<(() => void) | null> {
    if (this.#held >= this.#limit) {
      if (this.#waiting.length >= this.#maxWaiting) return null;
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#held++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter, so #held stays the same.
      if (next) next();
      else this.#held--;
    };
  }
}
