/**
 * Child process that holds one large payload and sends it, so that building an 80–100 MB string
 * and pushing it through a socket never stalls the bench's own timers and RSS sampling.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { serveRequests, wallClockMs, type Request } from './child.js';
import { bulkPayloadJson, type BulkSpec } from './hae-payload.js';
import { connectOnce, publishAcked } from './mqtt-client.js';

let payload: Buffer | null = null;

function build(req: Request): { bytes: number; sha256: string; buildSeconds: number } {
  const started = performance.now();
  const spec = req.spec as BulkSpec;
  payload = null;
  payload = Buffer.from(bulkPayloadJson(spec));
  return { bytes: payload.length, sha256: createHash('sha256').update(payload).digest('hex'), buildSeconds: (performance.now() - started) / 1000 };
}

/** Samples per byte of a small payload of the same mix: used to size a payload to a byte count. */
function bytesPerSample(req: Request): number {
  const spec = { ...(req.spec as BulkSpec), samples: 10_000 };
  return Buffer.byteLength(bulkPayloadJson(spec)) / spec.samples;
}

async function publishMqtt(req: Request): Promise<{ t0: number; tAck: number }> {
  if (!payload) throw new Error('no payload built');
  const client = await connectOnce(req.url as string, req.key as string);
  try {
    const t0 = wallClockMs();
    await publishAcked(client, req.topic as string, payload);
    return { t0, tAck: wallClockMs() };
  } finally {
    await client.endAsync();
  }
}

function postRest(req: Request): Promise<{ t0: number; tAnswer: number; status: number }> {
  if (!payload) throw new Error('no payload built');
  const body = payload;
  const url = new URL('/api/v1/ingest', req.url as string);
  return new Promise((resolve, reject) => {
    const t0 = wallClockMs();
    const r = http.request(
      url,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${req.key as string}`, 'content-type': 'application/json', 'content-length': body.length },
        timeout: 600_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ t0, tAnswer: wallClockMs(), status: res.statusCode ?? 0 }));
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

serveRequests({
  build,
  bytesPerSample,
  mqtt: publishMqtt,
  rest: postRest,
  drop: () => {
    payload = null;
    return true;
  },
});
