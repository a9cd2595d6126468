/**
 * `npm run bench`: measures the daemon (a child process, reached only through MQTT over
 * WebSocket, REST and the database) and prints each figure beside a ceiling measured in the
 * same run on the same machine and database. See docs/performance.md.
 */
import { writeFile } from 'node:fs/promises';
import { runBulk } from './bench/bulk.js';
import type { BenchContext } from './bench/context.js';
import { machineFacts } from './bench/machine.js';
import { runMemory } from './bench/memory.js';
import { parseOptions, usage, UsageError, type BenchOptions } from './bench/options.js';
import { renderTable, type BenchReport } from './bench/report.js';
import { runRest } from './bench/rest.js';
import { buildRig, type Rig } from './bench/rig.js';
import { runSmallMessages } from './bench/small-messages.js';

const started = Date.now();
const log = (line: string) => process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(0)}s] ${line}\n`);

let activeRig: Rig | null = null;

async function run(options: BenchOptions): Promise<BenchReport> {
  const rig = await buildRig(log);
  activeRig = rig;
  try {
    const ctx: BenchContext = { rig, options, log, notes: [] };
    const report: BenchReport = {
      machine: await machineFacts(rig.sql),
      database: { source: rig.db.source },
      options: { ...options, scenarios: [...options.scenarios].sort() },
      startedAt: new Date(started).toISOString(),
      durationSeconds: 0,
      scenarios: {},
      notes: ctx.notes,
      daemonLogTail: [],
    };
    if (options.scenarios.has(1)) report.scenarios.bulk = await runBulk(ctx);
    if (options.scenarios.has(2)) report.scenarios.smallMessages = await runSmallMessages(ctx);
    if (options.scenarios.has(3)) report.scenarios.rest = await runRest(ctx);
    if (options.scenarios.has(4)) report.scenarios.memory = await runMemory(ctx);
    report.durationSeconds = Math.round((Date.now() - started) / 1000);
    report.daemonLogTail = rig.daemon.logTail.slice(-20);
    if (report.daemonLogTail.length > 0) ctx.notes.push(`the daemon logged ${rig.daemon.logTail.length} warning or error lines (the last ones are in the JSON)`);
    return report;
  } finally {
    await rig.close();
    activeRig = null;
  }
}

/** A hard limit for the whole run, generous for the planned work. */
function budgetMs(o: BenchOptions): number {
  const perScenario = 180_000 + o.samples / 2 + o.durationSeconds * 8_000 + o.restSearchMaxSteps * (o.restSearchStepSeconds + 12) * 2_000;
  return 300_000 + 4 * perScenario + o.soakMinutes * 60_000;
}

async function main(argv: string[]): Promise<number> {
  let options: BenchOptions | 'help';
  try {
    options = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n\n${usage}\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const limit = budgetMs(options);
  const watchdog = setTimeout(() => {
    log(`the run exceeded its limit of ${(limit / 1000).toFixed(0)} s: giving up`);
    // The daemon is not a forked child: it would outlive us.
    void (activeRig?.daemon.kill() ?? Promise.resolve()).finally(() => process.exit(3));
  }, limit);
  watchdog.unref();
  const report = await run(options);
  clearTimeout(watchdog);
  process.stdout.write(`\n${renderTable(report)}\n`);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (options.out) await writeFile(options.out, json);
  else process.stdout.write(`\n${json}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
