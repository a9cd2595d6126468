export type Labels<T extends string> = Record<T, string>;

/** One Map per label, in label order; the last one holds the series. */
type Level<S> = Map<string, Level<S> | S>;

/**
 * The series of a labelled metric, found by its label values through one Map per label (label
 * values are a few constant strings, whose hashes V8 keeps). prom-client checks and hashes the
 * labels object at every update, which costs several times the update itself on the ingest path.
 */
export class LabelledSeries<T extends string, S extends { labels: Labels<T> }> {
  readonly #labelNames: readonly T[];
  readonly #create: (labels: Labels<T>) => S;
  #root: Level<S> = new Map();
  #all: S[] = [];
  /** The series of a metric without labels. */
  #only: S | undefined;

  /** `create` makes a new series for a copy of the labels (the caller's object may be reused or changed after the call). */
  constructor(labelNames: readonly T[], create: (labels: Labels<T>) => S) {
    this.#labelNames = labelNames;
    this.#create = create;
  }

  get(labels: Labels<T>): S {
    const names = this.#labelNames;
    if (names.length === 0) return (this.#only ??= this.#add({} as Labels<T>));
    const last = names.length - 1;
    let level = this.#root;
    for (let i = 0; i < last; i++) {
      const key = labels[names[i]!];
      let next = level.get(key) as Level<S> | undefined;
      if (!next) {
        next = new Map();
        level.set(key, next);
      }
      level = next;
    }
    const key = labels[names[last]!];
    const found = level.get(key) as S | undefined;
    if (found) return found;
    const series = this.#add({ ...labels });
    level.set(key, series);
    return series;
  }

  /** Every series, in the order they were first used. */
  all(): readonly S[] {
    return this.#all;
  }

  clear(): void {
    this.#root = new Map();
    this.#all = [];
    this.#only = undefined;
  }

  #add(labels: Labels<T>): S {
    const series = this.#create(labels);
    this.#all.push(series);
    return series;
  }
}
