import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request from a chosen loopback address (127.x.y.z all reach this machine). */
function request(base: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: options.method ?? 'GET', headers: options.headers, localAddress: options.from ?? '127.0.0.1', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const payload = JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-04-01 12:00:00 +0200', qty: 1, source: 'Watch' }] }] } });
const corsHeaderNames = (headers: http.IncomingHttpHeaders) => Object.keys(headers).filter((h) => h.startsWith('access-control-'));

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase();
});
after(async () => db?.drop());

describe('rate limits, CORS off, timeouts', () => {
  let t: TestApp;
  let key: string;
  before(async () => {
    t = await startTestApp(
      {
        RATE_LIMIT_ADDRESS_PER_MINUTE: '60',
        RATE_LIMIT_ADDRESS_BURST: '5',
        RATE_LIMIT_KEY_PER_MINUTE: '60',
        RATE_LIMIT_KEY_BURST: '3',
        HTTP_HEADERS_TIMEOUT_MS: '600',
        HTTP_REQUEST_TIMEOUT_MS: '1500',
      },
      { database: db },
    );
    key = await t.createKey('limited');
  });
  after(async () => t?.close());

  test('probes are never limited and carry no rate-limit headers', async () => {
    for (let i = 0; i < 12; i++) {
      for (const path of ['/health', '/ready', '/metrics']) {
        const res = await request(t.httpUrl, path, { from: '127.0.0.9' });
        assert.equal(res.status, 200, path);
        assert.equal(res.headers['x-ratelimit-limit'], undefined);
      }
    }
  });

  test('per address, before authentication: anonymous requests get 401 until the burst is spent, then 429', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 7; i++) answers.push(await request(t.httpUrl, '/api/v1/ingest', { method: 'POST', body: payload, from: '127.0.0.2' }));
    assert.deepEqual(answers.map((a) => a.status), [401, 401, 401, 401, 401, 429, 429]);
    assert.deepEqual(answers.map((a) => a.headers['x-ratelimit-remaining']), ['4', '3', '2', '1', '0', '0', '0']);
    for (const a of answers) assert.equal(a.headers['x-ratelimit-limit'], '5');
    const refused = answers[5]!;
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.ok(Number(refused.headers['x-ratelimit-reset']) >= 1);
    assert.deepEqual(JSON.parse(refused.body), {
      error: { code: 'SS_RATE_LIMITED', message: `Too many requests for this address; retry in ${refused.headers['retry-after']} s`, scope: 'address', retryAfterSeconds: Number(refused.headers['retry-after']) },
    });
    // Unknown routes count too (scanners), and another address is not affected.
    assert.equal((await request(t.httpUrl, '/wp-login.php', { from: '127.0.0.2' })).status, 429);
    assert.equal((await request(t.httpUrl, '/api/v1/ingest', { method: 'POST', body: payload, from: '127.0.0.3' })).status, 401);
    // The WebSocket upgrade is counted per address as well.
    const upgrade = await rawExchange(t.httpUrl, '127.0.0.2', 'GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    assert.match(upgrade, /^HTTP\/1\.1 429 Too Many Requests\r\n/);
    assert.match(upgrade, /\r\nRetry-After: \d+\r\n/);
    assert.match(upgrade, /"code":"SS_RATE_LIMITED"/);
  });

  test('per key, after authentication: the key is limited whatever address it comes from', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 5; i++) {
      answers.push(await request(t.httpUrl, '/api/v1/ingest', { method: 'POST', body: payload, from: `127.0.1.${i + 1}`, headers: { 'x-api-key': key, 'content-type': 'application/json' } }));
    }
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 429, 429]);
    // The headers show the tighter budget: the key's (3), not the address's (5).
    assert.deepEqual(answers.map((a) => a.headers['x-ratelimit-limit']), ['3', '3', '3', '3', '3']);
    assert.deepEqual(answers.map((a) => a.headers['x-ratelimit-remaining']), ['2', '1', '0', '0', '0']);
    assert.equal((JSON.parse(answers[3]!.body) as { error: { scope: string } }).error.scope, 'key');
    const metrics = (await request(t.httpUrl, '/metrics')).body;
    assert.match(metrics, /self_sensored_rate_limited_total\{route="\/api\/v1\/ingest",scope="key"\} 2/);
    assert.match(metrics, /self_sensored_rate_limited_total\{route="\/api\/v1\/ingest",scope="address"\} 2/);
    assert.match(metrics, /self_sensored_rate_limited_total\{route="upgrade",scope="address"\} 1/);
    assert.ok(!metrics.includes(key) && !metrics.includes('127.0.0.2') && !metrics.includes('127.0.1.'), 'no key or address in metric labels');
  });

  test('CORS off: no Access-Control headers at all, a preflight is an ordinary 405', async () => {
    const preflight = await request(t.httpUrl, '/api/v1/ingest', {
      method: 'OPTIONS',
      from: '127.0.0.4',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    assert.equal(preflight.status, 405);
    assert.deepEqual(corsHeaderNames(preflight.headers), []);
    const plain = await request(t.httpUrl, '/health', { headers: { origin: 'https://evil.example' } });
    assert.deepEqual(corsHeaderNames(plain.headers), []);
    assert.equal(plain.headers.vary, undefined);
  });

  test('slowloris headers (one byte at a time) are cut at HTTP_HEADERS_TIMEOUT_MS', async () => {
    const started = Date.now();
    const socket = net.connect({ port: Number(new URL(t.httpUrl).port), host: '127.0.0.1', localAddress: '127.0.0.5' });
    const text = 'POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nX-Padding: ' + 'a'.repeat(200);
    let i = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed && i < text.length) socket.write(text[i++]!);
    }, 50);
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
    await new Promise<void>((resolve) => {
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });
    clearInterval(drip);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 550 && elapsed < 3_000, `cut after ${elapsed} ms`);
    assert.ok(i < text.length, 'the server did not wait for the whole trickle');
    assert.match(received, /^HTTP\/1\.1 408 /);
  });

  test('a body that never finishes is cut at HTTP_REQUEST_TIMEOUT_MS with 408', async () => {
    const slowKey = await t.createKey('slow'); // the other key's budget is spent by now
    const started = Date.now();
    const socket = net.connect({ port: Number(new URL(t.httpUrl).port), host: '127.0.0.1', localAddress: '127.0.0.6' });
    socket.write(`POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nX-API-Key: ${slowKey}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"data":`);
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(' ');
    }, 100);
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
    await new Promise<void>((resolve) => {
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });
    clearInterval(drip);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1_400 && elapsed < 4_000, `cut after ${elapsed} ms`);
    assert.match(received, /^HTTP\/1\.1 408 /);
    assert.match(received, /SS_REQUEST_TIMEOUT/);
  });
});

describe('CORS on, behind a trusted proxy', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp(
      { CORS_ORIGINS: 'https://dash.example.org, http://localhost:3000', TRUST_PROXY: '127.0.0.7', RATE_LIMIT_ADDRESS_PER_MINUTE: '60', RATE_LIMIT_ADDRESS_BURST: '2' },
      { database: db },
    );
  });
  after(async () => t?.close());

  test('a preflight from a listed origin gets only the route methods and the API headers', async () => {
    const res = await request(t.httpUrl, '/api/v1/ingest', {
      method: 'OPTIONS',
      headers: { origin: 'https://dash.example.org', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], 'https://dash.example.org');
    assert.equal(res.headers['access-control-allow-methods'], 'POST');
    assert.equal(res.headers['access-control-allow-headers'], 'Authorization, Content-Type, Content-Encoding, X-API-Key, api-key');
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
    assert.equal(res.headers.vary, 'Origin');
  });

  test('other origins, and methods the route does not take, get no CORS headers', async () => {
    const other = await request(t.httpUrl, '/api/v1/ingest', { method: 'OPTIONS', from: '127.0.2.1', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(other.status, 405);
    assert.deepEqual(corsHeaderNames(other.headers), []);
    const wrongMethod = await request(t.httpUrl, '/api/v1/ingest', { method: 'OPTIONS', from: '127.0.2.2', headers: { origin: 'https://dash.example.org', 'access-control-request-method': 'DELETE' } });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers['access-control-allow-methods'], undefined);
    const plainOther = await request(t.httpUrl, '/health', { from: '127.0.2.3', headers: { origin: 'https://evil.example' } });
    assert.equal(plainOther.headers['access-control-allow-origin'], undefined);
    assert.equal(plainOther.headers.vary, 'Origin');
    const plain = await request(t.httpUrl, '/health', { from: '127.0.2.4', headers: { origin: 'http://localhost:3000' } });
    assert.equal(plain.headers['access-control-allow-origin'], 'http://localhost:3000');
    assert.match(String(plain.headers['access-control-expose-headers']), /Retry-After, X-RateLimit-Limit/);
  });

  test('X-Forwarded-For is believed only from TRUST_PROXY', async () => {
    const post = (from: string, forwardedFor: string) => request(t.httpUrl, '/api/v1/ingest', { method: 'POST', body: payload, from, headers: { 'x-forwarded-for': forwardedFor } });
    // Through the trusted proxy each forwarded client has its own bucket of 2.
    assert.deepEqual([(await post('127.0.0.7', '203.0.113.1')).status, (await post('127.0.0.7', '203.0.113.1')).status, (await post('127.0.0.7', '203.0.113.1')).status], [401, 401, 429]);
    assert.equal((await post('127.0.0.7', '198.51.100.1, 203.0.113.2')).status, 401, 'the right-most untrusted hop is the client');
    // From anyone else the header is ignored: a client cannot pick a fresh bucket per request.
    const direct = [];
    for (let i = 0; i < 3; i++) direct.push((await post('127.0.0.8', `192.0.2.${i}`)).status);
    assert.deepEqual(direct, [401, 401, 429]);
  });

  test('config refuses * and non-origins in CORS_ORIGINS, and bad TRUST_PROXY entries', async () => {
    const { loadConfig } = await import('../src/config/load.js');
    assert.throws(() => loadConfig({ CORS_ORIGINS: '*' }), /CORS_ORIGINS cannot be \*/);
    assert.throws(() => loadConfig({ CORS_ORIGINS: 'https://a.example/path' }), /without a path/);
    assert.throws(() => loadConfig({ TRUST_PROXY: '10.0.0.0/33' }), /TRUST_PROXY entries must be/);
    assert.deepEqual(loadConfig({ TRUST_PROXY: '10.0.0.0/8, ::1' }).trustProxy, ['10.0.0.0/8', '::1']);
  });
});

/** Sends raw bytes from a chosen address; resolves with everything written until the socket closes. */
function rawExchange(base: string, from: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: Number(new URL(base).port), host: '127.0.0.1', localAddress: from }, () => socket.write(text));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (received += d));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
}
