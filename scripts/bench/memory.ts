import { BenchChild } from './child.js';
import { publishLarge } from './bulk.js';
import { timed, type BenchContext } from './context.js';
import { LARGE_MQTT_START_UTC_MS, LARGE_REST_START_UTC_MS, type BulkSpec } from './hae-payload.js';
import type { CpuUse } from './machine.js';
import { MqttLoad } from './mqtt-load.js';
import { figure, type Figure, type ScenarioResult } from './report.js';
import { restartDaemon, waitDrained, waitProcessed } from './rig.js';
import { RssWatch, rssMiB } from './rss.js';

// The target is 600 MB (decimal, as the issue states it): 572.2 MiB, the unit RSS is reported in.
const PEAK_LIMIT_MB = 600;
const PEAK_LIMIT_MIB = Math.round((PEAK_LIMIT_MB * 1e6 * 10) / 2 ** 20) / 10;
// Growth over the soak that still counts as noise: 20 MiB or 10 % of the early figure, whichever is larger.
const NOISE_MIB = 20;
const NOISE_FRACTION = 0.1;

const r1 = (x: number) => Math.round(x * 10) / 10;

interface LargeRun {
  transport: 'mqtt' | 'rest';
  payloadBytes: number;
  idleRssMiB: number;
  peakMiB: number;
  peakSampledMiB: number;
  peakKernelMiB: number | null;
  rssSamples: number;
  secondsToProcessed: number;
  status: string;
}

async function largePayload(ctx: BenchContext, cpu: Record<string, CpuUse>, sender: BenchChild, transport: 'mqtt' | 'rest', startUtcMs: number): Promise<LargeRun> {
  const { rig, options, log } = ctx;
  const perSample = await sender.request<number>({ type: 'bytesPerSample', spec: { samples: 0, startUtcMs } });
  const spec: BulkSpec = { samples: Math.round(options.largePayloadBytes / perSample), startUtcMs };
  const built = await sender.request<{ bytes: number; sha256: string }>({ type: 'build', spec });
  await restartDaemon(rig);
  const pid = rig.daemon.pid!;
  const idleRssMiB = rssMiB(pid) ?? NaN;
  const watch = new RssWatch(pid);
  log(`scenario 4: ${(built.bytes / 1e6).toFixed(0)} MB over ${transport} (daemon RSS ${idleRssMiB.toFixed(0)} MiB before)`);
  const timeoutMs = Math.max(60_000, (spec.samples / 10_000) * 1000);
  const { processed, t0 } = await timed(ctx, cpu, `${transport} ${(built.bytes / 1e6).toFixed(0)} MB`, async () => {
    watch.start();
    try {
      const processing = waitProcessed(rig.sql, rig.userId, built.sha256, timeoutMs);
      const sent =
        transport === 'mqtt'
          ? await publishLarge(sender, rig.daemon.wsUrl, rig.key, 'health/bench/large')
          : await sender.request<{ t0: number; status: number }>({ type: 'rest', url: rig.daemon.httpUrl, key: rig.key });
      if ('status' in sent && (sent.status < 200 || sent.status > 299)) throw new Error(`the daemon answered ${sent.status} to the large REST payload`);
      return { processed: await processing, t0: sent.t0 };
    } finally {
      watch.stop();
    }
  });
  const peak = watch.stop();
  await sender.request({ type: 'drop' });
  if (!processed) throw new Error(`the large ${transport} payload was not processed within ${timeoutMs / 1000} s`);
  log(`scenario 4: ${transport}: peak RSS ${peak.peakMiB.toFixed(0)} MiB`);
  return {
    transport,
    payloadBytes: built.bytes,
    idleRssMiB: r1(idleRssMiB),
    peakMiB: r1(peak.peakMiB),
    peakSampledMiB: r1(peak.peakSampledMiB),
    peakKernelMiB: peak.peakKernelMiB === null ? null : r1(peak.peakKernelMiB),
    rssSamples: peak.samples,
    secondsToProcessed: Math.round(processed.seenAt - t0) / 1000,
    status: processed.status,
  };
}

/** Scenario-2 load for the soak; RSS averaged over a window at the early mark and at the end. */
async function soak(ctx: BenchContext, cpu: Record<string, CpuUse>) {
  const { rig, options, log } = ctx;
  const seconds = options.soakMinutes * 60;
  const earlySeconds = Math.min(60, seconds / 2);
  const windowSeconds = Math.min(10, seconds / 10);
  await restartDaemon(rig);
  const load = await MqttLoad.open(rig.daemon.wsUrl, rig.key, options.mqttClients, 'bench-soak');
  const watch = new RssWatch(rig.daemon.pid!);
  try {
    log(`scenario 4: soak, ${options.mqttClients} clients for ${seconds} s`);
    let started = 0;
    const result = await timed(ctx, cpu, 'soak', () => {
      watch.start();
      started = performance.now() + 200; // the load starts 200 ms after run() is called
      return load.run(seconds);
    });
    const ended = started + seconds * 1000;
    watch.stop();
    const earlyAt = started + earlySeconds * 1000;
    const early = watch.meanBetween(earlyAt - windowSeconds * 1000, earlyAt);
    const end = watch.meanBetween(ended - windowSeconds * 1000, ended);
    log(`scenario 4: soak RSS ${early.toFixed(0)} MiB after ${earlySeconds} s, ${end.toFixed(0)} MiB after ${seconds} s`);
    const backlog = await waitDrained(rig.sql, 120_000);
    return {
      seconds,
      earlySeconds,
      windowSeconds,
      early,
      end,
      messages: result.acked,
      messagesPerSecond: Math.round(result.messagesPerSecond),
      errors: result.errors,
      pubackP99Ms: Math.round(result.latency.p99Ms * 10) / 10,
      backlogSeconds: Math.round(backlog.seconds * 10) / 10,
      backlogDrained: backlog.drained,
      unprocessedAfterBacklogWait: backlog.pending,
    };
  } finally {
    watch.stop();
    await load.close();
  }
}

/**
 * Scenario 4: the daemon's memory: peak RSS for one large payload per transport, and RSS growth
 * under a soak. Each of the three starts with a freshly restarted daemon.
 */
export async function runMemory(ctx: BenchContext): Promise<ScenarioResult> {
  const cpu: Record<string, CpuUse> = {};
  const sender = BenchChild.start('sender-child.js', 'payload sender', { maxOldSpaceMiB: 4096 });
  let runs: LargeRun[];
  try {
    runs = [await largePayload(ctx, cpu, sender, 'mqtt', LARGE_MQTT_START_UTC_MS), await largePayload(ctx, cpu, sender, 'rest', LARGE_REST_START_UTC_MS)];
  } finally {
    await sender.stop();
  }
  const s = await soak(ctx, cpu);
  const growth = s.end - s.early;
  const allowed = Math.max(NOISE_MIB, NOISE_FRACTION * s.early);
  const figures: Figure[] = runs.map((r) =>
    figure({
      id: `memory.peak.${r.transport}`,
      label: `peak RSS, ${(r.payloadBytes / 1e6).toFixed(0)} MB over ${r.transport === 'mqtt' ? 'MQTT' : 'REST'} (idle ${r.idleRssMiB.toFixed(0)} MiB)`,
      value: r.peakMiB,
      unit: 'MiB',
      better: 'lower',
      ceiling: { value: PEAK_LIMIT_MIB, label: `${PEAK_LIMIT_MB} MB limit` },
      target: { rule: `<= ${PEAK_LIMIT_MB} MB (${PEAK_LIMIT_MIB} MiB)`, pass: r.peakMiB <= PEAK_LIMIT_MIB },
    }),
  );
  figures.push(
    figure({
      id: 'memory.soak',
      label: `RSS after ${(s.seconds / 60).toFixed(1)} min of scenario-2 load (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MiB)`,
      value: r1(s.end),
      unit: 'MiB',
      better: 'lower',
      ceiling: { value: r1(s.early), label: `after ${s.earlySeconds} s` },
      target: { rule: `growth <= max(${NOISE_MIB} MiB, ${NOISE_FRACTION * 100} %)`, pass: growth <= allowed },
    }),
  );
  return {
    name: '4 memory',
    cpu,
    figures,
    details: {
      largePayloads: runs,
      soak: { ...s, early: r1(s.early), end: r1(s.end), growthMiB: r1(growth), growthPercent: r1((growth / s.early) * 100), allowedGrowthMiB: r1(allowed) },
      rssSampling: 'VmRSS every 50 ms, and VmHWM after writing 5 to /proc/PID/clear_refs',
    },
  };
}
