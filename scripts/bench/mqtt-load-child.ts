/**
 * Child process: MQTT clients over WebSocket, each publishing a small payload at QoS 1 and
 * waiting for its PUBACK before the next (as fast as acknowledgements allow).
 */
import type { MqttClient } from 'mqtt';
import { serveRequests, wallClockMs, type Request } from './child.js';
import { smallPayload } from './hae-payload.js';
import { Histogram, type HistogramData } from './latency.js';
import { connectOnce, publishAcked } from './mqtt-client.js';
import { errorMessage } from '../../src/errors.js';

const CONNECT_CONCURRENCY = 20;
let clients: MqttClient[] = [];
let tag = '';

async function connect(req: Request): Promise<{ connected: number }> {
  const count = req.clients as number;
  tag = req.tag as string;
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      clients.push(await connectOnce(req.url as string, req.key as string, `${tag}-${i}`));
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, count) }, worker));
  return { connected: clients.length };
}

export interface LoadResult {
  acked: number;
  errors: number;
  firstError: string | null;
  lastAckAt: number;
  histogram: HistogramData;
}

async function run(req: Request): Promise<LoadResult> {
  const startAt = req.startAt as number;
  // Publishes before measureFrom (a ramp from the clients' common start to a steady state) are
  // neither counted nor timed.
  const measureFrom = (req.measureFrom as number | undefined) ?? startAt;
  const endAt = measureFrom + (req.durationMs as number);
  const histogram = new Histogram();
  let errors = 0;
  let firstError: string | null = null;
  let lastAckAt = measureFrom;
  const runTag = `${tag}-${req.round as number}`;
  await new Promise((r) => setTimeout(r, Math.max(0, startAt - wallClockMs())));
  await Promise.all(
    clients.map(async (client, i) => {
      for (let seq = 0; wallClockMs() < endAt; seq++) {
        const body = smallPayload(`${runTag}-${i}`, seq);
        const t = wallClockMs();
        try {
          await publishAcked(client, 'health/bench/small', body);
          if (t < measureFrom) continue;
          const now = wallClockMs();
          histogram.record(now - t);
          if (now > lastAckAt) lastAckAt = now;
        } catch (err) {
          errors++;
          firstError ??= errorMessage(err);
          if (!client.connected) return;
        }
      }
    }),
  );
  return { acked: histogram.count, errors, firstError, lastAckAt, histogram: histogram.toJSON() };
}

async function close(): Promise<boolean> {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  clients = [];
  return true;
}

serveRequests({ connect, run, close });
