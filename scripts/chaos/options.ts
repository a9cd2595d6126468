/** Command-line settings of `npm run chaos`. */
export interface ChaosOptions {
  kills: number;
  outages: number;
  connections: number;
  soakSeconds: number;
  /** Publishes per second across all load connections during the soak. */
  soakRate: number;
  seed: number;
  out: string | null;
  quick: boolean;
}

export const usage = `usage: npm run chaos -- [--quick] [--kills N] [--outages N] [--connections N]
                      [--soak-seconds N] [--soak-rate N] [--seed N] [--out FILE]

Runs the daemon as a child behind a TCP proxy to PostgreSQL, kills it (SIGKILL) N times and
cuts the database N times while publishers stream, holds many MQTT connections open for a
soak, then checks that every acknowledged payload is stored exactly once.
Database: DATABASE_URL, else TEST_DATABASE_URL, else an embedded PostgreSQL.`;

const defaults = { kills: 50, outages: 10, connections: 1000, soakSeconds: 120, soakRate: 20 };
const quickDefaults = { kills: 3, outages: 2, connections: 50, soakSeconds: 10, soakRate: 10 };

// Upper bounds keep a mistyped number from turning into an hours-long run or a flood.
const limits: Record<string, [number, number]> = {
  '--kills': [0, 1000],
  '--outages': [0, 200],
  '--connections': [0, 5000],
  '--soak-seconds': [0, 3600],
  '--soak-rate': [0, 500],
  '--seed': [0, 2 ** 32 - 1],
};

export class UsageError extends Error {}

function intArg(flag: string, value: string | undefined): number {
  const [min, max] = limits[flag]!;
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} takes a whole number from ${min} to ${max}`);
  return n;
}

export function parseOptions(argv: string[]): ChaosOptions | 'help' {
  const explicit: Partial<ChaosOptions> = {};
  let quick = false;
  let out: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--help' || flag === '-h') return 'help';
    if (flag === '--quick') quick = true;
    else if (flag === '--out') {
      out = argv[++i] ?? null;
      if (!out) throw new UsageError('--out takes a file name');
    } else if (flag in limits) {
      const n = intArg(flag, argv[++i]);
      if (flag === '--kills') explicit.kills = n;
      if (flag === '--outages') explicit.outages = n;
      if (flag === '--connections') explicit.connections = n;
      if (flag === '--soak-seconds') explicit.soakSeconds = n;
      if (flag === '--soak-rate') explicit.soakRate = n;
      if (flag === '--seed') explicit.seed = n;
    } else throw new UsageError(`unknown option ${flag}`);
  }
  const base = quick ? quickDefaults : defaults;
  return { ...base, seed: Math.floor(Math.random() * 2 ** 31), ...explicit, out, quick };
}
