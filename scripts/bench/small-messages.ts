import { BenchChild } from './child.js';
import { timed, type BenchContext } from './context.js';
import { combinedCpu, mainThreadSchedule, processCpuSeconds, type CpuUse } from './machine.js';
import { combinedRuns, MqttLoad, type MqttLoadResult } from './mqtt-load.js';
import { figure, round2, type Figure, type ScenarioResult } from './report.js';
import { waitDrained } from './rig.js';

type MeasuredLoad = MqttLoadResult & { backlogSeconds?: number; processedPerSecond?: number | null };

/** The receivers of scenario 2: the daemon, its ceiling and the two references. */
type Side = 'bare broker' | 'daemon' | 'store-rows receiver' | 'store-only receiver';

/**
 * The receiver's main thread during a slice, in seconds: running, and ready but waiting for a
 * core. It says where a receiver's CPU goes; the rate follows the whole machine's CPU per message
 * (MainThreadUse.machineMicrosPerMessage; docs/performance.md, "What bounds the rate").
 */
interface MainThread {
  runSeconds: number;
  waitSeconds: number;
  /** The whole receiver process (every thread: collectors, libuv's pool). */
  processSeconds: number | null;
}

/** A side's main thread over all its slices: shares of a core, and CPU per acknowledged message. */
interface MainThreadUse {
  running: number;
  waiting: number;
  cpuMicrosPerMessage: number;
  /** Its whole process's CPU per message, and the database backends' (the bench's queries between slices are not in a slice). */
  processMicrosPerMessage: number | null;
  databaseMicrosPerMessage: number;
  /**
   * The whole machine during the side's slices: cores busy, and busy CPU per message. The rest of
   * it, beyond the receiver and its backends, is elsewhere: the load generators, the server's
   * shared workers (WAL writer, checkpointer), kernel threads, other tenants. The rate is the busy
   * cores over the machine's CPU per message (docs/performance.md, "What bounds the rate").
   */
  machineBusyCores: number;
  machineMicrosPerMessage: number;
  elsewhereMicrosPerMessage: number | null;
}

/** One slice of a side's run, as the JSON report lists it. */
interface Slice {
  side: Side;
  messagesPerSecond: number;
  p99Ms: number;
  cpu: CpuUse;
  mainThread: MainThread | null;
}

/** The order of one round of slices (see measureInterleaved); each round runs it forwards, then backwards. */
const ROUND: readonly Side[] = ['bare broker', 'daemon', 'store-rows receiver', 'store-only receiver'];
/** Slices of each side's run: ROUND forwards and backwards, twice. */
const SLICES_PER_SIDE = 4;
/**
 * Each slice's clients start together, so its first payloads all arrive at once: a group commit
 * then needs a few groups to spread them out, and four such starts in place of one would weigh
 * on the daemon's p99. Each slice first publishes this long unmeasured.
 */
const sliceRampSeconds = (ctx: BenchContext): number => (ctx.options.quick ? 0.1 : 1);

/**
 * Every receiver under the same load, each for the full duration, in slices taken in turn
 * (ROUND forwards, then backwards, twice over). The host's speed drifts by tens of percent within
 * minutes; measured one after the other, a minute apart, the receivers would each see a
 * different host, and the ratios would count that drift for or against the daemon. Interleaved
 * this way they see the same host, and a steady drift cancels out (each side's slices lie
 * symmetrically around the middle). Each side keeps its own connections open throughout.
 */
async function measureInterleaved(
  ctx: BenchContext,
  cpu: Record<string, CpuUse>,
  urls: Record<Side, string>,
  pids: Record<Side, number | null>,
): Promise<{ results: Record<Side, MeasuredLoad>; slices: Slice[]; mainThreads: Partial<Record<Side, MainThreadUse>> }> {
  const { options, log, rig } = ctx;
  const loads = new Map<Side, MqttLoad>();
  try {
    for (const side of ROUND) {
      loads.set(side, await MqttLoad.open(urls[side], side === 'daemon' ? rig.key : 'none', options.mqttClients, `bench-${side.replace(/\W+/g, '-')}`));
      // A short warm-up (JIT, connection pools), untimed.
      await loads.get(side)!.run(Math.min(3, options.durationSeconds / 2));
    }
    const runs = new Map<Side, MqttLoadResult[]>(ROUND.map((side) => [side, []]));
    const slices: Slice[] = [];
    const order = Array.from({ length: SLICES_PER_SIDE / 2 }, () => [...ROUND, ...[...ROUND].reverse()]).flat();
    const sliceCpu: Record<string, CpuUse> = {};
    for (const side of order) {
      // Every slice starts from a settled database (timed): the writers' slices leave a
      // checkpoint and autovacuum behind, which would otherwise run in whichever slice comes next.
      const step = `scenario 2, ${side}`;
      const pid = pids[side];
      const before = pid === null ? null : mainThreadSchedule(pid);
      const processBefore = pid === null ? null : processCpuSeconds(pid);
      const run = await timed(ctx, sliceCpu, step, () => loads.get(side)!.run(options.durationSeconds / SLICES_PER_SIDE, sliceRampSeconds(ctx)));
      const after = pid === null ? null : mainThreadSchedule(pid);
      const processAfter = pid === null ? null : processCpuSeconds(pid);
      runs.get(side)!.push(run);
      const ms = (seconds: number): number => Math.round(seconds * 1000) / 1000;
      const processSeconds = processBefore !== null && processAfter !== null ? ms(processAfter - processBefore) : null;
      const mainThread = before && after ? { runSeconds: ms(after.runSeconds - before.runSeconds), waitSeconds: ms(after.waitSeconds - before.waitSeconds), processSeconds } : null;
      slices.push({ side, messagesPerSecond: Math.round(run.messagesPerSecond), p99Ms: Math.round(run.latency.p99Ms * 10) / 10, cpu: sliceCpu[step]!, mainThread });
    }
    const results = {} as Record<Side, MeasuredLoad>;
    for (const side of ROUND) {
      cpu[side] = combinedCpu(slices.filter((s) => s.side === side).map((s) => s.cpu));
      const r = combinedRuns(runs.get(side)!);
      results[side] = r;
      log(`scenario 2: ${side}: ${Math.round(r.messagesPerSecond)} msg/s, PUBACK p50 ${r.latency.p50Ms.toFixed(1)} ms, p99 ${r.latency.p99Ms.toFixed(1)} ms, ${r.errors} errors`);
    }
    log(`scenario 2: slices (msg/s): ${slices.map((s) => `${s.side} ${s.messagesPerSecond}`).join(', ')}`);
    const mainThreads: Partial<Record<Side, MainThreadUse>> = {};
    for (const side of ROUND) {
      const own = slices.filter((s) => s.side === side);
      if (own.length === 0 || own.some((s) => !s.mainThread)) continue;
      // Over the side's slices together: its seconds over theirs, and CPU seconds over messages.
      const sum = (pick: (s: Slice) => number): number => own.reduce((n, s) => n + pick(s), 0);
      const seconds = sum((s) => s.cpu.seconds);
      const running = sum((s) => s.mainThread!.runSeconds);
      const messages = sum((s) => s.messagesPerSecond * s.cpu.seconds);
      const perMessage = (cpuSeconds: number): number => Math.round((cpuSeconds / Math.max(1, messages)) * 1e6);
      const processSeconds = own.every((s) => s.mainThread!.processSeconds !== null) ? sum((s) => s.mainThread!.processSeconds!) : null;
      const databaseSeconds = sum((s) => s.cpu.databaseCores * s.cpu.seconds);
      const machineSeconds = sum((s) => s.cpu.machineBusyCores * s.cpu.seconds);
      mainThreads[side] = {
        running: round2(running / seconds),
        waiting: round2(sum((s) => s.mainThread!.waitSeconds) / seconds),
        cpuMicrosPerMessage: perMessage(running),
        processMicrosPerMessage: processSeconds === null ? null : perMessage(processSeconds),
        databaseMicrosPerMessage: perMessage(databaseSeconds),
        machineBusyCores: round2(machineSeconds / seconds),
        machineMicrosPerMessage: perMessage(machineSeconds),
        elsewhereMicrosPerMessage: processSeconds === null ? null : perMessage(machineSeconds - processSeconds - databaseSeconds),
      };
    }
    const described = Object.entries(mainThreads).map(
      ([side, m]) => `${side} ${m.running} running, ${m.waiting} waiting, ${m.cpuMicrosPerMessage} µs per message (process ${m.processMicrosPerMessage ?? '?'} µs, database ${m.databaseMicrosPerMessage} µs)`,
    );
    if (described.length > 0) log(`scenario 2: receivers' main threads (cores): ${described.join('; ')}`);
    const machine = Object.entries(mainThreads).map(
      ([side, m]) => `${side} ${m.machineMicrosPerMessage} µs at ${m.machineBusyCores} cores busy (receiver ${m.processMicrosPerMessage ?? '?'}, database ${m.databaseMicrosPerMessage}, elsewhere ${m.elsewhereMicrosPerMessage ?? '?'})`,
    );
    if (machine.length > 0) log(`scenario 2: the machine's CPU per message: ${machine.join('; ')}`);
    // Acknowledged means stored, not yet processed: how far processing lagged behind the acks.
    const backlog = await waitDrained(rig.sql, 300_000);
    log(`scenario 2: the daemon finished processing ${backlog.seconds.toFixed(1)} s after the load ended`);
    log(`scenario 2: daemon ingest metrics: ${await ingestMetrics(rig.daemon.httpUrl)}`);
    const daemon = results.daemon;
    results.daemon = {
      ...daemon,
      backlogSeconds: Math.round(backlog.seconds * 10) / 10,
      // What the daemon sustains end to end: acknowledged and also processed.
      processedPerSecond: backlog.drained ? Math.round(daemon.acked / (daemon.seconds + backlog.seconds)) : null,
    };
    return { results, slices, mainThreads };
  } finally {
    await Promise.all([...loads.values()].map((load) => load.close()));
  }
}

/** How the daemon wrote the load: payloads per processing transaction. */
async function ingestMetrics(httpUrl: string): Promise<string> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const value = (name: string): number => [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
  const transactions = value('self_sensored_ingest_batch_payloads_count');
  const payloads = value('self_sensored_ingest_batch_payloads_sum');
  const gc = (kind: string): string => {
    const count = value(`self_sensored_nodejs_gc_duration_seconds_count\\{kind="${kind}"\\}`);
    const seconds = value(`self_sensored_nodejs_gc_duration_seconds_sum\\{kind="${kind}"\\}`);
    return `${count} ${kind} (${seconds.toFixed(2)} s)`;
  };
  return `${transactions} processing transactions, ${(payloads / Math.max(1, transactions)).toFixed(1)} payloads each; collections since start: ${['minor', 'major', 'incremental', 'weakcb'].map(gc).join(', ')}`;
}

const rounded = ({ histogram: _, ...r }: MeasuredLoad) => ({
  ...r,
  seconds: round2(r.seconds),
  messagesPerSecond: Math.round(r.messagesPerSecond),
  latency: Object.fromEntries(Object.entries(r.latency).map(([k, v]) => [k, round2(v)])),
});

/** A reference receiver's rate beside the bare broker's; no target. */
function referenceFigure(id: string, label: string, reference: MqttLoadResult, ceiling: MqttLoadResult): Figure {
  return figure({ id, label, value: reference.messagesPerSecond, unit: 'msg/s', better: 'higher', ceiling: { value: ceiling.messagesPerSecond, label: 'bare Aedes' }, target: null });
}

/**
 * Scenario 2: many clients sending small payloads at QoS 1, each waiting for its PUBACK; against a
 * bare Aedes broker (the ceiling) and two reference receivers that commit before they acknowledge
 * (store-only-child.ts, store-rows-child.ts), in the bench's own database.
 */
export async function runSmallMessages(ctx: BenchContext): Promise<ScenarioResult> {
  const { rig, options } = ctx;
  const cpu: Record<string, CpuUse> = {};
  const bare = BenchChild.start('bare-broker-child.js', 'bare broker');
  const storeOnly = BenchChild.start('store-only-child.js', 'store-only receiver');
  const storeRows = BenchChild.start('store-rows-child.js', 'store-rows receiver');
  const tables: string[] = [];
  try {
    const { port } = await bare.request<{ port: number }>({ type: 'start' });
    const reference = async (child: BenchChild): Promise<string> => {
      const started = await child.request<{ port: number; tables: string[] }>({ type: 'start', databaseUrl: rig.db.url });
      tables.push(...started.tables);
      return `ws://127.0.0.1:${started.port}/mqtt`;
    };
    const storeOnlyUrl = await reference(storeOnly);
    const storeRowsUrl = await reference(storeRows);
    const { results, slices, mainThreads } = await measureInterleaved(
      ctx,
      cpu,
      {
        'bare broker': `ws://127.0.0.1:${port}/mqtt`,
        daemon: rig.daemon.wsUrl,
        'store-rows receiver': storeRowsUrl,
        'store-only receiver': storeOnlyUrl,
      },
      { 'bare broker': bare.pid, daemon: rig.daemon.pid, 'store-rows receiver': storeRows.pid, 'store-only receiver': storeOnly.pid },
    );
    const { daemon, 'bare broker': ceiling, 'store-rows receiver': withRows, 'store-only receiver': stored } = results;
    const label = `${options.mqttClients} clients, 1-10 samples, QoS 1`;
    const result: ScenarioResult = {
      name: '2 small messages',
      cpu,
      figures: [
        figure({
          id: 'small.messagesPerSecond',
          label: `${label}: acked messages`,
          value: daemon.messagesPerSecond,
          unit: 'msg/s',
          better: 'higher',
          ceiling: { value: ceiling.messagesPerSecond, label: 'bare Aedes' },
          target: { rule: '>= 50 % of ceiling', pass: daemon.messagesPerSecond >= 0.5 * ceiling.messagesPerSecond },
        }),
        // Not targets: what a receiver that writes the same rows before its PUBACK and no more
        // reaches, and one that only commits the bytes.
        referenceFigure('small.storeRowsMessagesPerSecond', `${label}: store-rows receiver, acked`, withRows, ceiling),
        referenceFigure('small.storeOnlyMessagesPerSecond', `${label}: store-only receiver, acked`, stored, ceiling),
        figure({
          id: 'small.pubackP50Ms',
          label: `${label}: PUBACK p50`,
          value: daemon.latency.p50Ms,
          unit: 'ms',
          better: 'lower',
          ceiling: { value: ceiling.latency.p50Ms, label: 'bare Aedes' },
          target: null,
        }),
        figure({
          id: 'small.pubackP99Ms',
          label: `${label}: PUBACK p99`,
          value: daemon.latency.p99Ms,
          unit: 'ms',
          better: 'lower',
          ceiling: { value: ceiling.latency.p99Ms, label: 'bare Aedes' },
          target: { rule: '<= 50 ms', pass: daemon.latency.p99Ms <= 50 },
        }),
      ],
      details: { daemon: rounded(daemon), storeRowsReceiver: rounded(withRows), storeOnlyReceiver: rounded(stored), bareBroker: rounded(ceiling), slices, mainThreads, generatorProcesses: 2 },
    };
    if (typeof daemon.processedPerSecond === 'number') {
      result.figures.splice(
        1,
        0,
        figure({
          id: 'small.processedPerSecond',
          label: `${label}: acked and processed`,
          value: daemon.processedPerSecond,
          unit: 'msg/s',
          better: 'higher',
          ceiling: { value: ceiling.messagesPerSecond, label: 'bare Aedes, acked' },
          target: null,
        }),
      );
    } else ctx.notes.push('scenario 2: the daemon did not finish processing the acknowledged messages within 300 s');
    return result;
  } finally {
    await Promise.all([bare.stop(), storeOnly.stop(), storeRows.stop()]);
    for (const table of tables) await rig.sql.query(`DROP TABLE IF EXISTS ${table}`);
  }
}
