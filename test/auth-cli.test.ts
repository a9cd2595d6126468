import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { projectRoot } from '../src/paths.js';
import { startTestApp, waitFor, type TestApp } from './helpers/app.js';

const cli = path.join(projectRoot, 'scripts', 'self-sensored.js');

/** Runs the real CLI; `stdin` is written to its standard input. */
function cliRun(args: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('keys and auth-events on the command line, against the running daemon', () => {
  let t: TestApp;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    t = await startTestApp();
    env = { PATH: process.env.PATH, DATABASE_URL: t.db.url, LOG_LEVEL: 'warn', BOOTSTRAP_KEY: 'false' };
  });
  after(async () => t?.close());

  test('keys create with --scope (repeatable), --expires and an own key from standard input; list filters by user', async () => {
    const made = await cliRun(['keys', 'create', '--user', 'lena', '--scope', 'ingest', '--scope', 'admin', '--expires', '30d', '--json'], env);
    assert.equal(made.code, 0, made.stderr);
    const created = JSON.parse(made.stdout) as { id: string; key: string; scopes: string[]; expiresAt: string; origin: string };
    assert.deepEqual(created.scopes, ['ingest', 'admin']);
    assert.equal(created.origin, 'generated');
    assert.ok(Math.abs(Date.parse(created.expiresAt) - (Date.now() + 30 * 86_400_000)) < 120_000);

    const own = randomUUID();
    const fromStdin = await cliRun(['keys', 'create', '--user', 'lena', '--label', 'app', '--key', '-', '--json'], env, `${own}\n`);
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    const ownKey = JSON.parse(fromStdin.stdout) as { key: string; origin: string; scopes: string[] };
    assert.equal(ownKey.key, own);
    assert.equal(ownKey.origin, 'own');
    assert.deepEqual(ownKey.scopes, ['ingest']);
    const rest = await fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { 'X-API-Key': own, 'Content-Type': 'application/json' }, body: '{"data":{}}' });
    assert.equal(rest.status, 200);

    const twice = await cliRun(['keys', 'create', '--user', 'lena', '--key', '-'], env, own);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /already registered.*\[SS_KEY_EXISTS\]/);
    const weak = await cliRun(['keys', 'create', '--user', 'lena', '--key', 'abc'], env);
    assert.equal(weak.code, 1);
    assert.match(weak.stderr, /at least 16 characters .*\[SS_KEY_TOO_WEAK\]/);
    assert.match(weak.stderr, /stays in the shell history/);
    const badScope = await cliRun(['keys', 'create', '--user', 'lena', '--scope', 'everything'], env);
    assert.equal(badScope.code, 1);
    assert.match(badScope.stderr, /unknown scope "everything".*\[SS_KEY_REQUEST_INVALID\]/);

    const listed = await cliRun(['keys', 'list', '--user', 'lena', '--json'], env);
    const keys = JSON.parse(listed.stdout) as Array<{ user: string; scopes: string[] }>;
    assert.equal(keys.length, 2);
    assert.ok(!listed.stdout.includes(own) && !listed.stdout.includes(created.key));
    const table = await cliRun(['keys', 'list'], env);
    assert.match(table.stdout, /SCOPES\s+STATUS\s+EXPIRES/);
    assert.match(table.stdout, /ingest,admin/);
  });

  test('keys revoke from the CLI stops the key in the running daemon within 5 s; auth-events lists the attempts', async () => {
    const created = await t.app.keys.create({ userName: 'mia' });
    const send = () => fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { Authorization: `Bearer ${created.key}`, 'Content-Type': 'application/json' }, body: '{"data":{}}' });
    assert.equal((await send()).status, 200);
    const revoked = await cliRun(['keys', 'revoke', created.id], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    const at = Date.now();
    await waitFor(async () => (await send()).status === 401, 5_000, 'the daemon refuses the revoked key');
    assert.ok(Date.now() - at < 5_000);
    assert.match((await cliRun(['keys', 'revoke', created.id], env)).stdout, /already revoked/);

    await t.app.authEvents.flush();
    const events = await cliRun(['auth-events', '--limit', '3', '--json'], env);
    assert.equal(events.code, 0, events.stderr);
    const rows = JSON.parse(events.stdout) as Array<{ outcome: string; reason: string | null; transport: string; user: string | null; keyPrefix: string }>;
    assert.equal(rows.length, 3);
    assert.deepEqual(rows[0], { ...rows[0], outcome: 'failure', reason: 'revoked', transport: 'http', user: 'mia', keyPrefix: created.prefix });
    assert.ok(!events.stdout.includes(created.key));
    const text = await cliRun(['auth-events'], env);
    assert.match(text.stdout, /TIME\s+OUTCOME\s+REASON/);
    assert.equal((await cliRun(['auth-events', '--limit', 'many'], env)).code, 2);
  });
});
