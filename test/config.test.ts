import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import { settingsSchema } from '../src/config/schema.js';
import { AppError } from '../src/errors.js';
import { projectRoot } from '../src/paths.js';

test('defaults match the external contract', () => {
  const c = loadConfig({});
  assert.equal(c.http.port, 8080);
  assert.equal(c.mqtt.wsPath, '/mqtt');
  assert.equal(c.mqtt.tcpPort, 1884);
  assert.equal(c.mqtt.tcpEnabled, true);
  assert.equal(c.dataDir, './data');
  assert.equal(c.database.url, undefined);
  assert.equal(c.mqtt.maxPacketBytes, 128 * 1024 * 1024);
  assert.ok(Object.isFrozen(c.http));
});

test('MQTT_TCP_PORT=0 turns TCP off', () => {
  assert.equal(loadConfig({ MQTT_TCP_PORT: '0' }).mqtt.tcpEnabled, false);
});

test('every problem is listed at once', () => {
  assert.throws(
    () => loadConfig({ HTTP_PORT: 'eighty', DATABASE_URL: 'not a url', LOG_LEVEL: 'loud', MQTT_WS_PATH: 'mqtt' }),
    (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, 'SS_CONFIG_INVALID');
      const problems = err.details?.problems as string[];
      assert.equal(problems.length, 4, problems.join('\n'));
      for (const name of ['HTTP_PORT', 'DATABASE_URL', 'LOG_LEVEL', 'MQTT_WS_PATH']) assert.ok(problems.some((p) => p.startsWith(name)), name);
      return true;
    },
  );
});

test('a config file is read; the environment wins; unknown names in the file are errors', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ss-config-'));
  const file = path.join(dir, 'settings.env');
  writeFileSync(file, '# comment\nHTTP_PORT=9090\nLOG_LEVEL="debug"\nMQTT_TCP_PORT=1999  # trailing comment\n');
  const c = loadConfig({ LOG_LEVEL: 'warn' }, file);
  assert.equal(c.http.port, 9090);
  assert.equal(c.mqtt.tcpPort, 1999);
  assert.equal(c.log.level, 'warn');
  writeFileSync(file, 'HTTP_PROT=9090\n');
  assert.throws(() => loadConfig({}, file), /HTTP_PROT: not a setting/);
  rmSync(dir, { recursive: true, force: true });
});

test('config/self-sensored.example.env names every setting, and parses', () => {
  const example = readFileSync(path.join(projectRoot, 'config', 'self-sensored.example.env'), 'utf8');
  for (const name of Object.keys(settingsSchema.in.shape)) assert.match(example, new RegExp(`^#? ?${name}=`, 'm'), `${name} is documented`);
  const c = loadConfig({}, path.join(projectRoot, 'config', 'self-sensored.example.env'));
  assert.deepEqual(c, loadConfig({}));
});

test('the README documents every setting, and docs/errors.md every error code and rejection reason', async () => {
  const { errorCatalogue, rejectionCatalogue } = await import('../src/errors.js');
  const readme = readFileSync(path.join(projectRoot, 'README.md'), 'utf8');
  for (const name of Object.keys(settingsSchema.in.shape)) assert.ok(readme.includes(`\`${name}\``) && new RegExp(`^\\| [^\\n]*\`${name}\``, 'm').test(readme), `README documents ${name}`);
  const errors = readFileSync(path.join(projectRoot, 'docs', 'errors.md'), 'utf8');
  for (const code of Object.keys(errorCatalogue)) assert.ok(errors.includes(`| \`${code}\` |`), `docs/errors.md documents ${code}`);
  for (const reason of Object.keys(rejectionCatalogue)) assert.ok(errors.includes(`| \`${reason}\` |`), `docs/errors.md documents ${reason}`);
});

test('validation ranges can be narrowed, not widened, and min stays below max', () => {
  const narrowed = loadConfig({ VALIDATION_HEART_RATE_MIN_BPM: '30', VALIDATION_HEART_RATE_MAX_BPM: '220' });
  assert.deepEqual(narrowed.validation.heartRate, { min: 30, max: 220 });
  assert.deepEqual(loadConfig({}).validation.systolic, { min: 50, max: 250 });
  assert.throws(() => loadConfig({ VALIDATION_HEART_RATE_MAX_BPM: '350' }), /VALIDATION_HEART_RATE_MAX_BPM cannot be above 300/);
  assert.throws(() => loadConfig({ VALIDATION_SYSTOLIC_MIN_MMHG: '200', VALIDATION_SYSTOLIC_MAX_MMHG: '150' }), /VALIDATION_SYSTOLIC_MIN_MMHG must be below VALIDATION_SYSTOLIC_MAX_MMHG/);
});
