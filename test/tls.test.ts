import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { projectRoot } from '../src/paths.js';
import { TlsCertificates } from '../src/tls/certificates.js';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { createTestDatabase } from './helpers/database.js';

const run = promisify(execFile);

/** A fresh self-signed certificate for 127.0.0.1; returns the file paths. */
async function makeCertificate(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, `${name}-cert.pem`);
  const key = path.join(dir, `${name}-key.pem`);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1']);
  return { cert, key };
}

/** The SHA-256 fingerprint of the certificate a new TLS connection is served. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

function fingerprintOf(pemFile: string): Promise<string> {
  return run('openssl', ['x509', '-in', pemFile, '-noout', '-fingerprint', '-sha256']).then(({ stdout }) => stdout.trim().split('=')[1]!);
}

const payload = JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-04-01 12:00:00 +0200', qty: 3, source: 'Watch' }] }] } });

describe('native TLS: HTTPS, WSS and MQTT over TLS; reload', () => {
  let dir: string;
  let t: TestApp;
  let key: string;
  let first: { cert: string; key: string };
  const live = () => ({ cert: path.join(dir, 'live-cert.pem'), key: path.join(dir, 'live-key.pem') });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ss-tls-'));
    first = await makeCertificate(dir, 'first');
    await copyFile(first.cert, live().cert);
    await copyFile(first.key, live().key);
    t = await startTestApp(
      { TLS_CERT_FILE: live().cert, TLS_KEY_FILE: live().key },
      // An ephemeral MQTT-over-TLS port (0 in the environment means "off").
      { tweak: (c) => ({ ...c, tls: c.tls && { ...c.tls, mqttPort: 0, mqttEnabled: true } }) },
    );
    key = await t.createKey('tls');
  });
  after(async () => {
    await t?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const httpPort = () => t.app.httpAddress.port;
  const mqttTlsPort = () => t.app.mqttTlsAddress!.port;

  test('HTTPS serves the API with the configured certificate; plain HTTP is not answered', async () => {
    const ca = await import('node:fs/promises').then((fs) => fs.readFile(first.cert));
    const status = await new Promise<number>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: httpPort(), path: '/health', ca }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      }).on('error', reject);
    });
    assert.equal(status, 200);
    assert.equal(await servedFingerprint(httpPort()), await fingerprintOf(first.cert));
    await assert.rejects(fetch(`http://127.0.0.1:${httpPort()}/health`));
  });

  test('MQTT over WSS on the HTTP port and over TLS on its own port store payloads', async () => {
    for (const url of [`wss://127.0.0.1:${httpPort()}/mqtt`, `mqtts://127.0.0.1:${mqttTlsPort()}`]) {
      const client = await mqtt.connectAsync(url, { username: 'tls', password: key, reconnectPeriod: 0, rejectUnauthorized: false });
      try {
        await client.publishAsync('health/tls', payload, { qos: 1 });
      } finally {
        await client.endAsync();
      }
    }
    assert.equal(await count(t.sql, 'raw_ingestions'), 1);
    const { rows } = await t.sql.query<{ receive_count: number }>('SELECT receive_count FROM raw_ingestions');
    assert.equal(rows[0]!.receive_count, 2);
  });

  test('reload: new connections get the new certificate; an unusable pair keeps the old one', async () => {
    const second = await makeCertificate(dir, 'second');
    await copyFile(second.cert, live().cert);
    await copyFile(second.key, live().key);
    assert.equal(t.app.reloadTls(), true);
    const expected = await fingerprintOf(second.cert);
    assert.equal(await servedFingerprint(httpPort()), expected);
    assert.equal(await servedFingerprint(mqttTlsPort()), expected);

    // A key that does not belong to the certificate (a renewal caught half-way) is refused.
    await copyFile(first.key, live().key);
    assert.equal(t.app.reloadTls(), false);
    await writeFile(live().cert, 'not a certificate');
    assert.equal(t.app.reloadTls(), false);
    assert.equal(await servedFingerprint(httpPort()), expected);
    assert.equal(await servedFingerprint(mqttTlsPort()), expected);
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${mqttTlsPort()}`, { username: 'tls', password: key, reconnectPeriod: 0, rejectUnauthorized: false });
    await client.endAsync();
  });
});

test('TLS settings: both files or neither, MQTT_TLS_PORT defaults to 8883 only with TLS, bad files stop the start', async () => {
  assert.throws(() => loadConfig({ TLS_CERT_FILE: '/x/cert.pem' }), /TLS_CERT_FILE and TLS_KEY_FILE go together/);
  assert.throws(() => loadConfig({ MQTT_TLS_PORT: '8883' }), /MQTT_TLS_PORT needs TLS_CERT_FILE/);
  assert.equal(loadConfig({}).tls, null);
  assert.deepEqual(loadConfig({ TLS_CERT_FILE: 'c', TLS_KEY_FILE: 'k' }).tls, { certFile: 'c', keyFile: 'k', mqttPort: 8883, mqttEnabled: true });
  assert.equal(loadConfig({ TLS_CERT_FILE: 'c', TLS_KEY_FILE: 'k', MQTT_TLS_PORT: '0' }).tls?.mqttEnabled, false);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'ss-tls-'));
  try {
    const a = await makeCertificate(dir, 'a');
    const b = await makeCertificate(dir, 'b');
    const logger = createLogger('silent');
    assert.throws(() => new TlsCertificates({ certFile: path.join(dir, 'missing.pem'), keyFile: a.key }, logger).current, /TLS_CERT_FILE \/ TLS_KEY_FILE cannot be read/);
    assert.throws(() => new TlsCertificates({ certFile: a.cert, keyFile: b.key }, logger).current, (err: Error & { code?: string }) => err.code === 'SS_CONFIG_INVALID' && /not a usable pair/.test(err.message));
    assert.ok(new TlsCertificates({ certFile: a.cert, keyFile: a.key }, logger).current.cert);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the daemon re-reads its certificate on SIGHUP and keeps running', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ss-tls-'));
  const db = await createTestDatabase();
  const first = await makeCertificate(dir, 'first');
  const second = await makeCertificate(dir, 'second');
  const live = { cert: path.join(dir, 'live-cert.pem'), key: path.join(dir, 'live-key.pem') };
  await copyFile(first.cert, live.cert);
  await copyFile(first.key, live.key);
  const env = {
    PATH: process.env.PATH ?? '',
    DATABASE_URL: db.url,
    DATA_DIR: dir,
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    MQTT_TCP_PORT: '0',
    MQTT_TLS_PORT: '0',
    BOOTSTRAP_KEY: 'false',
    TLS_CERT_FILE: live.cert,
    TLS_KEY_FILE: live.key,
  };
  const child = spawn(process.execPath, [path.join(projectRoot, 'dist', 'src', 'main.js'), 'start'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  try {
    await waitFor(() => output.includes('"msg":"self-sensored is listening"'), 30_000, 'the daemon to listen');
    const port = Number(/"port":(\d+),"scheme":"https"/.exec(output)![1]);
    assert.equal(await servedFingerprint(port), await fingerprintOf(first.cert));
    await copyFile(second.cert, live.cert);
    await copyFile(second.key, live.key);
    child.kill('SIGHUP');
    await waitFor(() => output.includes('"msg":"signal received; TLS certificate reloaded"'), 10_000, 'the reload');
    assert.equal(await servedFingerprint(port), await fingerprintOf(second.cert));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    child.kill('SIGKILL');
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
});
