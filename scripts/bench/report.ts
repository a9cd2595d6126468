import type { CpuUse, MachineFacts } from './machine.js';

/**
 * One measured figure beside the ceiling it is compared with (measured in the same run, on the
 * same machine and database), their ratio, and the target when there is one.
 */
export interface Figure {
  id: string;
  label: string;
  value: number;
  unit: string;
  /** 'higher' for rates (a ratio near 1 is good), 'lower' for latencies and memory. */
  better: 'higher' | 'lower';
  ceiling: { value: number; label: string };
  /** value / ceiling.value */
  ratio: number;
  target: { rule: string; pass: boolean } | null;
}

export interface ScenarioResult {
  name: string;
  figures: Figure[];
  /** CPU use of each timed step, ours and other tenants' (the machine is shared). */
  cpu: Record<string, CpuUse>;
  details: Record<string, unknown>;
}

export interface BenchReport {
  machine: MachineFacts;
  database: { source: string };
  options: Record<string, unknown>;
  startedAt: string;
  durationSeconds: number;
  scenarios: Partial<Record<'bulk' | 'smallMessages' | 'rest' | 'memory', ScenarioResult>>;
  notes: string[];
  /** The daemon's last log lines (LOG_LEVEL=warn: warnings and errors only), to explain an odd figure. */
  daemonLogTail: string[];
}

/** A figure kept in the JSON report to two decimals. */
export const round2 = (x: number): number => Math.round(x * 100) / 100;

export function figure(f: Omit<Figure, 'ratio'>): Figure {
  const ratio = f.ceiling.value === 0 ? NaN : f.value / f.ceiling.value;
  return { ...f, ratio: Math.round(ratio * 1000) / 1000 };
}

function format(value: number, unit: string): string {
  if (!Number.isFinite(value)) return 'n/a';
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits })} ${unit}`;
}

const cpuText = (c: CpuUse) => `${c.seconds.toFixed(1)} s: machine ${c.machineBusyCores.toFixed(2)} cores, bench ${c.benchCores.toFixed(2)} (database ${c.databaseCores.toFixed(2)}), other postgres ${c.otherPostgresCores.toFixed(2)}, others ${c.otherCores.toFixed(2)}`;

export function renderTable(report: BenchReport): string {
  const header = ['scenario', 'figure', 'value', 'ceiling', 'ratio', 'target', 'pass'];
  const rows: string[][] = [];
  for (const s of Object.values(report.scenarios)) {
    for (const f of s.figures) {
      rows.push([
        s.name,
        f.label,
        format(f.value, f.unit),
        `${format(f.ceiling.value, f.unit)} (${f.ceiling.label})`,
        Number.isFinite(f.ratio) ? `${(f.ratio * 100).toFixed(0)} %` : 'n/a',
        f.target?.rule ?? '',
        f.target ? (f.target.pass ? 'pass' : 'FAIL') : '',
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const m = report.machine;
  const out = [
    `self-sensored bench, ${m.date} (${report.options.quick ? 'quick' : 'full'}; database from ${report.database.source})`,
    `${m.cores} cores ${m.cpuModel}, ${m.memoryGiB} GiB, node ${m.node}, ${m.postgres.version.split(' on ')[0]}`,
    '',
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    '',
    'CPU during each timed step (cores; "others" is other people\'s work on this machine):',
  ];
  for (const s of Object.values(report.scenarios)) for (const [step, c] of Object.entries(s.cpu)) out.push(`  ${s.name} / ${step}: ${cpuText(c)}`);
  if (report.notes.length > 0) out.push('', ...report.notes.map((n) => `note: ${n}`));
  return out.join('\n');
}
