import type { SoakResult } from './load.js';
import type { KillReport, OutageReport } from './faults.js';
import type { Verdict } from './verify.js';

export interface ChaosResult {
  ok: boolean;
  failures: string[];
  runId: string;
  seed: number;
  database: string;
  durationSeconds: number;
  options: { kills: number; outages: number; connections: number; soakSeconds: number; soakRate: number; quick: boolean };
  kills: KillReport;
  outages: OutageReport;
  soak: SoakResult | null;
  payloads: Verdict;
  rest: Record<string, number>;
  rssPeakMiB: number;
  rssPeakMiBByPhase: Record<string, number>;
  daemon: { starts: number; sigtermExitCode: number | null; drainSeconds: number; drained: boolean };
}

const mib = (kib: number | null) => (kib === null ? 'n/a' : `${(kib / 1024).toFixed(1)} MiB`);
const mark = (good: boolean) => (good ? 'ok' : 'FAIL');

/** The invariant checks; any entry here makes the run fail. */
export function failuresOf(v: Verdict, sigtermExitCode: number | null, drained: boolean): string[] {
  const failures: string[] = [];
  if (v.lost !== 0) failures.push(`${v.lost} acknowledged payloads are not stored`);
  if (v.duplicated !== 0) failures.push(`${v.duplicated} payloads or sample rows are stored more than once`);
  if (v.samplesMissing !== 0) failures.push(`${v.samplesMissing} processed payloads lack sample rows`);
  if (!drained) failures.push(`the daemon did not process everything in time (${v.notProcessed} payloads not processed)`);
  if (sigtermExitCode !== 0) failures.push(`the daemon exited with ${sigtermExitCode ?? 'a signal'} on SIGTERM (expected 0)`);
  return failures;
}

export function renderTable(r: ChaosResult): string {
  const p = r.payloads;
  const k = r.kills;
  const kinds = Object.entries(k.byKind).map(([kind, n]) => `${kind} ${n}`).join(', ');
  const rows: Array<[string, string]> = [
    ['kill points (SIGKILL + restart)', `${k.done}/${k.planned} (${kinds}); restart max ${k.restartSeconds.max.toFixed(1)} s`],
    ['database outages', `${r.outages.done}/${r.outages.planned}, ${r.outages.cutSeconds.toFixed(1)} s cut in all, ready again within ${r.outages.maxRecoverySeconds.toFixed(1)} s${r.outages.notRecovered ? `, NOT ready again after ${r.outages.notRecovered}` : ''}`],
    ['payloads published (distinct)', String(p.published)],
    ['acknowledged (PUBACK / REST 2xx)', String(p.acknowledged)],
    ['stored (distinct, in raw_ingestions)', `${p.stored} (${p.storedUnacknowledged} of them never acknowledged)`],
    ['re-received identical bytes', String(p.reReceived)],
    ['LOST (acked, not stored)', `${p.lost}  ${mark(p.lost === 0)}`],
    ['DUPLICATED (raw rows / sample rows)', `${p.duplicated} (${p.duplicatedRaw} / ${p.duplicatedSamples})  ${mark(p.duplicated === 0)}`],
    ['processed without all sample rows', `${p.samplesMissing}  ${mark(p.samplesMissing === 0)}`],
    ['failed / not processed', `${p.failed} / ${p.notProcessed}`],
    ['QoS 0 during outages: published / stored', `${p.qos0DuringOutage.published} / ${p.qos0DuringOutage.stored}`],
    ['REST answers', Object.entries(r.rest).map(([s, n]) => `${s}: ${n}`).join(', ') || 'none'],
  ];
  if (r.soak) {
    const s = r.soak;
    rows.push(
      ['load: connections open (TCP + WS)', `${s.opened}/${s.target} in ${s.connectSeconds.toFixed(1)} s (failed ${s.failedToOpen}); dropped ${s.dropped}; open at end ${s.openAtEnd}`],
      ['load: soak', `${s.seconds.toFixed(0)} s, ${s.published} published, ${s.acked} acked`],
      ['daemon RSS during soak: start / end / peak', `${mib(s.rssStartKiB)} / ${mib(s.rssEndKiB)} / ${mib(s.rssPeakKiB)}`],
    );
  }
  rows.push(
    ['daemon RSS peak (whole run)', `${r.rssPeakMiB.toFixed(1)} MiB (${Object.entries(r.rssPeakMiBByPhase).map(([ph, v]) => `${ph} ${v.toFixed(0)}`).join(', ')})`],
    ['daemon starts / SIGTERM exit code', `${r.daemon.starts} / ${r.daemon.sigtermExitCode ?? 'none'}  ${mark(r.daemon.sigtermExitCode === 0)}`],
    ['drain after the load', `${r.daemon.drainSeconds.toFixed(1)} s  ${mark(r.daemon.drained)}`],
    ['duration', `${r.durationSeconds.toFixed(0)} s`],
    ['result', r.ok ? 'PASS' : `FAIL: ${r.failures.join('; ')}`],
  );
  const width = Math.max(...rows.map(([a]) => a.length));
  const head = `self-sensored chaos run ${r.runId} (seed ${r.seed}, database from ${r.database}${r.options.quick ? ', --quick' : ''})`;
  return [head, '-'.repeat(head.length), ...rows.map(([a, b]) => `${a.padEnd(width)}  ${b}`)].join('\n');
}
