import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { projectRoot } from '../src/paths.js';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { refuseQuantity } from './helpers/database.js';

const run = promisify(execFile);
const cli = path.join(projectRoot, 'scripts', 'self-sensored.js');

const MAX_ATTEMPTS = 2;
const POISON_QTY = 666;
const POISON_MESSAGE = 'poison sample refused by the test trigger';

const payload = (qty: number, day: string) =>
  JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: `${day} 12:00:00 +0200`, qty, source: 'Watch' }] }] } });

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI process; resolves with the exit code instead of throwing on a non-zero one. */
async function cliRun(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('poison payloads through the running daemon', () => {
  let t: TestApp;
  let cliEnv: NodeJS.ProcessEnv;
  const startedAt = new Date(Date.now() - 60_000);

  before(async () => {
    t = await startTestApp({ INGEST_MAX_ATTEMPTS: String(MAX_ATTEMPTS) });
    // The poison: a trigger of this test's own database refuses one value, without touching parser code.
    await refuseQuantity(t.sql, POISON_QTY, POISON_MESSAGE);
    cliEnv = { PATH: process.env.PATH, DATABASE_URL: t.db.url, LOG_LEVEL: 'warn' };
  });
  after(async () => t?.close());

  let poisonId: string;

  test(`a payload that always fails is marked failed after ${MAX_ATTEMPTS} attempts and does not hold up the others`, { timeout: 60_000 }, async () => {
    const key = await t.createKey('carol');
    const client = await mqtt.connectAsync(t.tcpUrl, { username: 'phone', password: key, reconnectPeriod: 0 });
    try {
      // The poison goes first: the valid payloads behind it must not wait for its retries.
      await client.publishAsync('health/carol', payload(POISON_QTY, '2025-03-01'), { qos: 1 });
      for (let i = 1; i <= 3; i++) await client.publishAsync('health/carol', payload(1000 + i, `2025-03-0${i + 1}`), { qos: 1 });
    } finally {
      await client.endAsync();
    }
    await waitFor(async () => (await count(t.sql, 'raw_ingestions', `status = 'processed'`)) === 3, 10_000, 'the valid payloads');
    assert.equal(await count(t.sql, 'quantity_samples'), 3);

    await waitFor(async () => (await count(t.sql, 'raw_ingestions', `status = 'failed'`)) === 1, 20_000, 'the poison to be given up');
    const { rows } = await t.sql.query<{ id: string; attempts: number; error: string }>(`SELECT id, attempts, error FROM raw_ingestions WHERE status = 'failed'`);
    poisonId = String(rows[0]!.id);
    assert.equal(rows[0]!.attempts, MAX_ATTEMPTS);
    assert.match(rows[0]!.error, new RegExp(POISON_MESSAGE));
    assert.equal(await count(t.sql, 'quantity_samples', 'qty = $1', [POISON_QTY]), 0, 'the failed payload left no rows (its transaction was rolled back)');
    // Given up means given up: no further attempt comes later.
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal((await t.sql.query<{ attempts: number }>('SELECT attempts FROM raw_ingestions WHERE id = $1', [poisonId])).rows[0]!.attempts, MAX_ATTEMPTS);
  });

  test('ingestions list --status failed --json shows it with the whole error', async () => {
    const r = await cliRun(['ingestions', 'list', '--status', 'failed', '--json'], cliEnv);
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as Array<{ id: string; status: string; attempts: number; error: string; user: string; transport: string; sizeBytes: number }>;
    assert.equal(list.length, 1);
    assert.equal(list[0]!.id, poisonId);
    assert.equal(list[0]!.status, 'failed');
    assert.equal(list[0]!.attempts, MAX_ATTEMPTS);
    assert.equal(list[0]!.user, 'carol');
    assert.equal(list[0]!.transport, 'mqtt-tcp');
    assert.match(list[0]!.error, new RegExp(POISON_MESSAGE));

    const table = await cliRun(['ingestions', 'list'], cliEnv);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^ID\s+RECEIVED\s+USER\s+TRANSPORT\s+SIZE\s+STATUS\s+ATTEMPTS\s+REJECTED\s+ERROR$/);
    assert.equal(lines.length, 5, 'header and four payloads');
    assert.ok(lines[4]!.startsWith(poisonId), 'newest first: the poison came first, so it is last');
  });

  test('ingestions retry fails again while the cause remains, then turns it processed once the cause is gone', { timeout: 60_000 }, async () => {
    const again = await cliRun(['ingestions', 'retry', poisonId], cliEnv);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(POISON_MESSAGE));
    let row = (await t.sql.query<{ status: string; attempts: number }>('SELECT status, attempts FROM raw_ingestions WHERE id = $1', [poisonId])).rows[0]!;
    assert.deepEqual(row, { status: 'failed', attempts: MAX_ATTEMPTS + 1 });

    await t.sql.query('DROP TRIGGER test_poison ON quantity_samples');
    const r = await cliRun(['ingestions', 'retry', poisonId], cliEnv);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`ingestion ${poisonId}: processed .*inserted 1`));
    row = (await t.sql.query<{ status: string; attempts: number }>('SELECT status, attempts FROM raw_ingestions WHERE id = $1', [poisonId])).rows[0]!;
    assert.deepEqual(row, { status: 'processed', attempts: MAX_ATTEMPTS + 2 });
    assert.equal(await count(t.sql, 'quantity_samples', 'qty = $1 AND ingestion_id = $2', [POISON_QTY, poisonId]), 1);

    const failed = await cliRun(['ingestions', 'list', '--status', 'failed', '--json'], cliEnv);
    assert.deepEqual(JSON.parse(failed.stdout), []);
    const processed = await cliRun(['ingestions', 'retry', poisonId], cliEnv);
    assert.equal(processed.code, 2, 'a processed payload is not retried');
    assert.match(processed.stderr, /reprocess/);
  });

  test('reprocess --since re-derives every payload; a second run changes nothing', { timeout: 60_000 }, async () => {
    const first = await cliRun(['reprocess', '--since', startedAt.toISOString(), '--json'], cliEnv);
    assert.equal(first.code, 0, first.stderr);
    const s1 = JSON.parse(first.stdout) as Record<string, number>;
    assert.equal(s1.payloads, 4);
    assert.equal(s1.failed, 0);
    assert.match(first.stderr, /\[4\/4\] ingestion \d+:/, 'progress is printed');
    const revisions = await t.sql.query('SELECT sum(revision)::int AS n FROM quantity_samples');

    const second = await cliRun(['reprocess', '--since', startedAt.toISOString(), '--json'], cliEnv);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(JSON.parse(second.stdout), { payloads: 4, inserted: 0, updated: 0, unchanged: 4, rejected: 0, failed: 0, failures: [] });
    assert.deepEqual((await t.sql.query('SELECT sum(revision)::int AS n FROM quantity_samples')).rows, revisions.rows, 'no row was rewritten');

    const future = await cliRun(['reprocess', '--since', '2999-01-01', '--json'], cliEnv);
    assert.equal((JSON.parse(future.stdout) as { payloads: number }).payloads, 0, '--since leaves older payloads out');
    const text = await cliRun(['reprocess', '--status', 'failed'], cliEnv);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^reprocessed 0 payload\(s\): inserted 0, updated 0, unchanged 0, rejected 0, failed 0$/m);
  });

  test('usage errors are reported before any database is started', async () => {
    // An unreachable DATABASE_URL: reaching for it would end in a connection error and exit code 1.
    const env = { PATH: process.env.PATH, DATABASE_URL: 'postgres://nobody:wrong@127.0.0.1:1/none' };
    for (const args of [['ingestions'], ['ingestions', 'retry'], ['ingestions', 'retry', 'abc'], ['ingestions', 'list', '--status', 'odd'], ['ingestions', 'list', '--limit', '0'], ['reprocess', '--since', 'yesterday-ish'], ['reprocess', '--status', 'received'], ['reprocess', 'now']]) {
      const r = await cliRun(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /SS_USAGE/);
    }
    const help = await cliRun(['--help'], env);
    assert.match(help.stdout, /ingestions list/);
    assert.match(help.stdout, /ingestions retry ID/);
    assert.match(help.stdout, /reprocess \[--since DATE\]/);
  });
});
