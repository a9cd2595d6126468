import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { startTestApp, waitFor, type TestApp } from './helpers/app.js';

const redisPassword = 'redis-pw-Zq81xv';
const logs: string[] = [];
let t: TestApp;
let key: string;
let wrongKey: string;

before(async () => {
  t = await startTestApp(
    // Nothing listens on port 1: the limiter logs that Redis is away, with the URL it uses.
    { LOG_LEVEL: 'trace', REDIS_URL: `redis://default:${redisPassword}@127.0.0.1:1/0`, CORS_ORIGINS: 'https://dash.example.org' },
    { logLines: logs },
  );
  key = await t.createKey('secretive');
  // Same shape and prefix as a real key, wrong secret.
  wrongKey = `${key.slice(0, -6)}${key.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA'}`;
});
after(async () => t?.close());

const payload = JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-04-01 12:00:00 +0200', qty: 1, source: 'Watch' }] }] } });

function post(headers: Record<string, string>, body: string, path = '/api/v1/ingest'): Promise<{ status: number; text: string }> {
  return fetch(`${t.httpUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body }).then(async (res) => ({ status: res.status, text: await res.text() }));
}

test('a key presented in every place never reaches the logs, the answers or /metrics', async () => {
  const answers: string[] = [];
  const expectStatus = async (promise: Promise<{ status: number; text: string }>, status: number) => {
    const answer = await promise;
    assert.equal(answer.status, status, answer.text);
    answers.push(answer.text);
  };
  await expectStatus(post({ authorization: `Bearer ${key}`, cookie: `session=${key}` }, payload), 200);
  await expectStatus(post({ 'x-api-key': key, origin: 'https://dash.example.org' }, JSON.stringify({ key, data: {} })), 200);
  // Invalid JSON: V8's message quotes the text around the error, here the end of the key.
  await expectStatus(post({ 'api-key': key }, `["${key}",}`), 400);
  await expectStatus(post({ 'api-key': key }, `{"key":"${key}", "data": [${'['.repeat(100)}]}`), 400);
  const wrongHeaders: Array<Record<string, string>> = [{ authorization: `Bearer ${wrongKey}` }, { 'x-api-key': wrongKey }, { 'api-key': wrongKey }];
  for (const headers of wrongHeaders) await expectStatus(post(headers, payload), 401);
  await expectStatus(post({ authorization: `Bearer ${key}` }, payload, `/api/v1/keys?key=${key}`), 404);

  // MQTT: the key as password, and as user name too; a wrong key as password.
  const client = await mqtt.connectAsync(t.tcpUrl, { username: key, password: key, reconnectPeriod: 0 });
  await client.publishAsync('health/secretive', payload, { qos: 1 });
  await client.endAsync();
  await assert.rejects(mqtt.connectAsync(t.wsUrl, { username: 'phone', password: wrongKey, reconnectPeriod: 0 }));

  const metrics = await (await fetch(`${t.httpUrl}/metrics`)).text();
  await waitFor(() => logs.some((l) => l.includes('mqtt: connection refused')), 5_000, 'the refused MQTT connection is logged');
  const logText = logs.join('');
  // The capture works: the requests above were logged, with the key's public prefix at most.
  assert.match(logText, /ingest request refused/);
  assert.match(logText, /\[same as password\]/);
  assert.match(logText, /rate limits: Redis is unreachable/);
  // ss_<prefix>_<secret>: the prefix may be logged, no stretch of the secret may.
  const secretOf = (k: string) => k.slice(k.lastIndexOf('_') + 1);
  const pieces = [key, wrongKey].flatMap((k) => [secretOf(k).slice(0, 8), secretOf(k).slice(-8)]);
  for (const secret of [key, wrongKey, ...pieces, redisPassword]) {
    assert.ok(!logText.includes(secret), `logs contain ${secret === redisPassword ? 'the Redis password' : 'a key'}`);
    assert.ok(!metrics.includes(secret), 'metrics contain a secret');
    for (const answer of answers) assert.ok(!answer.includes(secret), `an answer contains a secret: ${answer}`);
  }
});
