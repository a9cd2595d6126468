/** Command-line settings of `npm run bench`. */
export interface BenchOptions {
  scenarios: Set<1 | 2 | 3 | 4>;
  /** Scenario 1: samples in the bulk export. */
  samples: number;
  /** Scenarios 2 and 3: seconds of load per measurement. */
  durationSeconds: number;
  /** Scenario 4: minutes of scenario-2 load in the soak. */
  soakMinutes: number;
  /** Scenario 4: size of the large MQTT and REST payloads. */
  largePayloadBytes: number;
  /** Scenario 2 and the soak: MQTT clients (over WebSocket), split over two generator processes. */
  mqttClients: number;
  /** Scenario 3: the fixed rate whose latency is reported, and the rate search's step length. */
  restRate: number;
  restSearchStepSeconds: number;
  restSearchMaxSteps: number;
  out: string | null;
  quick: boolean;
}

export const usage = `usage: npm run bench -- [--quick] [--scenarios 1,2,3,4] [--samples N] [--duration-s S]
                      [--soak-minutes M] [--out FILE]

Measures the daemon (a child process: node dist/src/main.js start) through its public interfaces
and compares every figure with a ceiling measured in the same run on the same machine:
  1  bulk export: one large HAE payload over MQTT/WebSocket, publish to last row committed
  2  many small messages: MQTT clients awaiting each PUBACK, against a bare Aedes broker
  3  REST: open-loop POSTs at a fixed rate, then the highest rate with p99 under 100 ms
  4  memory: peak RSS for 100 MB payloads (MQTT and REST), RSS growth over a soak
Database: DATABASE_URL's server (a fresh database is created and dropped), else an embedded PostgreSQL.
Full defaults: --samples 1000000 --duration-s 20 --soak-minutes 10. --quick: tiny sizes, a few seconds.`;

const defaults = {
  samples: 1_000_000,
  durationSeconds: 20,
  soakMinutes: 10,
  largePayloadBytes: 100_000_000,
  mqttClients: 100,
  restRate: 200,
  restSearchStepSeconds: 5,
  restSearchMaxSteps: 12,
};
const quickDefaults: typeof defaults = {
  samples: 20_000,
  durationSeconds: 1,
  soakMinutes: 0.05,
  largePayloadBytes: 2_000_000,
  mqttClients: 10,
  restRate: 200,
  restSearchStepSeconds: 0.5,
  restSearchMaxSteps: 2,
};

export class UsageError extends Error {}

function numberArg(flag: string, value: string | undefined, min: number, max: number, integer: boolean): number {
  const n = Number(value);
  if (value === undefined || value.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} takes a ${integer ? 'whole ' : ''}number from ${min} to ${max}`);
  }
  return n;
}

function scenarioList(value: string | undefined): Set<1 | 2 | 3 | 4> {
  const parts = (value ?? '').split(',').map((s) => s.trim());
  const set = new Set<1 | 2 | 3 | 4>();
  for (const p of parts) {
    if (p !== '1' && p !== '2' && p !== '3' && p !== '4') throw new UsageError('--scenarios takes a comma-separated list of 1, 2, 3, 4');
    set.add(Number(p) as 1 | 2 | 3 | 4);
  }
  return set;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  let quick = false;
  let out: string | null = null;
  let scenarios = new Set<1 | 2 | 3 | 4>([1, 2, 3, 4]);
  const explicit: Partial<typeof defaults> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    switch (flag) {
      case '--help':
      case '-h':
        return 'help';
      case '--quick':
        quick = true;
        break;
      case '--out':
        out = argv[++i] ?? null;
        if (!out) throw new UsageError('--out takes a file name');
        break;
      case '--scenarios':
        scenarios = scenarioList(argv[++i]);
        break;
      // Upper bounds keep a mistyped number from turning into an hours-long run.
      case '--samples':
        explicit.samples = numberArg(flag, argv[++i], 100, 5_000_000, true);
        break;
      case '--duration-s':
        explicit.durationSeconds = numberArg(flag, argv[++i], 1, 600, false);
        break;
      case '--soak-minutes':
        explicit.soakMinutes = numberArg(flag, argv[++i], 0.05, 240, false);
        break;
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  return { ...(quick ? quickDefaults : defaults), ...explicit, scenarios, out, quick };
}
