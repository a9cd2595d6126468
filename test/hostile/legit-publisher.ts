import { connect as netConnect } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { readFixture } from '../helpers/fixtures.js';

/**
 * The user the attacks must not hurt: an mqtt.js client on 127.0.0.1 that publishes a small
 * payload at QoS 1 every ~100 ms and records what it got a PUBACK for, and anything that went
 * wrong (an error, a lost connection, a publish that was not acknowledged).
 */

type Json = Record<string, unknown>;

interface FixturePoint {
  metric: string;
  units: string;
  point: Json;
}

/** The first heart-rate and step-count points of the composed fixture hae-small.json. */
function fixturePoints(): FixturePoint[] {
  const fixture = JSON.parse(readFixture('composed/hae-small.json').toString('utf8')) as { data: { metrics: Array<{ name: string; units: string; data: Json[] }> } };
  return ['heart_rate', 'step_count'].map((name) => {
    const metric = fixture.data.metrics.find((m) => m.name === name)!;
    return { metric: name, units: metric.units, point: metric.data[0]! };
  });
}

/** Minute `index` of 2025-03-12 and after, written as the app does (+0100). */
export function legitDate(index: number): { text: string; iso: string } {
  const epochMs = Date.UTC(2025, 2, 11, 23, 0, 0) + index * 60_000;
  const local = new Date(epochMs + 3_600_000);
  const pad = (n: number): string => String(n).padStart(2, '0');
  const text = `${local.getUTCFullYear()}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())} ${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:00 +0100`;
  return { text, iso: new Date(epochMs).toISOString() };
}

/** Payload number `index`: each gives one heart_rate_samples row and one quantity_samples row. */
export function legitPayload(index: number): Buffer {
  const { text } = legitDate(index);
  const metrics = fixturePoints().map(({ metric, units, point }) => ({ name: metric, units, data: [{ ...point, date: text }] }));
  return Buffer.from(JSON.stringify({ data: { metrics } }));
}

export interface Acked {
  index: number;
  payload: Buffer;
  ackedAt: number;
}

export class LegitPublisher {
  readonly acked: Acked[] = [];
  readonly problems: string[] = [];
  #client: MqttClient | null = null;
  #timer: NodeJS.Timeout | null = null;
  #next = 0;
  #pending = new Set<Promise<void>>();
  #stopping = false;

  constructor(
    private readonly options: { tcpPort: number; key: string; topic: string; intervalMs?: number; firstIndex?: number },
  ) {
    this.#next = options.firstIndex ?? 0;
  }

  async start(): Promise<void> {
    const client = new mqtt.MqttClient(() => netConnect({ host: '127.0.0.1', port: this.options.tcpPort, localAddress: '127.0.0.1' }), {
      protocolVersion: 4,
      clientId: 'legitimate-phone',
      username: 'phone',
      password: this.options.key,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    client.on('error', (err) => this.problems.push(`client error: ${err.message}`));
    client.on('close', () => {
      if (!this.#stopping) this.problems.push('connection closed by the daemon');
    });
    this.#client = client;
    this.#timer = setInterval(() => this.#publishNext(), this.options.intervalMs ?? 100);
  }

  /** PUBACKs received so far. */
  get ackCount(): number {
    return this.acked.length;
  }

  #publishNext(): void {
    const client = this.#client;
    if (!client || !client.connected) return;
    const index = this.#next++;
    const payload = legitPayload(index);
    const started = Date.now();
    const work = client.publishAsync(this.options.topic, payload, { qos: 1 }).then(
      () => {
        this.acked.push({ index, payload, ackedAt: Date.now() });
        // Logged, not failed at once: a loaded CI machine can be slow; the end checks decide.
        if (Date.now() - started > 5_000) this.problems.push(`PUBACK for payload ${index} took ${Date.now() - started} ms`);
      },
      (err: Error) => {
        if (!this.#stopping) this.problems.push(`publish ${index} failed: ${err.message}`);
      },
    );
    const tracked = work.finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  /** Stops publishing, waits for the PUBACKs still due, and disconnects. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    if (this.#timer) clearInterval(this.#timer);
    await Promise.all(this.#pending);
    this.#stopping = true;
    await this.#client?.endAsync();
  }
}
