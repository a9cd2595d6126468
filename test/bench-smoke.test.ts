import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { projectRoot } from '../src/paths.js';

const run = promisify(execFile);

interface Figure {
  id: string;
  value: number;
  ceiling: { value: number; label: string };
  ratio: number;
  target: { rule: string; pass: boolean } | null;
}

interface BenchReport {
  machine: { cores: number; node: string; cpuModel: string; date: string; postgres: { version: string } };
  scenarios: Record<string, { figures: Figure[]; cpu: Record<string, { machineBusyCores: number; otherCores: number; databaseCores: number }>; details: Record<string, unknown> }>;
}

// The full benchmark (`npm run bench`) takes many minutes and is not part of `npm test`; its
// quick mode runs every scenario with tiny sizes against the test database server.
test('bench quick mode: every scenario reports figures, ceilings and ratios', { timeout: 170_000 }, async () => {
  assert.ok(process.env.TEST_DATABASE_URL, 'npm test sets TEST_DATABASE_URL');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ss-bench-smoke-'));
  try {
    const out = path.join(dir, 'bench.json');
    await run(process.execPath, [path.join(projectRoot, 'dist', 'scripts', 'bench.js'), '--quick', '--out', out], {
      env: { ...process.env, DATABASE_URL: process.env.TEST_DATABASE_URL },
      maxBuffer: 16 * 1024 * 1024,
    });
    const report = JSON.parse(await readFile(out, 'utf8')) as BenchReport;
    assert.deepEqual(Object.keys(report.scenarios).sort(), ['bulk', 'memory', 'rest', 'smallMessages']);
    assert.ok(report.machine.cores > 0);
    assert.match(report.machine.node, /^v\d+/);
    assert.match(report.machine.postgres.version, /PostgreSQL/);
    for (const [name, scenario] of Object.entries(report.scenarios)) {
      assert.ok(scenario.figures.length > 0, `${name} has figures`);
      for (const f of scenario.figures) {
        assert.ok(Number.isFinite(f.value) && f.value >= 0, `${f.id}: value ${f.value}`);
        assert.ok(Number.isFinite(f.ceiling.value) && f.ceiling.value > 0, `${f.id}: ceiling ${f.ceiling.value}`);
        assert.ok(Number.isFinite(f.ratio), `${f.id}: ratio ${f.ratio}`);
        assert.ok(Math.abs(f.ratio - f.value / f.ceiling.value) < 0.001, `${f.id}: ratio is value / ceiling`);
      }
      assert.ok(Object.keys(scenario.cpu).length > 0, `${name} records CPU use`);
    }
    const bulk = report.scenarios.bulk!.details as {
      expectedRows: { heartRate: number; quantity: number };
      rows: { heartRate: number; quantity: number };
      status: string;
      ceilingRowDifferences: string[];
    };
    assert.equal(bulk.status, 'processed');
    assert.deepEqual(bulk.rows, bulk.expectedRows, 'every row of the bulk payload arrived');
    assert.ok(bulk.rows.heartRate > 0 && bulk.rows.quantity > 0);
    assert.deepEqual(bulk.ceilingRowDifferences, [], 'the ceiling writes the same rows as the daemon');
    const small = report.scenarios.smallMessages!.figures.find((f) => f.id === 'small.messagesPerSecond')!;
    assert.ok(small.value > 0, 'the daemon acknowledged small messages');
    const slices = report.scenarios.smallMessages!.details.slices as Array<{ side: string; messagesPerSecond: number }>;
    const round = ['bare broker', 'daemon', 'store-rows receiver', 'store-only receiver'];
    const there = [...round, ...[...round].reverse()];
    assert.deepEqual(
      slices.map((s) => s.side),
      [...there, ...there],
      'the daemon, its ceiling and the references are measured in interleaved slices',
    );
    assert.ok(slices.every((s) => s.messagesPerSecond > 0), `every slice acknowledged messages: ${JSON.stringify(slices)}`);
    // The daemon's database backends do its statements; the bare broker has none.
    const smallCpu = report.scenarios.smallMessages!.cpu;
    assert.ok(smallCpu.daemon!.databaseCores > 0, `the daemon's statements ran in the bench database: ${JSON.stringify(smallCpu)}`);
    const threads = report.scenarios.smallMessages!.details.mainThreads as Record<
      string,
      { cpuMicrosPerMessage: number; processMicrosPerMessage: number | null; databaseMicrosPerMessage: number; machineBusyCores: number; machineMicrosPerMessage: number; elsewhereMicrosPerMessage: number | null }
    >;
    // Absent where the kernel keeps no schedstats.
    if (threads.daemon) {
      assert.ok(threads.daemon.processMicrosPerMessage !== null && threads.daemon.processMicrosPerMessage >= threads.daemon.cpuMicrosPerMessage, `the whole process uses at least its main thread's CPU: ${JSON.stringify(threads.daemon)}`);
      assert.ok(threads.daemon.databaseMicrosPerMessage > 0);
      // The machine's busy CPU holds the receiver's process, its backends and the load generators.
      for (const [side, t] of Object.entries(threads)) {
        assert.ok(t.machineBusyCores > 0, `${side}: the machine was busy during its slices: ${JSON.stringify(t)}`);
        assert.ok(t.elsewhereMicrosPerMessage !== null && t.elsewhereMicrosPerMessage > 0, `${side}: the load generators used CPU beside the receiver: ${JSON.stringify(t)}`);
        // Each part is rounded to a µs on its own.
        const parts = t.processMicrosPerMessage! + t.databaseMicrosPerMessage + t.elsewhereMicrosPerMessage!;
        assert.ok(Math.abs(t.machineMicrosPerMessage - parts) <= 2, `${side}: the parts add up to the machine's CPU per message: ${JSON.stringify(t)}`);
      }
    }
    for (const id of ['small.storeOnlyMessagesPerSecond', 'small.storeRowsMessagesPerSecond']) {
      const reference = report.scenarios.smallMessages!.figures.find((f) => f.id === id);
      assert.ok(reference && reference.value > 0, `${id}: the reference receiver acknowledged small messages`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
