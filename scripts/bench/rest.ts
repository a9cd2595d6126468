import { BenchChild } from './child.js';
import { timed, type BenchContext } from './context.js';
import { Histogram, type LatencySummary } from './latency.js';
import type { CpuUse } from './machine.js';
import { figure, round2, type ScenarioResult } from './report.js';
import type { RestRunResult } from './rest-load-child.js';

const P99_LIMIT_MS = 100;
const RATE_CAP = 20_000;

interface Step {
  rate: number;
  sent: number;
  failed: number;
  statuses: Record<string, number>;
  latency: LatencySummary;
  sendLagP99Ms: number;
  ok: boolean;
}

let tags = 0;

async function step(gen: BenchChild, url: string, key: string | null, rate: number, seconds: number): Promise<Step> {
  const r = await gen.request<RestRunResult>({ type: 'run', url, key, rate, durationMs: seconds * 1000, tag: `bench-rest-${++tags}` });
  const latency = Histogram.merge([r.histogram]).summary();
  return {
    rate,
    sent: r.sent,
    failed: r.failed,
    statuses: r.statuses,
    latency: Object.fromEntries(Object.entries(latency).map(([k, v]) => [k, round2(v)])) as unknown as LatencySummary,
    sendLagP99Ms: round2(r.sendLagP99Ms),
    ok: r.failed === 0 && latency.p99Ms < P99_LIMIT_MS,
  };
}

/**
 * The highest rate whose p99 stays under 100 ms (and every request answered 2xx): doubling from
 * the start rate until a step fails, then bisecting until pass and fail are within 10 %.
 */
async function searchRate(ctx: BenchContext, gen: BenchChild, url: string, key: string | null, what: string): Promise<{ rate: number; steps: Step[]; capped: boolean }> {
  const { options, log } = ctx;
  let pass = 0;
  let fail = Infinity;
  let rate = options.restRate;
  const steps: Step[] = [];
  for (let n = 0; n < options.restSearchMaxSteps; n++) {
    const s = await step(gen, url, key, rate, options.restSearchStepSeconds);
    steps.push(s);
    log(`scenario 3: ${what} at ${rate} req/s: p99 ${s.latency.p99Ms} ms, ${s.failed} failed -> ${s.ok ? 'pass' : 'fail'}`);
    if (s.ok) pass = Math.max(pass, rate);
    else fail = Math.min(fail, rate);
    if (fail === Infinity) {
      if (rate >= RATE_CAP) break;
      rate = Math.min(rate * 2, RATE_CAP);
    } else {
      if (fail - pass <= fail * 0.1) break;
      rate = Math.round((pass + fail) / 2);
    }
    // Let the server settle between steps (a failed step may leave a backlog).
    await new Promise((r) => setTimeout(r, options.quick ? 200 : 1000));
  }
  return { rate: pass, steps, capped: pass >= RATE_CAP };
}

/** Scenario 3: REST ingest at a fixed rate, then the highest rate under the p99 limit; against a trivial HTTP server. */
export async function runRest(ctx: BenchContext): Promise<ScenarioResult> {
  const { rig, options, log } = ctx;
  const cpu: Record<string, CpuUse> = {};
  const gen = BenchChild.start('rest-load-child.js', 'REST load generator');
  const trivial = BenchChild.start('trivial-server-child.js', 'trivial HTTP server');
  try {
    const { port } = await trivial.request<{ port: number }>({ type: 'start' });
    const trivialUrl = `http://127.0.0.1:${port}`;
    const targets = [
      { name: 'daemon', url: rig.daemon.httpUrl, key: rig.key as string | null },
      { name: 'trivial server', url: trivialUrl, key: null },
    ];
    const fixed: Record<string, Step> = {};
    const searched: Record<string, { rate: number; steps: Step[]; capped: boolean }> = {};
    for (const t of targets) {
      await step(gen, t.url, t.key, options.restRate, Math.min(2, options.durationSeconds / 2)); // warm-up
      fixed[t.name] = await timed(ctx, cpu, `${t.name} at ${options.restRate} req/s`, () => step(gen, t.url, t.key, options.restRate, options.durationSeconds));
      const f = fixed[t.name]!;
      log(`scenario 3: ${t.name} at ${options.restRate} req/s: p50 ${f.latency.p50Ms} ms, p99 ${f.latency.p99Ms} ms, ${f.failed} failed`);
      searched[t.name] = await timed(ctx, cpu, `${t.name} rate search`, () => searchRate(ctx, gen, t.url, t.key, t.name));
    }
    const d = fixed.daemon!;
    const c = fixed['trivial server']!;
    const label = `${options.restRate} req/s open loop, 1-10 samples`;
    if (searched['trivial server']!.capped) ctx.notes.push(`REST ceiling search stopped at its cap of ${RATE_CAP} req/s`);
    return {
      name: '3 REST',
      cpu,
      figures: [
        figure({ id: 'rest.p50Ms', label: `${label}: p50`, value: d.latency.p50Ms, unit: 'ms', better: 'lower', ceiling: { value: c.latency.p50Ms, label: 'trivial node:http' }, target: null }),
        figure({
          id: 'rest.p99Ms',
          label: `${label}: p99`,
          value: d.latency.p99Ms,
          unit: 'ms',
          better: 'lower',
          ceiling: { value: c.latency.p99Ms, label: 'trivial node:http' },
          target: { rule: '<= 50 ms', pass: d.latency.p99Ms <= 50 && d.failed === 0 },
        }),
        figure({
          id: 'rest.maxRate',
          label: `highest rate with p99 < ${P99_LIMIT_MS} ms`,
          value: searched.daemon!.rate,
          unit: 'req/s',
          better: 'higher',
          ceiling: { value: searched['trivial server']!.rate, label: 'trivial node:http' },
          target: null,
        }),
      ],
      details: { fixedRate: fixed, search: searched, stepSeconds: options.restSearchStepSeconds, p99LimitMs: P99_LIMIT_MS },
    };
  } finally {
    await Promise.all([gen.stop(), trivial.stop()]);
  }
}
