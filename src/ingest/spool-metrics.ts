import client from 'prom-client';
import type { SpoolStats } from './spool.js';

/** The spool's metrics, registered on the daemon's registry. Sizes are sampled on scrape. */
export class SpoolMetrics {
  #source: (() => SpoolStats) | null = null;

  readonly bytes: client.Gauge;
  readonly records: client.Gauge;
  readonly oldestAge: client.Gauge;
  readonly spooled: client.Counter;
  readonly replayed: client.Counter;
  readonly refusedFull: client.Counter;

  constructor(registry: client.Registry) {
    const stats = () => this.#source?.() ?? { bytes: 0, records: 0, oldestAt: null };
    this.bytes = new client.Gauge({
      name: 'self_sensored_spool_bytes',
      help: 'Bytes of payloads in the local spool, waiting for the database',
      registers: [registry],
      collect: () => this.bytes.set(stats().bytes),
    });
    this.records = new client.Gauge({
      name: 'self_sensored_spool_records',
      help: 'Payloads in the local spool, waiting for the database',
      registers: [registry],
      collect: () => this.records.set(stats().records),
    });
    this.oldestAge = new client.Gauge({
      name: 'self_sensored_spool_oldest_record_age_seconds',
      help: 'Age of the oldest payload in the local spool (0 when empty)',
      registers: [registry],
      collect: () => {
        const oldest = stats().oldestAt;
        this.oldestAge.set(oldest === null ? 0 : Math.max(0, (Date.now() - oldest) / 1000));
      },
    });
    this.spooled = new client.Counter({
      name: 'self_sensored_spool_payloads_spooled_total',
      help: 'Payloads written to the local spool because the database was unreachable',
      registers: [registry],
    });
    this.replayed = new client.Counter({
      name: 'self_sensored_spool_payloads_replayed_total',
      help: 'Spooled payloads committed to the database by the replayer',
      registers: [registry],
    });
    this.refusedFull = new client.Counter({
      name: 'self_sensored_spool_refused_full_total',
      help: 'Payloads refused (no acknowledgement) because the database was unreachable and the spool was full',
      registers: [registry],
    });
  }

  observe(source: () => SpoolStats): void {
    this.#source = source;
  }
}
