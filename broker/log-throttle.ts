import type { Logger } from '../src/log.js';

/**
 * Warn-level logging for events a peer can trigger at will (refused connections, refused
 * subscriptions): the first event of a kind is logged, then at most one line per interval that
 * says how many were left out, so a flood cannot flood the log. Keys must come from a small fixed
 * set (a reason), never from the peer (an address), or the map itself would grow without bound.
 */
export class LogThrottle {
  private readonly kinds = new Map<string, { loggedAt: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    const at = this.now();
    const seen = this.kinds.get(kind);
    if (seen && at - seen.loggedAt < this.intervalMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.kinds.set(kind, { loggedAt: at, suppressed: 0 });
    this.log.warn(suppressed > 0 ? { ...fields, suppressedSinceLastLine: suppressed } : fields, msg);
  }
}
