import client from 'prom-client';
import { LabelledSeries, type Labels } from './labelled-series.js';

interface Sum<T extends string> {
  labels: Labels<T>;
  value: number;
}

/**
 * A labelled counter for the ingest path, which thousands of payloads a second pass.
 *
 * An increment finds its running sum through LabelledSeries and adds to it. The sums are handed
 * to prom-client's counter whenever the registry is read (its collect()), so a scrape shows
 * every increment made before it.
 */
export class SummedCounter<T extends string> {
  readonly #counter: client.Counter<T>;
  readonly #sums: LabelledSeries<T, Sum<T>>;

  constructor(config: { name: string; help: string; labelNames: readonly T[]; registers: client.Registry[] }) {
    if (config.labelNames.length === 0) throw new RangeError('a summed counter needs at least one label');
    const sums = (this.#sums = new LabelledSeries(config.labelNames, (labels) => ({ labels, value: 0 })));
    this.#counter = new client.Counter<T>({
      ...config,
      collect() {
        for (const sum of sums.all()) {
          if (sum.value === 0) continue;
          this.inc(sum.labels, sum.value);
          sum.value = 0;
        }
      },
    });
  }

  inc(labels: Labels<T>, value = 1): void {
    // As prom-client: a counter only goes up, by a finite amount.
    if (!(value >= 0 && value < Infinity)) throw new RangeError(`a counter cannot be increased by ${value}`);
    this.#sums.get(labels).value += value;
  }

  /** The counter as prom-client reports it (increments so far included). */
  get(): Promise<client.MetricObjectWithValues<client.MetricValue<T>>> {
    return this.#counter.get();
  }
}
