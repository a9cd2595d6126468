import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

let db: TestDatabase;
let proxy: TcpProxy;
let t: TestApp;

before(async () => {
  db = await createTestDatabase();
  const target = new URL(db.url);
  proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  await proxy.start();
  const viaProxy = new URL(db.url);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  t = await startTestApp({ DATABASE_URL: viaProxy.toString() }, { database: { ...db, url: viaProxy.toString() } });
});

after(async () => {
  proxy.restore();
  await t?.close();
  await proxy?.stop();
  await db?.drop();
});

const status = async (path: string) => (await fetch(`${t.httpUrl}${path}`)).status;

test('/ready answers 503 while the database is unreachable and 200 when it is back; /health stays 200', async () => {
  assert.equal(await status('/ready'), 200);
  proxy.cut();
  await waitFor(async () => (await status('/ready')) === 503, 10_000, '/ready to turn 503');
  const body = (await (await fetch(`${t.httpUrl}/ready`)).json()) as { ready: boolean; checks: { database: { ok: boolean } } };
  assert.equal(body.ready, false);
  assert.equal(body.checks.database.ok, false);
  assert.equal(await status('/health'), 200);

  // An upload while the database is away is refused with 503 (nothing acknowledged that is not stored).
  const key = 'ss_aaaaaaaaaa_' + 'C'.repeat(43);
  const res = await fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: '{}' });
  assert.equal(res.status, 503);
  assert.ok(res.headers.get('retry-after'));

  proxy.restore();
  await waitFor(async () => (await status('/ready')) === 200, 15_000, '/ready to turn 200 again');
});

test('/metrics exposes the ingest, auth, connection and pool metrics', async () => {
  const wrong = await fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ss_bbbbbbbbbb_${'D'.repeat(43)}` }, body: '{}' });
  assert.equal(wrong.status, 401);
  const text = await (await fetch(`${t.httpUrl}/metrics`)).text();
  for (const name of [
    'self_sensored_ingest_payloads_total',
    'self_sensored_ingest_samples_total',
    'self_sensored_ingest_rejections_total',
    'self_sensored_ingest_duration_seconds',
    'self_sensored_mqtt_connections',
    'self_sensored_auth_attempts_total',
    'self_sensored_db_pool_connections',
    'self_sensored_process_resident_memory_bytes',
  ]) {
    assert.match(text, new RegExp(`^# HELP ${name} `, 'm'), name);
  }
  assert.match(text, /self_sensored_auth_attempts_total\{transport="http",outcome="unknown_key"\} 1/);
});
