/**
 * `npm run chaos`: the durability tests' faults, repeated and for longer. The real daemon runs as
 * a child behind a TCP proxy to PostgreSQL; it is SIGKILLed at random moments and restarted,
 * the database is cut off and restored, and a thousand MQTT connections are held open for a
 * soak, while publishers keep their own record of every distinct payload and its
 * acknowledgement. At the end the database must hold every acknowledged payload exactly once.
 *
 * Traffic goes to 127.0.0.1 only; every loop has a count and a deadline.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { TcpProxy } from '../test/helpers/tcp-proxy.js';
import { Daemon, RssSampler } from './chaos/daemon.js';
import { runKills, runOutages, type KillReport, type OutageReport } from './chaos/faults.js';
import { Ledger } from './chaos/ledger.js';
import { soak, type SoakResult } from './chaos/load.js';
import { parseOptions, usage, UsageError, type ChaosOptions } from './chaos/options.js';
import { LargeSender, MqttStream, RestPoster, type Publisher } from './chaos/publishers.js';
import { failuresOf, renderTable, type ChaosResult } from './chaos/report.js';
import { createRunDatabase, prepareSchema, type RunDatabase } from './chaos/target.js';
import { freePort, pollUntil, seededRandom, sleep, withTimeout, type Random } from './chaos/util.js';
import { errorMessage } from '../src/errors.js';
import { pendingCount, verify } from './chaos/verify.js';

// Points in a large payload: ~1.5 MB of JSON, long enough to parse and write that kills land inside.
const LARGE_POINTS = 20_000;
const START_TIMEOUT_MS = 60_000;
const DRAIN_TIMEOUT_MS = 240_000;

const started = Date.now();
const log = (line: string) => process.stderr.write(`[chaos +${((Date.now() - started) / 1000).toFixed(0)}s] ${line}\n`);

/** Undo steps, run in reverse order whatever happens. */
class Cleanup {
  readonly #steps: Array<{ what: string; run: () => Promise<unknown> }> = [];
  add(what: string, run: () => Promise<unknown>): void {
    this.#steps.push({ what, run });
  }
  async runAll(): Promise<void> {
    for (const step of this.#steps.reverse()) {
      await withTimeout(step.run(), 30_000, undefined).catch((err: unknown) => log(`cleanup (${step.what}) failed: ${errorMessage(err)}`));
    }
    this.#steps.length = 0;
  }
}

interface Rig {
  db: RunDatabase;
  sql: pg.Pool;
  key: string;
  proxy: TcpProxy;
  daemon: Daemon;
  rss: RssSampler;
}

/** Database, key, proxy, DATA_DIR and the first daemon start. */
async function buildRig(cleanup: Cleanup): Promise<Rig> {
  const db = await createRunDatabase(process.env);
  cleanup.add('drop the run database', () => db.drop());
  log(`database ${db.name} (server from ${db.source})`);
  const sql = new pg.Pool({ connectionString: db.url, max: 3 });
  cleanup.add('close the checking pool', () => sql.end());
  const { key } = await prepareSchema(sql);

  const target = new URL(db.url);
  const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  await proxy.start();
  cleanup.add('stop the proxy', () => proxy.stop());
  const viaProxy = new URL(db.url);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);

  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'ss-chaos-data-'));
  await chmod(dataDir, 0o711);
  cleanup.add('remove DATA_DIR', () => rm(dataDir, { recursive: true, force: true }));
  const daemon = new Daemon({ databaseUrl: viaProxy.toString(), dataDir, httpPort: await freePort(), tcpPort: await freePort() });
  cleanup.add('kill the daemon if still running', () => daemon.kill());
  const rss = new RssSampler(daemon);
  cleanup.add('stop RSS sampling', async () => rss.stop());
  await daemon.start(START_TIMEOUT_MS);
  log(`daemon ready at ${daemon.httpUrl} and ${daemon.tcpUrl}`);
  return { db, sql, key, proxy, daemon, rss };
}

/** The streams that run through the kill and outage phases: QoS 1 and QoS 0 over TCP and WebSocket, and REST. */
function startPublishers(rig: Rig, ledger: Ledger, deadline: number): { publishers: Publisher[]; rest: RestPoster; running: Promise<void>[] } {
  const { daemon, key } = rig;
  const rest = new RestPoster({ httpUrl: daemon.httpUrl, key, perSecond: 3, ledger });
  const publishers: Publisher[] = [
    new MqttStream({ url: daemon.tcpUrl, key, transport: 'mqtt-tcp', qos: 1, perSecond: 10, window: 5, ledger }),
    new MqttStream({ url: daemon.wsUrl, key, transport: 'mqtt-ws', qos: 1, perSecond: 10, window: 5, ledger }),
    new MqttStream({ url: daemon.tcpUrl, key, transport: 'mqtt-tcp', qos: 0, perSecond: 4, window: 1, ledger }),
    new MqttStream({ url: daemon.wsUrl, key, transport: 'mqtt-ws', qos: 0, perSecond: 4, window: 1, ledger }),
    rest,
  ];
  return { publishers, rest, running: publishers.map((p) => p.run(deadline)) };
}

/** Waits until every stored payload is processed and the spool is empty. */
async function drain(rig: Rig, timeoutMs: number): Promise<{ drained: boolean; seconds: number }> {
  const t0 = Date.now();
  const drained = await pollUntil(async () => (await pendingCount(rig.sql)) === 0 && (await rig.daemon.spoolRecords()) === 0, timeoutMs, 500);
  return { drained, seconds: (Date.now() - t0) / 1000 };
}

const noKills = (planned: number): KillReport => ({ planned, done: 0, byKind: { anytime: 0, 'mid-large-payload': 0, 'during-processing': 0, 'during-outage': 0 }, restartSeconds: { max: 0, total: 0 } });
const noOutages = (planned: number): OutageReport => ({ planned, done: 0, cutSeconds: 0, maxRecoverySeconds: 0, notRecovered: 0 });

async function runPhases(opts: ChaosOptions, rig: Rig, ledger: Ledger, rng: Random): Promise<{ kills: KillReport; outages: OutageReport; soak: SoakResult | null; rest: Record<string, number> }> {
  const killDeadline = Date.now() + opts.kills * 20_000 + 30_000;
  const outageDeadline = killDeadline + opts.outages * 30_000 + 30_000;
  const streams = startPublishers(rig, ledger, outageDeadline);
  const large = new LargeSender({ url: rig.daemon.tcpUrl, key: rig.key, points: LARGE_POINTS, ledger });
  await sleep(1_000);

  let kills = noKills(opts.kills);
  let outages = noOutages(opts.outages);
  try {
    ledger.phase = rig.rss.phase = 'kills';
    log(`phase 1: ${opts.kills} kill points`);
    kills = await runKills({ count: opts.kills, deadline: killDeadline, rng, daemon: rig.daemon, proxy: rig.proxy, large, log });
    ledger.phase = rig.rss.phase = 'outages';
    log(`phase 2: ${opts.outages} database outages`);
    outages = await runOutages({ count: opts.outages, deadline: outageDeadline, rng, daemon: rig.daemon, proxy: rig.proxy, ledger, log });
    await sleep(1_000);
  } finally {
    rig.proxy.restore();
    ledger.outage = false;
    await Promise.all([...streams.publishers.map((p) => p.stop(20_000)), large.stop(20_000)]);
    await withTimeout(Promise.all(streams.running), 20_000, []);
  }

  let soakResult: SoakResult | null = null;
  if (opts.connections > 0) {
    ledger.phase = rig.rss.phase = 'soak';
    log(`phase 3: ${opts.connections} connections held for ${opts.soakSeconds} s`);
    soakResult = await soak({ daemon: rig.daemon, key: rig.key, ledger, rss: rig.rss, rng, connections: opts.connections, seconds: opts.soakSeconds, perSecond: opts.soakRate });
    log(`soak done: ${soakResult.opened} connections, ${soakResult.dropped} dropped`);
  }
  return { kills, outages, soak: soakResult, rest: Object.fromEntries(streams.rest.statuses) };
}

async function run(opts: ChaosOptions): Promise<ChaosResult> {
  const cleanup = new Cleanup();
  const rng = seededRandom(opts.seed);
  try {
    const rig = await buildRig(cleanup);
    const ledger = new Ledger();
    const phases = await runPhases(opts, rig, ledger, rng);

    rig.rss.phase = 'drain';
    log('waiting for the daemon to process everything');
    const { drained, seconds: drainSeconds } = await drain(rig, opts.quick ? 45_000 : DRAIN_TIMEOUT_MS);
    rig.rss.sample();
    rig.rss.stop();
    const sigtermExitCode = await rig.daemon.stop(30_000);
    log(`daemon stopped with SIGTERM: exit code ${sigtermExitCode}`);

    const payloads = await verify(rig.sql, ledger);
    const failures = failuresOf(payloads, sigtermExitCode, drained);
    if (phases.outages.notRecovered > 0) failures.push(`${phases.outages.notRecovered} outages after which the daemon did not become ready again`);
    if (failures.length > 0) log(`daemon's last log lines:\n${rig.daemon.logTail.slice(-30).join('\n')}`);
    const byPhase = Object.fromEntries([...rig.rss.peaks].map(([phase, kib]) => [phase, kib / 1024]));
    return {
      ok: failures.length === 0,
      failures,
      runId: ledger.runId,
      seed: opts.seed,
      database: rig.db.source,
      durationSeconds: (Date.now() - started) / 1000,
      options: { kills: opts.kills, outages: opts.outages, connections: opts.connections, soakSeconds: opts.soakSeconds, soakRate: opts.soakRate, quick: opts.quick },
      ...phases,
      payloads,
      rssPeakMiB: rig.rss.peak / 1024,
      rssPeakMiBByPhase: byPhase,
      daemon: { starts: rig.daemon.starts, sigtermExitCode, drainSeconds, drained },
    };
  } finally {
    await cleanup.runAll();
  }
}

/** The run's hard limit: generous for the planned work, but never unbounded. */
function budgetMs(opts: ChaosOptions): number {
  return opts.kills * 20_000 + opts.outages * 30_000 + opts.soakSeconds * 1000 + 120_000 + DRAIN_TIMEOUT_MS + 180_000;
}

async function main(argv: string[]): Promise<number> {
  let opts: ChaosOptions | 'help';
  try {
    opts = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n\n${usage}\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const limit = budgetMs(opts);
  const watchdog = setTimeout(() => {
    log(`the run exceeded its limit of ${(limit / 1000).toFixed(0)} s: giving up`);
    process.exit(3);
  }, limit);
  log(`seed ${opts.seed}: ${opts.kills} kills, ${opts.outages} outages, ${opts.connections} connections for ${opts.soakSeconds} s`);
  const result = await run(opts);
  clearTimeout(watchdog);
  process.stdout.write(`\n${renderTable(result)}\n`);
  for (const [what, list] of Object.entries(result.payloads.examples)) if (list.length > 0) process.stdout.write(`${what}: ${list.join(', ')}\n`);
  const json = JSON.stringify(result, null, 2);
  if (opts.out) await writeFile(opts.out, `${json}\n`);
  else process.stdout.write(`\n${json}\n`);
  return result.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  },
);
