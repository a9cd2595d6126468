import type client from 'prom-client';
import { LabelledSeries, type Labels } from './labelled-series.js';

interface Series<T extends string> {
  labels: Labels<T>;
  /** Observations per bucket, not cumulative: index i counts values in (bound i-1, bound i]; the last, those above every bound. */
  buckets: number[];
  sum: number;
  count: number;
}

/** One exported value, as prom-client's Histogram.get() gives them. */
export interface HistogramValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/**
 * A histogram for the ingest path, exported exactly as prom-client's Histogram exports one (the
 * same series, values and order), with observations that cost a few Map lookups: prom-client's
 * observe() checks and hashes its labels object at every call, and the ingest path makes two
 * observations per payload. It is registered as a metric of its own, read when the registry is.
 */
export class SummedHistogram<T extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #series: LabelledSeries<T, Series<T>>;

  constructor(config: { name: string; help: string; labelNames?: readonly T[]; buckets: readonly number[]; registers: client.Registry[] }) {
    const bounds = config.buckets;
    if (bounds.length === 0 || bounds.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= bounds[i - 1]!))) {
      throw new RangeError('histogram buckets must be finite and strictly increasing');
    }
    this.name = config.name;
    this.help = config.help;
    this.#bounds = [...bounds];
    this.#series = new LabelledSeries(config.labelNames ?? [], (labels) => ({ labels, buckets: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 }));
    for (const registry of config.registers) registry.registerMetric(this as unknown as client.Metric<T>);
  }

  observe(labels: Labels<T>, value: number): void {
    // As prom-client: only a number can be observed.
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const series = this.#series.get(labels);
    const bounds = this.#bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    series.buckets[bucket]!++;
    series.sum += value;
    series.count++;
  }

  /** The histogram's values as prom-client's Histogram.get() gives them: per series its cumulative buckets, `+Inf`, sum and count. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] }> {
    const bucketName = `${this.name}_bucket`;
    const values: HistogramValue[] = [];
    for (const series of this.#series.all()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += series.buckets[i]!;
        values.push({ labels: { le: bound, ...series.labels }, value: cumulative, metricName: bucketName });
      });
      values.push(
        { labels: { le: '+Inf', ...series.labels }, value: series.count, metricName: bucketName },
        { labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` },
        { labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.#series.clear();
  }
}
