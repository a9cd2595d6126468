import { BenchChild, wallClockMs } from './child.js';
import { Histogram, type HistogramData, type LatencySummary } from './latency.js';
import type { LoadResult } from './mqtt-load-child.js';

export interface MqttLoadResult {
  clients: number;
  seconds: number;
  acked: number;
  messagesPerSecond: number;
  errors: number;
  firstError: string | null;
  latency: LatencySummary;
  /** Every acknowledgement's latency, so that runs can be combined (combinedRuns). */
  histogram: HistogramData;
}

/** Several runs of the same load as one: their acknowledgements over their summed durations. */
export function combinedRuns(runs: readonly MqttLoadResult[]): MqttLoadResult {
  return loadResult(
    runs[0]!.clients,
    runs.reduce((n, r) => n + r.seconds, 0),
    runs.map((r) => r.histogram),
    runs,
  );
}

/** A load's figures from its latencies (one histogram per part) and its parts' errors. */
function loadResult(clients: number, seconds: number, histograms: HistogramData[], parts: ReadonlyArray<{ errors: number; firstError: string | null }>): MqttLoadResult {
  const histogram = Histogram.merge(histograms);
  return {
    clients,
    seconds,
    acked: histogram.count,
    messagesPerSecond: histogram.count / seconds,
    errors: parts.reduce((n, p) => n + p.errors, 0),
    firstError: parts.map((p) => p.firstError).find((e) => e !== null) ?? null,
    latency: histogram.summary(),
    histogram: histogram.toJSON(),
  };
}

let rounds = 0;

/**
 * `clients` MQTT connections over WebSocket split over two generator processes (so the generator
 * does not starve on one core), all starting together and publishing for `seconds`.
 */
export class MqttLoad {
  readonly #children: BenchChild[];
  readonly #clients: number;

  private constructor(children: BenchChild[], clients: number) {
    this.#children = children;
    this.#clients = clients;
  }

  static async open(url: string, key: string, clients: number, tag: string): Promise<MqttLoad> {
    const children = [0, 1].map((i) => BenchChild.start('mqtt-load-child.js', `mqtt load generator ${i + 1}`));
    const load = new MqttLoad(children, clients);
    try {
      const counts = children.map((_, i) => Math.floor(clients / 2) + (i < clients % 2 ? 1 : 0));
      await Promise.all(children.map((c, i) => c.request({ type: 'connect', url, key, clients: counts[i], tag: `${tag}-g${i}` })));
    } catch (err) {
      await load.close();
      throw err;
    }
    return load;
  }

  get pids(): number[] {
    return this.#children.map((c) => c.pid);
  }

  /**
   * Publishes for `rampSeconds` unmeasured (from the clients' common start, all at once, to a
   * steady state), then for `seconds` measured.
   */
  async run(seconds: number, rampSeconds = 0): Promise<MqttLoadResult> {
    const round = ++rounds;
    // A common start a little ahead, so both processes begin together.
    const startAt = wallClockMs() + 200;
    const measureFrom = startAt + rampSeconds * 1000;
    const parts = await Promise.all(this.#children.map((c) => c.request<LoadResult>({ type: 'run', startAt, measureFrom, durationMs: seconds * 1000, round })));
    const elapsed = (Math.max(...parts.map((p) => p.lastAckAt)) - measureFrom) / 1000;
    return loadResult(this.#clients, elapsed, parts.map((p) => p.histogram), parts);
  }

  async close(): Promise<void> {
    await Promise.all(this.#children.map((c) => c.request({ type: 'close' }).catch(() => undefined)));
    await Promise.all(this.#children.map((c) => c.stop()));
  }
}
