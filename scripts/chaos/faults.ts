import type { TcpProxy } from '../../test/helpers/tcp-proxy.js';
import type { Daemon } from './daemon.js';
import type { Ledger } from './ledger.js';
import type { LargeSender } from './publishers.js';
import { between, pollUntil, sleep, withTimeout, type Random } from './util.js';
import { errorMessage } from '../../src/errors.js';

/** Where in the daemon's work a kill lands. */
export type KillKind = 'anytime' | 'mid-large-payload' | 'during-processing' | 'during-outage';

export interface KillReport {
  planned: number;
  done: number;
  byKind: Record<KillKind, number>;
  restartSeconds: { max: number; total: number };
}

export interface OutageReport {
  planned: number;
  done: number;
  cutSeconds: number;
  /** Longest wait for /ready to answer 200 again after restore(). */
  maxRecoverySeconds: number;
  /** Outages after which /ready did not answer 200 within the time allowed. */
  notRecovered: number;
}

async function readyBody(daemon: Daemon): Promise<string> {
  try {
    return await (await fetch(`${daemon.httpUrl}/ready`, { signal: AbortSignal.timeout(2_000) })).text();
  } catch (err) {
    return errorMessage(err);
  }
}

const READY_TIMEOUT_MS = 60_000;

function pickKind(rng: Random): KillKind {
  const x = rng();
  if (x < 0.5) return 'anytime';
  if (x < 0.7) return 'mid-large-payload';
  if (x < 0.85) return 'during-processing';
  return 'during-outage';
}

/** Brings the daemon to the moment chosen for the kill. */
async function approach(kind: KillKind, rng: Random, large: LargeSender, proxy: TcpProxy): Promise<void> {
  switch (kind) {
    case 'anytime':
      return sleep(between(rng, 200, 3000));
    case 'mid-large-payload':
      // The bytes are still on the way or being parsed/stored when the kill comes.
      await sleep(between(rng, 200, 1000));
      void large.send();
      return sleep(between(rng, 0, 250));
    case 'during-processing': {
      // Acknowledged (stored raw), now being turned into rows in the background.
      await sleep(between(rng, 200, 1000));
      await withTimeout(large.send(), 20_000, false);
      return sleep(between(rng, 0, 400));
    }
    case 'during-outage':
      // Payloads go to the spool; the kill leaves them there for the next start to replay.
      await sleep(between(rng, 200, 1000));
      // (Not flagged as an outage in the ledger: QoS 0 sent here may die with the daemon unacknowledged.)
      proxy.cut();
      return sleep(between(rng, 500, 2500));
  }
}

/** Kill points: SIGKILL at a random moment, restart on the same DATA_DIR and database, again. */
export async function runKills(opts: { count: number; deadline: number; rng: Random; daemon: Daemon; proxy: TcpProxy; large: LargeSender; log: (line: string) => void }): Promise<KillReport> {
  const { rng, daemon, proxy, large } = opts;
  const report: KillReport = { planned: opts.count, done: 0, byKind: { anytime: 0, 'mid-large-payload': 0, 'during-processing': 0, 'during-outage': 0 }, restartSeconds: { max: 0, total: 0 } };
  for (let i = 0; i < opts.count && Date.now() < opts.deadline; i++) {
    await large.connected(10_000);
    const kind = pickKind(rng);
    await approach(kind, rng, large, proxy);
    await daemon.kill();
    // The database must be back for the daemon to start: it then replays what it spooled.
    proxy.restore();
    report.done++;
    report.byKind[kind]++;
    const started = Date.now();
    await daemon.start(READY_TIMEOUT_MS);
    const seconds = (Date.now() - started) / 1000;
    report.restartSeconds.max = Math.max(report.restartSeconds.max, seconds);
    report.restartSeconds.total += seconds;
    opts.log(`kill ${report.done}/${opts.count} (${kind}); restarted in ${seconds.toFixed(1)} s`);
  }
  return report;
}

/** Outages: PostgreSQL unreachable for 1–5 s while the publishers go on, then back. */
export async function runOutages(opts: { count: number; deadline: number; rng: Random; daemon: Daemon; proxy: TcpProxy; ledger: Ledger; log: (line: string) => void }): Promise<OutageReport> {
  const { rng, daemon, proxy, ledger } = opts;
  const report: OutageReport = { planned: opts.count, done: 0, cutSeconds: 0, maxRecoverySeconds: 0, notRecovered: 0 };
  for (let i = 0; i < opts.count && Date.now() < opts.deadline; i++) {
    await sleep(between(rng, 500, 2000));
    const cutMs = between(rng, 1000, 5000);
    proxy.cut();
    ledger.outage = true;
    await sleep(cutMs);
    proxy.restore();
    ledger.outage = false;
    const restored = Date.now();
    const ready = await pollUntil(async () => (await fetch(`${daemon.httpUrl}/ready`, { signal: AbortSignal.timeout(2_000) })).status === 200, READY_TIMEOUT_MS);
    const recovery = (Date.now() - restored) / 1000;
    report.done++;
    if (!ready) {
      // Recorded, not thrown: the final check still shows what was kept, and the report says why.
      report.notRecovered++;
      opts.log(`the daemon was not ready ${READY_TIMEOUT_MS / 1000} s after the database came back: ${await readyBody(daemon)}\n${daemon.logTail.slice(-15).join('\n')}`);
      continue;
    }
    report.cutSeconds += cutMs / 1000;
    report.maxRecoverySeconds = Math.max(report.maxRecoverySeconds, recovery);
    opts.log(`outage ${report.done}/${opts.count}: cut ${(cutMs / 1000).toFixed(1)} s, ready again after ${recovery.toFixed(1)} s`);
  }
  return report;
}
