import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { AcceptOutcome, AuthOutcome, Authenticator, IngestRequest, IngestSink, ProcessingResult } from '../broker/types.js';
import { AppError } from '../src/errors.js';
import { HttpServer, type ReadinessReport } from '../src/http/server.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';

const MIB = 1024 * 1024;
const GOOD_KEY = 'good-key';
const JSON_TYPE = 'application/json; charset=utf-8';

/** Accepts one key; 'db-down' simulates the key store being unreachable. */
class FakeAuthenticator implements Authenticator {
  async verify(key: string | undefined): Promise<AuthOutcome> {
    if (key === undefined) return { ok: false, reason: 'missing' };
    if (key === 'db-down') throw new Error('connect ECONNREFUSED');
    if (key !== GOOD_KEY) return { ok: false, reason: 'unknown_key' };
    return { ok: true, identity: { userId: '1', userName: 'me', keyId: '7', keyPrefix: 'ss_test', scopes: ['ingest'] } };
  }
}

type SinkMode = 'ok' | 'reject' | 'app-error' | 'processing-error' | 'processed-rejects' | 'spooled';

/** Records what it is given and answers like the real sink would, per mode. */
class FakeSink implements IngestSink {
  readonly requests: IngestRequest[] = [];
  mode: SinkMode = 'ok';
  /** When set, accept() waits for it: a slow database. */
  gate: Promise<void> | null = null;

  async accept(request: IngestRequest): Promise<AcceptOutcome> {
    this.requests.push(request);
    if (this.mode === 'reject') throw new Error('Connection terminated unexpectedly');
    if (this.mode === 'app-error') throw new AppError('SS_NOT_READY');
    const text = request.body.toString('utf8');
    try {
      JSON.parse(text);
    } catch (err) {
      const message = (err as Error).message;
      const match = /at position (\d+)/.exec(message);
      return { kind: 'invalid_json', message, position: match ? Number(match[1]) : null };
    }
    if (this.gate) await this.gate;
    if (this.mode === 'spooled') return { kind: 'spooled' };
    const ingestionId = String(this.requests.length);
    return { kind: 'stored', ingestionId, duplicatePayload: false, processed: this.#processed(ingestionId) };
  }

  #processed(ingestionId: string): Promise<ProcessingResult | { ingestionId: string; error: string }> {
    if (this.mode === 'processing-error') return Promise.resolve({ ingestionId, error: 'sample table missing' });
    if (this.mode === 'processed-rejects') return Promise.reject(new Error('contract broken'));
    return Promise.resolve({
      ingestionId,
      counts: {
        quantity: { received: 4, inserted: 2, updated: 1, unchanged: 1, rejected: 0 },
        workouts: { received: 1, inserted: 0, updated: 0, unchanged: 0, rejected: 1 },
      },
      rejections: [{ type: 'workouts', path: 'data.workouts[0]', reason: 'invalid_date', message: 'bad date' }],
      notStored: [],
    });
  }
}

interface Harness {
  server: HttpServer;
  base: string;
  sink: FakeSink;
  logs: string[];
  upgrades: string[];
  readiness: { ready: boolean };
}

async function startHarness(maxBodyBytes = MIB): Promise<Harness> {
  const logs: string[] = [];
  const upgrades: string[] = [];
  const readiness = { ready: true };
  const sink = new FakeSink();
  const server = new HttpServer({
    options: { host: '127.0.0.1', port: 0, maxBodyBytes, requestTimeoutMs: 10_000, wsPath: '/mqtt' },
    logger: createLogger('debug', { write: (line: string) => void logs.push(line) }),
    metrics: new Metrics(),
    authenticator: new FakeAuthenticator(),
    sink,
    readiness: async (): Promise<ReadinessReport> => ({ ready: readiness.ready, checks: { database: { ok: readiness.ready } } }),
    upgrade: (req, socket) => {
      upgrades.push(req.url ?? '');
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    },
    version: '9.9.9-test',
  });
  await server.start();
  return { server, base: `http://127.0.0.1:${server.address.port}`, sink, logs, upgrades, readiness };
}

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => {
  await h.server.stop();
  const all = h.logs.join('');
  assert.ok(!all.includes(GOOD_KEY), 'the API key must never be logged');
});

const payload = JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [] }] } });

function ingest(headers: Record<string, string>, body: string | Buffer = payload): Promise<Response> {
  return fetch(`${h.base}/api/v1/ingest`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

async function errorCode(res: Response): Promise<string> {
  assert.equal(res.headers.get('content-type'), JSON_TYPE);
  const body = (await res.json()) as { error: { code: string } };
  return body.error.code;
}

/** Sends raw bytes and resolves with everything the server writes until it closes the socket. */
function rawExchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (received += d));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
}

for (const [style, headers] of [
  ['Authorization: Bearer', { authorization: `Bearer ${GOOD_KEY}` }],
  ['Authorization: bearer (scheme case)', { Authorization: `bEaReR ${GOOD_KEY}` }],
  ['X-API-Key', { 'X-API-Key': GOOD_KEY }],
  ['api-key', { 'API-KEY': GOOD_KEY }],
] as const) {
  test(`credentials via ${style} are accepted`, async () => {
    const res = await ingest(headers);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), JSON_TYPE);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(typeof body['ingestionId'], 'string');
    assert.equal(body['duplicatePayload'], false);
    assert.deepEqual(body['stored'], { quantity: 3, workouts: 0 });
    assert.equal(body['duplicatesSkipped'], 1);
    assert.equal((body['rejected'] as unknown[]).length, 1);
    assert.deepEqual(body['notStored'], []);
    const last = h.sink.requests.at(-1)!;
    assert.equal(last.transport, 'http');
    assert.equal(last.topic, null);
    assert.equal(last.identity.userName, 'me');
    assert.equal(last.body.toString(), payload);
  });
}

test('missing credentials: 401 SS_AUTH_MISSING with WWW-Authenticate, sink not called', async () => {
  const before = h.sink.requests.length;
  const res = await ingest({});
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
  assert.equal(await errorCode(res), 'SS_AUTH_MISSING');
  assert.equal(h.sink.requests.length, before);
});

test('wrong key: 401 SS_AUTH_INVALID; a non-Bearer Authorization counts as missing', async () => {
  const wrong = await ingest({ 'x-api-key': 'bad-key' });
  assert.equal(wrong.status, 401);
  assert.equal(await errorCode(wrong), 'SS_AUTH_INVALID');
  const basic = await ingest({ authorization: 'Basic Z29vZC1rZXk6' });
  assert.equal(basic.status, 401);
  assert.equal(await errorCode(basic), 'SS_AUTH_MISSING');
});

test('authenticator down: 503 SS_DB_UNAVAILABLE with Retry-After', async () => {
  const res = await ingest({ 'x-api-key': 'db-down' });
  assert.equal(res.status, 503);
  assert.equal(res.headers.get('retry-after'), '5');
  assert.equal(await errorCode(res), 'SS_DB_UNAVAILABLE');
});

test('415 for text/plain, form-urlencoded and multipart; +json and a missing Content-Type are accepted', async () => {
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const res = await ingest({ 'x-api-key': GOOD_KEY, 'content-type': type });
    assert.equal(res.status, 415, type);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'SS_UNSUPPORTED_MEDIA_TYPE');
    assert.match(body.error.message, /Content-Type: application\/json/);
  }
  const vendor = await ingest({ 'x-api-key': GOOD_KEY, 'content-type': 'application/vnd.hae+json; charset=UTF-8' });
  assert.equal(vendor.status, 200);
  // fetch always adds a Content-Type for a string body, so omit it with node:http.
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request(`${h.base}/api/v1/ingest`, { method: 'POST', headers: { 'x-api-key': GOOD_KEY } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(payload);
  });
  assert.equal(status, 200);
});

test('unsupported Content-Encoding: 415 SS_UNSUPPORTED_ENCODING', async () => {
  const res = await ingest({ 'x-api-key': GOOD_KEY, 'content-encoding': 'br' });
  assert.equal(res.status, 415);
  assert.equal(await errorCode(res), 'SS_UNSUPPORTED_ENCODING');
});

test('Content-Length over the limit: 413 before any body is sent, sink not called', async () => {
  const before = h.sink.requests.length;
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${h.base}/api/v1/ingest`, {
      method: 'POST',
      headers: { 'x-api-key': GOOD_KEY, 'content-type': 'application/json', 'content-length': String(2 * MIB) },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.flushHeaders(); // headers only: the answer must come without the body
  });
  assert.equal(status, 413);
  assert.equal((JSON.parse(body) as { error: { code: string } }).error.code, 'SS_BODY_TOO_LARGE');
  assert.equal(h.sink.requests.length, before);
});

test('a chunked body growing past the limit: 413 as soon as it crosses', async () => {
  const before = h.sink.requests.length;
  // A raw socket, not http.request: the server closes while the client is still writing, and an
  // HTTP client whose write fails first (EPIPE, ECONNRESET) may drop the 413 it had received.
  const socket = net.connect(Number(new URL(h.base).port), '127.0.0.1');
  socket.on('error', () => undefined); // the close can reach a write before the socket sees the answer
  const received: Buffer[] = [];
  socket.on('data', (data: Buffer) => received.push(data));
  // Not events.once: it would reject on that write error.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await once(socket, 'connect');
  socket.write(`POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ${GOOD_KEY}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`);
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  const framed = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
  let sent = 0;
  while (received.length === 0 && sent < 8 * MIB && !socket.destroyed) {
    await new Promise<void>((resolve) => socket.write(framed, () => resolve()));
    sent += chunk.length;
  }
  // The answer says Connection: close, so the server ends the connection itself.
  await closed;
  const head = Buffer.concat(received).toString('latin1').split('\r\n\r\n', 1)[0]!;
  assert.match(head, /^HTTP\/1\.1 413 /);
  assert.match(head, /\r\nconnection: close(\r\n|$)/i);
  assert.ok(sent < 4 * MIB, `the server should stop reading soon after 1 MiB (sent ${sent})`);
  assert.equal(h.sink.requests.length, before);
});

test('gzip body: the sink sees the decompressed bytes', async () => {
  const res = await ingest({ 'x-api-key': GOOD_KEY, 'content-encoding': 'gzip' }, gzipSync(payload));
  assert.equal(res.status, 200);
  assert.equal(h.sink.requests.at(-1)!.body.toString(), payload);
  const xgzip = await ingest({ 'x-api-key': GOOD_KEY, 'content-encoding': 'x-gzip' }, gzipSync(payload));
  assert.equal(xgzip.status, 200);
});

test('gzip bomb: 413 quickly and the server stays responsive', async () => {
  const bomb = gzipSync(Buffer.alloc(50 * MIB));
  assert.ok(bomb.length < 100 * 1024);
  const started = performance.now();
  const res = await ingest({ 'x-api-key': GOOD_KEY, 'content-encoding': 'gzip' }, bomb);
  const elapsed = performance.now() - started;
  assert.equal(res.status, 413);
  assert.equal(await errorCode(res), 'SS_BODY_TOO_LARGE');
  assert.ok(elapsed < 2000, `took ${elapsed} ms`);
  const health = await fetch(`${h.base}/health`);
  assert.equal(health.status, 200);
});

test('corrupt gzip: 400 SS_BAD_GZIP; truncated gzip too', async () => {
  const corrupt = await ingest({ 'x-api-key': GOOD_KEY, 'content-encoding': 'gzip' }, Buffer.from('definitely not gzip'));
  assert.equal(corrupt.status, 400);
  assert.equal(await errorCode(corrupt), 'SS_BAD_GZIP');
  const whole = gzipSync(payload);
  const truncated = await ingest({ 'x-api-key': GOOD_KEY, 'content-encoding': 'gzip' }, whole.subarray(0, whole.length - 10));
  assert.equal(truncated.status, 400);
  assert.equal(await errorCode(truncated), 'SS_BAD_GZIP');
});

test('invalid JSON: 400 with position, line and column', async () => {
  const res = await ingest({ 'x-api-key': GOOD_KEY }, '{"a": 1,\n  b: 2}');
  assert.equal(res.status, 400);
  const body = (await res.json()) as { error: Record<string, unknown> };
  assert.equal(body.error['code'], 'SS_INVALID_JSON');
  assert.equal(body.error['position'], 11);
  assert.equal(body.error['line'], 2);
  assert.equal(body.error['column'], 3);
});

test('accept() rejects: 503 SS_DB_UNAVAILABLE + Retry-After; an AppError keeps its own code', async (t) => {
  t.after(() => (h.sink.mode = 'ok'));
  h.sink.mode = 'reject';
  const res = await ingest({ 'x-api-key': GOOD_KEY });
  assert.equal(res.status, 503);
  assert.equal(res.headers.get('retry-after'), '5');
  assert.equal(await errorCode(res), 'SS_DB_UNAVAILABLE');
  h.sink.mode = 'app-error';
  const app = await ingest({ 'x-api-key': GOOD_KEY });
  assert.equal(app.status, 503);
  assert.equal(await errorCode(app), 'SS_NOT_READY');
});

test('processing failed after storing: 202 stored_not_processed', async (t) => {
  t.after(() => (h.sink.mode = 'ok'));
  h.sink.mode = 'processing-error';
  const res = await ingest({ 'x-api-key': GOOD_KEY });
  assert.equal(res.status, 202);
  const body = (await res.json()) as Record<string, unknown>;
  assert.equal(body['status'], 'stored_not_processed');
  assert.equal(body['error'], 'sample table missing');
  assert.equal(typeof body['ingestionId'], 'string');
});

test('spooled while the database is unreachable: 202 { status: "spooled" }', async (t) => {
  t.after(() => (h.sink.mode = 'ok'));
  h.sink.mode = 'spooled';
  const res = await ingest({ 'x-api-key': GOOD_KEY });
  assert.equal(res.status, 202);
  assert.deepEqual(await res.json(), { status: 'spooled' });
});

test('an unexpected exception: 500 SS_INTERNAL and the server keeps serving', async (t) => {
  t.after(() => (h.sink.mode = 'ok'));
  h.sink.mode = 'processed-rejects';
  const res = await ingest({ 'x-api-key': GOOD_KEY });
  assert.equal(res.status, 500);
  assert.equal(await errorCode(res), 'SS_INTERNAL');
  assert.ok(h.logs.some((l) => l.includes('contract broken') && l.includes('"stack"')), 'logged with the stack');
  assert.equal((await fetch(`${h.base}/health`)).status, 200);
});

test('404 for unknown paths, 405 with Allow for wrong methods', async () => {
  const missing = await fetch(`${h.base}/nope?x=1`);
  assert.equal(missing.status, 404);
  assert.equal(await errorCode(missing), 'SS_NOT_FOUND');
  const get = await fetch(`${h.base}/api/v1/ingest`);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  assert.equal(await errorCode(get), 'SS_METHOD_NOT_ALLOWED');
  const post = await fetch(`${h.base}/health`, { method: 'POST', body: '{}' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  await post.body?.cancel();
});

test('/health answers GET and HEAD without checking dependencies', async (t) => {
  t.after(() => (h.readiness.ready = true));
  h.readiness.ready = false;
  const res = await fetch(`${h.base}/health`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), JSON_TYPE);
  const body = (await res.json()) as Record<string, unknown>;
  assert.equal(body['status'], 'ok');
  assert.equal(body['version'], '9.9.9-test');
  assert.equal(typeof body['uptimeSeconds'], 'number');
  const head = await fetch(`${h.base}/health`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
});

test('/ready: 200 when ready, 503 with the report when not', async (t) => {
  t.after(() => (h.readiness.ready = true));
  const ok = await fetch(`${h.base}/ready`);
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { ready: true, checks: { database: { ok: true } } });
  h.readiness.ready = false;
  const down = await fetch(`${h.base}/ready`);
  assert.equal(down.status, 503);
  assert.deepEqual(await down.json(), { ready: false, checks: { database: { ok: false } } });
});

test('/metrics exposes the request counter with fixed route labels', async () => {
  await fetch(`${h.base}/some/random/path/${Date.now()}`).then((r) => r.body?.cancel());
  const res = await fetch(`${h.base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  assert.match(text, /self_sensored_http_requests_total\{route="\/api\/v1\/ingest",status="200"\} \d+/);
  assert.match(text, /self_sensored_http_requests_total\{route="other",status="404"\}/);
  assert.match(text, /self_sensored_http_request_duration_seconds_bucket/);
  assert.doesNotMatch(text, /some\/random/);
});

test('ingest requests are logged once, with user and counts, never with the key', async () => {
  const res = await ingest({ authorization: `Bearer ${GOOD_KEY}` });
  const { ingestionId } = (await res.json()) as { ingestionId: string };
  const lines = h.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['ingestionId'] === ingestionId);
  assert.equal(lines.length, 1);
  const line = lines[0]!;
  assert.equal(line['level'], 'info');
  assert.equal(line['user'], 'me');
  assert.equal(line['status'], 200);
  assert.equal(line['bytes'], Buffer.byteLength(payload));
  assert.deepEqual(line['counts'], { received: 5, inserted: 2, updated: 1, unchanged: 1, rejected: 1 });
});

test('upgrade on the MQTT path goes to the upgrade callback; other paths get 404', async () => {
  const port = h.server.address.port;
  const upgradeHeaders = 'Host: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
  const ok = await rawExchange(port, `GET /mqtt?client=1 HTTP/1.1\r\n${upgradeHeaders}`);
  assert.match(ok, /^HTTP\/1\.1 101 /);
  assert.deepEqual(h.upgrades, ['/mqtt?client=1']);
  const other = await rawExchange(port, `GET /elsewhere HTTP/1.1\r\n${upgradeHeaders}`);
  assert.match(other, /^HTTP\/1\.1 404 Not Found/);
  assert.equal(h.upgrades.length, 1);
});

test('stopAccepting: new connections fail, an in-flight slow request completes, late requests get 503', async (t) => {
  const own = await startHarness();
  t.after(() => own.server.stop());
  let release!: () => void;
  own.sink.gate = new Promise<void>((resolve) => (release = resolve));
  const port = own.server.address.port;

  const slow = fetch(`${own.base}/api/v1/ingest`, { method: 'POST', headers: { 'x-api-key': GOOD_KEY, 'content-type': 'application/json' }, body: payload });
  // A second connection that has begun a request (partial headers) is not idle, so it survives close.
  const late = net.connect(port, '127.0.0.1');
  await once(late, 'connect');
  late.write('GET /health HTTP/1.1\r\nHost: x\r\n');
  while (own.sink.requests.length === 0) await new Promise((r) => setTimeout(r, 5));

  await own.server.stopAccepting();
  const refused = new Promise<string>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => resolve('connected'));
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  assert.equal(await refused, 'ECONNREFUSED');

  let lateAnswer = '';
  late.setEncoding('utf8');
  late.on('data', (d: string) => (lateAnswer += d));
  late.write('\r\n');
  await once(late, 'close');
  assert.match(lateAnswer, /^HTTP\/1\.1 503 /);
  assert.match(lateAnswer, /SS_SHUTTING_DOWN/);
  assert.match(lateAnswer, /Connection: close/i);

  const stopped = own.server.stop();
  release();
  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('connection'), 'close');
  await res.json();
  await stopped;
  await own.server.stop(); // idempotent
});

test('a client that hangs up while its payload is stored: logged as a warning that names the stored payload, not as a failure', async (t) => {
  const own = await startHarness();
  t.after(() => own.server.stop());
  let release!: () => void;
  own.sink.gate = new Promise<void>((resolve) => (release = resolve));
  const socket = net.connect(own.server.address.port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(`POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nX-API-Key: ${GOOD_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`);
  // The body is read and in the sink (held at its gate, as by a slow database): the client gives up.
  while (own.sink.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
  socket.destroy();
  await new Promise((r) => setTimeout(r, 50));
  release();
  const line = (): Record<string, unknown> | undefined =>
    own.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => typeof l.msg === 'string' && l.msg.startsWith('client closed the connection'));
  const deadline = Date.now() + 5_000;
  while (!line() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const logged = line();
  assert.ok(logged, `a line for the request: ${own.logs.join('')}`);
  assert.equal(logged.msg, 'client closed the connection before the answer; the payload is stored');
  assert.equal(logged.level, 'warn');
  assert.equal(logged.ingestionId, '1');
  assert.equal(logged.status, null);
  assert.ok(!own.logs.some((l) => l.includes('ingest request failed')), 'not logged as a failure');
});
