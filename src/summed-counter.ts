import client from 'prom-client';

type Labels<T extends string> = Record<T, string>;

interface Sum<T extends string> {
  labels: Labels<T>;
  value: number;
}

/** One Map per label, in label order; the last one holds the sums. */
type Level<T extends string> = Map<string, Level<T> | Sum<T>>;

/**
 * A labelled counter for the ingest path, which thousands of payloads a second pass.
 *
 * prom-client's inc() checks and hashes its labels object at every call, which costs several
 * times what the increment itself does. Here an increment finds its running sum through one Map
 * per label (label values are a few constant strings, whose hashes V8 keeps) and adds to it. The
 * sums are handed to prom-client's counter whenever the registry is read (its collect()), so a
 * scrape shows every increment made before it.
 */
export class SummedCounter<T extends string> {
  readonly #counter: client.Counter<T>;
  readonly #labelNames: readonly T[];
  readonly #root: Level<T> = new Map();
  /** Every sum of #root, for collect(). */
  readonly #sums: Array<Sum<T>> = [];

  constructor(config: { name: string; help: string; labelNames: readonly T[]; registers: client.Registry[] }) {
    if (config.labelNames.length === 0) throw new RangeError('a summed counter needs at least one label');
    this.#labelNames = config.labelNames;
    const sums = this.#sums;
    this.#counter = new client.Counter<T>({
      ...config,
      collect() {
        for (const sum of sums) {
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
    const names = this.#labelNames;
    const last = names.length - 1;
    let level = this.#root;
    for (let i = 0; i < last; i++) {
      const key = labels[names[i]!];
      let next = level.get(key) as Level<T> | undefined;
      if (!next) {
        next = new Map();
        level.set(key, next);
      }
      level = next;
    }
    const key = labels[names[last]!];
    const sum = level.get(key) as Sum<T> | undefined;
    if (sum) {
      sum.value += value;
      return;
    }
    // A copy: the caller's object may be reused or changed after the call.
    const kept = { labels: { ...labels }, value };
    level.set(key, kept);
    this.#sums.push(kept);
  }

  /** The counter as prom-client reports it (increments so far included). */
  get(): Promise<client.MetricObjectWithValues<client.MetricValue<T>>> {
    return this.#counter.get();
  }
}
