import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { KeyStore } from '../src/auth/key-store.js';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { connectMqtt as connect } from './helpers/mqtt-connect.js';

/** Every log line the daemon writes, to search for secrets. */
class LogCapture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

const payload = (qty: number) =>
  JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-04-01 12:00:00 +0200', qty, source: 'Watch' }] }] } });


/** The CONNACK return code of a refused connection. */
async function refusedCode(url: string, password: string): Promise<number | undefined> {
  try {
    const client = await connect(url, password);
    client.end(true);
  } catch (err) {
    return (err as { code?: number }).code;
  }
  throw new Error('connection unexpectedly accepted');
}

function closedWithin(client: MqttClient, ms: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms);
    client.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

describe('keys: own-choice keys, scopes, expiry, revocation, key management over HTTP, auth_events', () => {
  let t: TestApp;
  const logs = new LogCapture();
  const secrets: string[] = [];
  let adminKey: string;
  let ingestKey: string;

  const api = (path: string, init: RequestInit & { key?: string } = {}) => {
    const headers = new Headers(init.headers);
    if (init.key) headers.set('Authorization', `Bearer ${init.key}`);
    return fetch(`${t.httpUrl}${path}`, { ...init, headers });
  };
  const ingest = (key: string, qty = 1) =>
    api('/api/v1/ingest', { method: 'POST', key, headers: { 'Content-Type': 'application/json' }, body: payload(qty) });
  const remember = (key: string) => {
    secrets.push(key);
    return key;
  };

  before(async () => {
    t = await startTestApp({ LOG_LEVEL: 'debug' }, { logDestination: logs });
    adminKey = remember((await t.app.keyManagement.create({ user: 'root', scopes: ['admin'] })).key);
    ingestKey = remember((await t.app.keyManagement.create({ user: 'anna' })).key);
  });
  after(async () => t?.close());

  test('a key of your own (a UUID) works over REST, MQTT/TCP and MQTT/WebSocket; registering it twice is refused', async () => {
    const own = remember(randomUUID());
    const created = await t.app.keyManagement.create({ user: 'olga', key: own, label: 'app uuid' });
    assert.equal(created.origin, 'own');
    assert.match(created.prefix, /^own_[0-9a-f]{16}$/);
    const row = (await t.sql.query('SELECT prefix, secret_hash FROM api_keys WHERE id = $1', [created.id])).rows[0];
    assert.match(row.secret_hash, /^\$argon2id\$/);
    assert.ok(!JSON.stringify(row).includes(own));

    const rest = await ingest(own, 11);
    assert.equal(rest.status, 200, await rest.clone().text());
    for (const url of [t.tcpUrl, t.wsUrl]) {
      const client = await connect(url, own);
      await client.publishAsync('health/olga', payload(url === t.tcpUrl ? 12 : 13), { qos: 1 });
      await client.endAsync();
    }
    assert.equal(await count(t.sql, 'raw_ingestions r JOIN users u ON u.id = r.user_id', `u.name = 'olga'`), 3);

    await assert.rejects(t.app.keyManagement.create({ user: 'someone-else', key: own }), { code: 'SS_KEY_EXISTS' });
    const again = await api('/api/v1/auth/keys', { method: 'POST', key: adminKey, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: 'x', key: own }) });
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'SS_KEY_EXISTS');
    const weak = await api('/api/v1/auth/keys', { method: 'POST', key: adminKey, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: 'x', key: 'short' }) });
    assert.equal(weak.status, 400);
    const weakBody = (await weak.json()) as { error: { code: string; message: string } };
    assert.equal(weakBody.error.code, 'SS_KEY_TOO_WEAK');
    assert.match(weakBody.error.message, /at least 16 characters/);
  });

  test('key management needs an admin key: 401 without a valid key, 403 with an ingest key; an admin creates, lists and revokes', async () => {
    assert.equal((await api('/api/v1/auth/keys')).status, 401);
    assert.equal((await api('/api/v1/auth/keys', { key: 'ss_aaaaaaaaaa_' + 'A'.repeat(43) })).status, 401);
    const forbidden = await api('/api/v1/auth/keys', { key: ingestKey });
    assert.equal(forbidden.status, 403);
    assert.equal(((await forbidden.json()) as { error: { code: string } }).error.code, 'SS_AUTH_FORBIDDEN');
    // An admin-only key cannot send data either.
    const adminIngest = await ingest(adminKey);
    assert.equal(adminIngest.status, 403);
    assert.equal(await refusedCode(t.tcpUrl, adminKey), 5);

    const post = await api('/api/v1/auth/keys', {
      method: 'POST',
      key: adminKey,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: 'ben', label: 'watch', scopes: ['ingest', 'read'], expiresAt: '90d' }),
    });
    assert.equal(post.status, 201);
    const created = (await post.json()) as { id: string; key: string; prefix: string; scopes: string[]; expiresAt: string; user: string };
    remember(created.key);
    assert.equal(post.headers.get('location'), `/api/v1/auth/keys/${created.id}`);
    assert.deepEqual(created.scopes, ['ingest', 'read']);
    const days = (Date.parse(created.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 89.9 && days <= 90, `expires in ${days} days`);
    assert.equal((await ingest(created.key)).status, 200);

    const list = await api('/api/v1/auth/keys?user=ben', { key: adminKey });
    assert.equal(list.status, 200);
    const listText = await list.text();
    const listed = (JSON.parse(listText) as { keys: Array<Record<string, unknown>> }).keys;
    assert.deepEqual(listed.map((k) => k.id), [created.id]);
    assert.equal(listed[0]!.label, 'watch');
    for (const secret of secrets) assert.ok(!listText.includes(secret), 'the list never shows a key');
    assert.ok(!/argon2|secret_hash|secretHash/.test(listText));
    const all = (await (await api('/api/v1/auth/keys', { key: adminKey })).json()) as { keys: unknown[] };
    assert.ok(all.keys.length >= 3);

    const bad = await api('/api/v1/auth/keys', { method: 'POST', key: adminKey, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: 'ben', scopes: ['root'] }) });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'SS_KEY_REQUEST_INVALID');
    const past = await api('/api/v1/auth/keys', { method: 'POST', key: adminKey, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: 'ben', expiresAt: '2001-01-01' }) });
    assert.equal(past.status, 400);

    assert.equal((await api(`/api/v1/auth/keys/${randomUUID()}`, { method: 'DELETE', key: adminKey })).status, 404);
    assert.equal((await api('/api/v1/auth/keys/not-an-id', { method: 'DELETE', key: adminKey })).status, 404);
    const put = await api(`/api/v1/auth/keys/${created.id}`, { method: 'PUT', key: adminKey });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get('allow'), 'DELETE');
    const del = await api(`/api/v1/auth/keys/${created.id}`, { method: 'DELETE', key: adminKey });
    assert.equal(del.status, 204);
    // Revoked in this process: refused at once, not after the refresh interval.
    assert.equal((await ingest(created.key)).status, 401);
    assert.equal((await api(`/api/v1/auth/keys/${created.id}`, { method: 'DELETE', key: adminKey })).status, 204);
  });

  test('an expired key is refused with reason expired, also when it expires while cached', async () => {
    const created = await t.app.keyManagement.create({ user: 'carl', expires: '1h' });
    remember(created.key);
    assert.equal((await ingest(created.key)).status, 200); // now cached
    await t.sql.query(`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, [created.id]);
    await waitFor(async () => (await ingest(created.key)).status === 401, 5_000, 'expired key refused');
    assert.equal(await refusedCode(t.tcpUrl, created.key), 5);
    await t.app.authEvents.flush();
    assert.ok((await count(t.sql, 'auth_events', `key_id = $1 AND outcome = 'failure' AND reason = 'expired'`, [created.id])) >= 2);
  });

  test('a key revoked over HTTP: the connected MQTT client is disconnected within 5 s and what it publishes afterwards is not stored', async () => {
    const created = await t.app.keyManagement.create({ user: 'dora' });
    remember(created.key);
    const client = await connect(t.tcpUrl, created.key, { clientId: 'dora-phone' });
    await client.publishAsync('health/dora', payload(1), { qos: 1 });
    const stored = () => count(t.sql, 'raw_ingestions r JOIN users u ON u.id = r.user_id', `u.name = 'dora'`);
    assert.equal(await stored(), 1);

    const closing = closedWithin(client, 5_000);
    const del = await api(`/api/v1/auth/keys/${created.id}`, { method: 'DELETE', key: adminKey });
    assert.equal(del.status, 204);
    // Published right after the revocation: refused, never acknowledged.
    client.publish('health/dora', payload(2), { qos: 1 });
    const ms = await closing;
    assert.ok(ms < 5_000, `closed after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await stored(), 1);
    assert.equal(await refusedCode(t.tcpUrl, created.key), 5);
    client.end(true);
  });

  test('a key revoked by another process (the CLI): connected MQTT clients are dropped and REST refuses it within 5 s', async () => {
    const created = await t.app.keyManagement.create({ user: 'emil' });
    remember(created.key);
    const ws = await connect(t.wsUrl, created.key);
    assert.equal((await ingest(created.key)).status, 200);
    const closing = closedWithin(ws, 5_000);
    const started = Date.now();
    const cli = new KeyStore(t.sql);
    assert.equal(await cli.revoke(created.prefix), true);
    await closing;
    await waitFor(async () => (await ingest(created.key)).status === 401, 5_000 - (Date.now() - started), 'REST refuses the revoked key');
    assert.ok(Date.now() - started < 5_000);
    ws.end(true);
  });

  test('auth_events: every attempt with outcome, reason, transport, address and client id; no secret in the table or the logs', async () => {
    const created = await t.app.keyManagement.create({ user: 'fred' });
    remember(created.key);
    const client = await connect(t.tcpUrl, created.key, { clientId: 'fred-phone' });
    await client.endAsync();
    assert.equal((await ingest(created.key)).status, 200);
    const wrong = `ss_${created.prefix}_${'B'.repeat(43)}`;
    assert.equal((await ingest(wrong)).status, 401);
    await t.app.authEvents.flush();
    const { rows } = await t.sql.query(
      `SELECT outcome, reason, transport, remote_address, client_id, key_prefix, key_id, user_id::text FROM auth_events WHERE key_id = $1 ORDER BY id`,
      [created.id],
    );
    const user = (await t.sql.query(`SELECT id::text FROM users WHERE name = 'fred'`)).rows[0].id as string;
    assert.deepEqual(rows, [
      { outcome: 'success', reason: null, transport: 'mqtt-tcp', remote_address: '127.0.0.1', client_id: 'fred-phone', key_prefix: created.prefix, key_id: created.id, user_id: user },
      { outcome: 'success', reason: null, transport: 'http', remote_address: '127.0.0.1', client_id: null, key_prefix: created.prefix, key_id: created.id, user_id: user },
      { outcome: 'failure', reason: 'wrong_secret', transport: 'http', remote_address: '127.0.0.1', client_id: null, key_prefix: created.prefix, key_id: created.id, user_id: user },
    ]);
    assert.ok((await count(t.sql, 'auth_events', `outcome = 'failure' AND reason = 'missing'`)) >= 1);

    const table = (await t.sql.query(`SELECT coalesce(string_agg(row_to_json(e)::text, E'\\n'), '') AS text FROM auth_events e`)).rows[0].text as string;
    assert.ok(table.length > 0);
    for (const secret of [...secrets, wrong]) {
      assert.ok(!table.includes(secret), 'no key in auth_events');
      assert.ok(!logs.text.includes(secret), 'no key in the logs');
      // Nor the secret part of a generated key on its own.
      const tail = secret.slice(-43);
      if (secret.startsWith('ss_')) assert.ok(!table.includes(tail) && !logs.text.includes(tail));
    }
    assert.match(logs.text, /auth: attempt failed/);
  });

  test('auth_events older than AUTH_EVENTS_RETENTION_DAYS (90) are pruned, newer ones kept', async () => {
    await t.sql.query(
      `INSERT INTO auth_events (at, outcome, reason, transport) VALUES
         (now() - interval '91 days', 'failure', 'unknown_key', 'http'),
         (now() - interval '400 days', 'failure', 'unknown_key', 'http'),
         (now() - interval '89 days', 'failure', 'unknown_key', 'http')`,
    );
    const before = await count(t.sql, 'auth_events');
    assert.equal(await t.app.authEvents.prune(), 2);
    assert.equal(await count(t.sql, 'auth_events'), before - 2);
    assert.equal(await count(t.sql, 'auth_events', `at < now() - interval '90 days'`), 0);
    assert.equal(await count(t.sql, 'auth_events', `at < now() - interval '88 days'`), 1);
  });
});
