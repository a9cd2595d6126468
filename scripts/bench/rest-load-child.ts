/**
 * Child process: an open-loop HTTP load generator. Requests are scheduled by the clock (request
 * i is due at start + i / rate) whatever the answers do, and each latency is measured from the
 * moment the request was due, so a slow server cannot hide its delay by slowing the generator
 * down (no coordinated omission).
 */
import http from 'node:http';
import { serveRequests, wallClockMs, type Request } from './child.js';
import { smallPayload } from './hae-payload.js';
import { Histogram, type HistogramData } from './latency.js';

const REQUEST_TIMEOUT_MS = 10_000;
const agent = new http.Agent({ keepAlive: true, maxSockets: 2048 });

export interface RestRunResult {
  rate: number;
  sent: number;
  statuses: Record<string, number>;
  /** Requests without a 2xx answer (errors, time-outs, other statuses). */
  failed: number;
  seconds: number;
  histogram: HistogramData;
  /** How late the generator sent requests (its own saturation), p99 and max in ms. */
  sendLagP99Ms: number;
  sendLagMaxMs: number;
}

function post(url: URL, key: string | null, body: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': body.length };
    if (key) headers.authorization = `Bearer ${key}`;
    const req = http.request(url, { method: 'POST', agent, headers, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
      res.on('error', () => resolve('response error'));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(err.message === 'timeout' ? 'timeout' : 'network error'));
    req.end(body);
  });
}

async function run(req: Request): Promise<RestRunResult> {
  const rate = req.rate as number;
  const url = new URL('/api/v1/ingest', req.url as string);
  const key = (req.key as string | null) ?? null;
  const tag = req.tag as string;
  const total = Math.max(1, Math.round((rate * (req.durationMs as number)) / 1000));
  const interval = 1000 / rate;
  const histogram = new Histogram();
  const lag = new Histogram();
  const statuses: Record<string, number> = {};
  const pending: Array<Promise<void>> = [];
  const startAt = wallClockMs() + 50;
  let lastDoneAt = startAt;

  const send = (i: number) => {
    const due = startAt + i * interval;
    lag.record(wallClockMs() - due);
    const body = smallPayload(tag, i);
    pending.push(
      post(url, key, body).then((status) => {
        const now = wallClockMs();
        histogram.record(now - due);
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (now > lastDoneAt) lastDoneAt = now;
      }),
    );
  };

  let i = 0;
  while (i < total) {
    const now = wallClockMs();
    while (i < total && startAt + i * interval <= now) send(i++);
    if (i < total) await new Promise((r) => setTimeout(r, Math.max(0, startAt + i * interval - wallClockMs())));
  }
  await Promise.all(pending);
  const ok = Object.entries(statuses).reduce((a, [s, n]) => a + (/^2\d\d$/.test(s) ? n : 0), 0);
  return {
    rate,
    sent: total,
    statuses,
    failed: total - ok,
    seconds: (lastDoneAt - startAt) / 1000,
    histogram: histogram.toJSON(),
    sendLagP99Ms: lag.quantile(0.99),
    sendLagMaxMs: lag.summary().maxMs,
  };
}

serveRequests({ run });
