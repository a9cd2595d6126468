/**
 * Prints how fast the JSON limit scanner reads a generated ~80 MB HAE-like payload (not a test:
 * nothing is asserted). Run: npx tsc -p tsconfig.json && node dist/scripts/bench-json-limits.js [MB]
 */
import { findJsonLimitViolation } from '../src/ingest/json-limits.js';

const targetBytes = Number(process.argv[2] ?? 80) * 1024 * 1024;

function payload(): Buffer {
  const items: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < targetBytes; i++) {
    const item = `{"date":"2024-01-01 ${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00 -0500","Min":${60 + (i % 20)},"Avg":${70.5 + (i % 20)},"Max":${80 + (i % 20)},"source":"Anna\\u2019s Apple\u00a0Watch"}`;
    items.push(item);
    bytes += item.length + 1;
  }
  return Buffer.from(`{"data":{"metrics":[{"name":"heart_rate","units":"count/min","data":[${items.join(',')}]}]}}`, 'utf8');
}

const body = payload();
const limits = { maxDepth: 64, maxStringBytes: 1024 * 1024 };
findJsonLimitViolation(body, limits); // warm-up
const runs = 7;
const seconds: number[] = [];
for (let run = 0; run < runs; run++) {
  const started = process.hrtime.bigint();
  const violation = findJsonLimitViolation(body, limits);
  seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
  if (violation) throw new Error(`unexpected violation: ${violation.message}`);
}
seconds.sort((a, b) => a - b);
const median = seconds[Math.floor(runs / 2)]!;
const mb = body.length / 1e6;
// JSON.parse of the same body, for scale: the check should cost a small fraction of it.
const parseStarted = process.hrtime.bigint();
JSON.parse(body.toString('utf8'));
const parseSeconds = Number(process.hrtime.bigint() - parseStarted) / 1e9;
console.log(
  `${mb.toFixed(1)} MB: median ${(median * 1000).toFixed(1)} ms = ${(mb / median).toFixed(0)} MB/s (best ${(mb / seconds[0]!).toFixed(0)} MB/s, ${runs} runs); ` +
    `toString + JSON.parse ${(parseSeconds * 1000).toFixed(0)} ms (${((median / parseSeconds) * 100).toFixed(0)} %)`,
);
