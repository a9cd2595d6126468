/**
 * A latency histogram that load generators in other processes can fill and send over IPC:
 * 0.05 ms buckets up to 5 s, exact values above. Millions of samples (a long soak) stay small.
 */
const BUCKET_MS = 0.05;
const BUCKETS = 100_000;

export interface HistogramData {
  counts: Array<[number, number]>;
  over: number[];
  count: number;
  sum: number;
  max: number;
}

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export class Histogram {
  readonly #counts = new Uint32Array(BUCKETS);
  readonly #over: number[] = [];
  count = 0;
  #sum = 0;
  #max = 0;

  record(ms: number): void {
    const v = Math.max(0, ms);
    this.count++;
    this.#sum += v;
    if (v > this.#max) this.#max = v;
    const bucket = Math.floor(v / BUCKET_MS);
    if (bucket < BUCKETS) this.#counts[bucket]!++;
    else this.#over.push(v);
  }

  toJSON(): HistogramData {
    const counts: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (this.#counts[i]! > 0) counts.push([i, this.#counts[i]!]);
    return { counts, over: this.#over, count: this.count, sum: this.#sum, max: this.#max };
  }

  static merge(parts: HistogramData[]): Histogram {
    const h = new Histogram();
    for (const p of parts) {
      for (const [i, n] of p.counts) h.#counts[i]! += n;
      h.#over.push(...p.over);
      h.count += p.count;
      h.#sum += p.sum;
      h.#max = Math.max(h.#max, p.max);
    }
    return h;
  }

  /** The value at quantile q (0..1), to the bucket's upper edge. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min((i + 1) * BUCKET_MS, this.#max);
    }
    const over = [...this.#over].sort((a, b) => a - b);
    return over[rank - seen - 1] ?? this.#max;
  }

  summary(): LatencySummary {
    return {
      count: this.count,
      meanMs: this.count ? this.#sum / this.count : NaN,
      p50Ms: this.quantile(0.5),
      p90Ms: this.quantile(0.9),
      p99Ms: this.quantile(0.99),
      maxMs: this.#max,
    };
  }
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
