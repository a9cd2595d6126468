import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { WebSocket } from 'ws';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';

/*
 * MQTT over WebSocket behind a reverse proxy: every phone arrives from the proxy's address, so the
 * per-address connection cap must count the address the proxy forwards (X-Forwarded-For), and only
 * when the proxy is trusted (TRUST_PROXY); from anyone else the header is ignored.
 */

const CAP = 2;
const PHONE = '198.51.100.7';
const OTHER_PHONE = '198.51.100.8';

/** An MQTT session over WebSocket from 127.0.0.1 (the "proxy") claiming to forward `forwardedFor`. */
async function connectVia(t: TestApp, key: string, forwardedFor: string): Promise<MqttClient> {
  return mqtt.connectAsync(t.wsUrl, {
    username: 'phone',
    password: key,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    wsOptions: { localAddress: '127.0.0.1', headers: { 'X-Forwarded-For': forwardedFor } },
  });
}

/** The HTTP status of a WebSocket upgrade to the MQTT path, or 101 when it was accepted. */
function upgradeStatus(t: TestApp, forwardedFor: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(t.wsUrl, 'mqtt', { localAddress: '127.0.0.1', headers: { 'X-Forwarded-For': forwardedFor } });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      ws.terminate();
      resolve(res.statusCode ?? 0);
    });
    ws.once('error', reject);
  });
}

async function refusedByAddressCap(t: TestApp): Promise<number> {
  const { values } = await t.app.metrics.mqttRefused.get();
  return values.filter((v) => v.labels.reason === 'max_connections_per_address').reduce((sum, v) => sum + v.value, 0);
}

describe('MQTT over WebSocket behind a reverse proxy', { timeout: 60_000 }, () => {
  const clients: MqttClient[] = [];
  const apps: TestApp[] = [];
  after(async () => {
    for (const client of clients) client.end(true);
    for (const t of apps) await t.close();
  });
  const start = async (settings: Record<string, string>): Promise<{ t: TestApp; key: string }> => {
    const t = await startTestApp({ MQTT_MAX_CONNECTIONS_PER_ADDRESS: String(CAP), ...settings });
    apps.push(t);
    return { t, key: await t.createKey('phone') };
  };

  test('with TRUST_PROXY, the per-address cap counts the X-Forwarded-For address, not the proxy', async () => {
    const { t, key } = await start({ TRUST_PROXY: '127.0.0.1' });
    for (let i = 0; i < CAP; i++) clients.push(await connectVia(t, key, PHONE));
    const refusedBefore = await refusedByAddressCap(t);
    assert.equal(await upgradeStatus(t, PHONE), 503, `a connection over the cap of ${PHONE}`);
    assert.equal(await refusedByAddressCap(t), refusedBefore + 1);
    // Another phone behind the same proxy has its own allowance.
    const other = await connectVia(t, key, OTHER_PHONE);
    clients.push(other);
    assert.ok(other.connected);
    // The forwarded address is also what authentication records.
    await waitFor(async () => (await count(t.sql, 'auth_events', `outcome = 'success' AND transport = 'mqtt-ws' AND remote_address = $1`, [PHONE])) === CAP, 10_000, 'auth_events of the forwarded phone');
    assert.equal(await count(t.sql, 'auth_events', `transport = 'mqtt-ws' AND remote_address = '127.0.0.1'`), 0);
  });

  test('without TRUST_PROXY, X-Forwarded-For is ignored: every connection counts as the peer it comes from', async () => {
    const { t, key } = await start({});
    for (let i = 0; i < CAP; i++) clients.push(await connectVia(t, key, PHONE));
    const refusedBefore = await refusedByAddressCap(t);
    // Claiming another address does not buy another allowance.
    assert.equal(await upgradeStatus(t, OTHER_PHONE), 503, 'a connection claiming another forwarded address');
    assert.equal(await refusedByAddressCap(t), refusedBefore + 1);
    await waitFor(async () => (await count(t.sql, 'auth_events', `outcome = 'success' AND transport = 'mqtt-ws' AND remote_address = '127.0.0.1'`)) === CAP, 10_000, 'auth_events of the peer');
    assert.equal(await count(t.sql, 'auth_events', `remote_address = $1`, [PHONE]), 0);
  });
});
