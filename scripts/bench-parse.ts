/**
 * Prints how fast the HAE parser reads a generated payload (not a test: nothing is asserted).
 * Run: npx tsc -p tsconfig.json && node dist/scripts/bench-parse.js [points]
 */
import { parseHaePayload } from '../src/hae/parse.js';

const totalPoints = Number(process.argv[2] ?? 200_000);
const quantityMetrics = ['step_count', 'active_energy', 'basal_energy_burned', 'walking_running_distance'];

function timestamp(minute: number): string {
  const date = new Date(Date.UTC(2024, 0, 1) + minute * 60_000);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:00 -0500`;
}

/** Half heart rate (the usual bulk of a minute-aggregated export), half quantity metrics. */
function generatePayload(points: number): unknown {
  const heartRatePoints = Math.floor(points / 2);
  const perQuantityMetric = Math.floor((points - heartRatePoints) / quantityMetrics.length);
  const metrics: unknown[] = [
    {
      name: 'heart_rate',
      units: 'count/min',
      data: Array.from({ length: heartRatePoints }, (_, i) => ({ date: timestamp(i), Min: 60 + (i % 20), Avg: 70.5 + (i % 20), Max: 80 + (i % 20), source: 'Anna\u2019s Apple\u00a0Watch' })),
    },
  ];
  for (const name of quantityMetrics) {
    metrics.push({ name, units: 'count', data: Array.from({ length: perQuantityMetric }, (_, i) => ({ date: timestamp(i), qty: i * 1.5, source: 'Anna\u2019s iPhone|Anna\u2019s Apple\u00a0Watch' })) });
  }
  // Round-trip through JSON so the objects look like JSON.parse output (same shapes, same strings).
  return JSON.parse(JSON.stringify({ data: { metrics } })) as unknown;
}

const payload = generatePayload(totalPoints);
const now = new Date('2030-01-01T00:00:00Z');
parseHaePayload(payload, { now }); // warm-up
const runs = 5;
const seconds: number[] = [];
let rows = 0;
for (let run = 0; run < runs; run++) {
  const started = process.hrtime.bigint();
  const result = parseHaePayload(payload, { now });
  seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
  rows = result.quantity.length + result.heartRate.length;
}
seconds.sort((a, b) => a - b);
const median = seconds[Math.floor(runs / 2)]!;
console.log(
  `${rows.toLocaleString('en')} rows from ${totalPoints.toLocaleString('en')} points: median ${(median * 1000).toFixed(0)} ms, ` +
    `${Math.round(totalPoints / median).toLocaleString('en')} points/s (${((median / totalPoints) * 1e6).toFixed(2)} µs/point; best of ${runs}: ${(seconds[0]! * 1000).toFixed(0)} ms)`,
);
