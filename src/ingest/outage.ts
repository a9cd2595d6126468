import type { Logger } from '../log.js';

/**
 * Whether the ingest path treats PostgreSQL as unreachable. While it does, accept() writes to the
 * spool at once instead of waiting for a connection that is not coming (up to the pool's connect
 * timeout per payload). It begins on a transient database error and ends only when the
 * SpoolReplayer has found the database reachable and the spool empty, so payloads reach the
 * database in the order they arrived.
 */
export class DatabaseOutage {
  readonly #logger: Logger;
  readonly #listeners = new Set<() => void>();
  #since: number | null = null;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  get active(): boolean {
    return this.#since !== null;
  }

  begin(reason: string): void {
    if (this.#since !== null) return;
    this.#since = Date.now();
    this.#logger.error({ error: reason }, 'database unreachable: acknowledged payloads go to the local spool until it is back');
    for (const listener of this.#listeners) listener();
  }

  end(): void {
    if (this.#since === null) return;
    this.#logger.warn({ outageMs: Date.now() - this.#since }, 'database reachable again and the spool is replayed: payloads go straight to the database');
    this.#since = null;
    for (const listener of this.#listeners) listener();
  }

  /** Called on every change; returns a function that unsubscribes. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
