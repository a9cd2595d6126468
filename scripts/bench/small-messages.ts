import { BenchChild } from './child.js';
import { timed, type BenchContext } from './context.js';
import type { CpuUse } from './machine.js';
import { MqttLoad, type MqttLoadResult } from './mqtt-load.js';
import { figure, type Figure, type ScenarioResult } from './report.js';
import { waitDrained } from './rig.js';

/** Measures `url` under the load: a short warm-up (JIT, connection pools), then the timed run. */
async function measure(ctx: BenchContext, cpu: Record<string, CpuUse>, step: string, url: string, key: string): Promise<MqttLoadResult & { backlogSeconds?: number; processedPerSecond?: number | null }> {
  const { options, log } = ctx;
  const load = await MqttLoad.open(url, key, options.mqttClients, `bench-${step.replace(/\W+/g, '-')}`);
  try {
    await load.run(Math.min(3, options.durationSeconds / 2));
    const result = await timed(ctx, cpu, step, () => load.run(options.durationSeconds));
    log(`scenario 2: ${step}: ${Math.round(result.messagesPerSecond)} msg/s, PUBACK p50 ${result.latency.p50Ms.toFixed(1)} ms, p99 ${result.latency.p99Ms.toFixed(1)} ms, ${result.errors} errors`);
    if (url !== ctx.rig.daemon.wsUrl) return result;
    // Acknowledged means stored, not yet processed: how far processing lagged behind the acks.
    const backlog = await waitDrained(ctx.rig.sql, 300_000);
    log(`scenario 2: the daemon finished processing ${backlog.seconds.toFixed(1)} s after the load ended`);
    log(`scenario 2: daemon ingest metrics: ${await ingestMetrics(ctx.rig.daemon.httpUrl)}`);
    return {
      ...result,
      backlogSeconds: Math.round(backlog.seconds * 10) / 10,
      // What the daemon sustains end to end: acknowledged and also processed.
      processedPerSecond: backlog.drained ? Math.round(result.acked / (result.seconds + backlog.seconds)) : null,
    };
  } finally {
    await load.close();
  }
}

/** How the daemon wrote the load: payloads per processing transaction. */
async function ingestMetrics(httpUrl: string): Promise<string> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const value = (name: string): number => [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
  const transactions = value('self_sensored_ingest_batch_payloads_count');
  const payloads = value('self_sensored_ingest_batch_payloads_sum');
  return `${transactions} processing transactions, ${(payloads / Math.max(1, transactions)).toFixed(1)} payloads each`;
}

const rounded = (r: MqttLoadResult & { backlogSeconds?: number; processedPerSecond?: number | null }) => ({
  ...r,
  seconds: Math.round(r.seconds * 100) / 100,
  messagesPerSecond: Math.round(r.messagesPerSecond),
  latency: Object.fromEntries(Object.entries(r.latency).map(([k, v]) => [k, Math.round(v * 100) / 100])),
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
    const daemon = await measure(ctx, cpu, 'daemon', rig.daemon.wsUrl, rig.key);
    const withRows = await measure(ctx, cpu, 'store-rows receiver', storeRowsUrl, 'none');
    const stored = await measure(ctx, cpu, 'store-only receiver', storeOnlyUrl, 'none');
    const ceiling = await measure(ctx, cpu, 'bare broker', `ws://127.0.0.1:${port}/mqtt`, 'none');
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
      details: { daemon: rounded(daemon), storeRowsReceiver: rounded(withRows), storeOnlyReceiver: rounded(stored), bareBroker: rounded(ceiling), generatorProcesses: 2 },
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
