import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { projectRoot } from '../src/paths.js';

const run = promisify(execFile);

interface ChaosReport {
  ok: boolean;
  failures: string[];
  kills: { done: number };
  outages: { done: number };
  payloads: { acknowledged: number; lost: number; duplicated: number; qos0DuringOutage: { published: number; stored: number } };
  daemon: { sigtermExitCode: number | null };
}

// The full run (`npm run chaos`: 50 kill points, 10 outages, 1,000 connections) is too long for
// `npm test`; its quick mode runs the same faults a few times.
test('chaos quick mode: kills and outages lose and duplicate nothing', { timeout: 150_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ss-chaos-smoke-'));
  try {
    const out = path.join(dir, 'report.json');
    await run(process.execPath, [path.join(projectRoot, 'dist', 'scripts', 'chaos.js'), '--quick', '--out', out], { env: process.env, maxBuffer: 16 * 1024 * 1024 });
    const report = JSON.parse(await readFile(out, 'utf8')) as ChaosReport;
    assert.deepEqual(report.failures, []);
    assert.equal(report.ok, true);
    assert.ok(report.kills.done >= 3, 'kill points done');
    assert.ok(report.outages.done >= 2, 'outages done');
    assert.ok(report.payloads.acknowledged > 0);
    assert.equal(report.payloads.lost, 0);
    assert.equal(report.payloads.duplicated, 0);
    assert.equal(report.payloads.qos0DuringOutage.stored, report.payloads.qos0DuringOutage.published);
    assert.equal(report.daemon.sigtermExitCode, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
