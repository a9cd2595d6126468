import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/paths.js';
import { pollUntil } from './util.js';

export interface DaemonSettings {
  databaseUrl: string;
  dataDir: string;
  httpPort: number;
  tcpPort: number;
}

interface Running {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const LOG_TAIL = 200;

/**
 * The real daemon (`node dist/src/main.js start`) as a child, restarted on the same DATA_DIR,
 * database and ports after each kill, so that clients can reconnect to the same address.
 */
export class Daemon {
  readonly #settings: DaemonSettings;
  readonly #logs: string[] = [];
  #running: Running | null = null;
  starts = 0;

  constructor(settings: DaemonSettings) {
    this.#settings = settings;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.#settings.httpPort}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.#settings.httpPort}/mqtt`;
  }

  get tcpUrl(): string {
    return `mqtt://127.0.0.1:${this.#settings.tcpPort}`;
  }

  get pid(): number | null {
    return this.#running?.child.pid ?? null;
  }

  /** The last lines the daemon wrote, for a report that has to explain a failure. */
  get logTail(): string[] {
    return [...this.#logs];
  }

  #env(): NodeJS.ProcessEnv {
    const s = this.#settings;
    return {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: s.databaseUrl,
      DATA_DIR: s.dataDir,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(s.httpPort),
      MQTT_TCP_HOST: '127.0.0.1',
      MQTT_TCP_PORT: String(s.tcpPort),
      BOOTSTRAP_KEY: 'false',
      LOG_LEVEL: 'warn',
      SHUTDOWN_TIMEOUT_MS: '20000',
      // The chaos load and the benchmark play thousands of phones with one key from one address:
      // the per-key and per-address caps and rates are raised far above that load, so the runs
      // measure ingest, while the limiter code stays in the path.
      MQTT_MAX_CONNECTIONS: '6000',
      MQTT_MAX_CONNECTIONS_PER_ADDRESS: '6000',
      MQTT_MAX_CONNECTIONS_PER_KEY: '6000',
      RATE_LIMIT_KEY_PER_MINUTE: '60000000',
      RATE_LIMIT_KEY_BURST: '1000000',
      RATE_LIMIT_ADDRESS_PER_MINUTE: '60000000',
      RATE_LIMIT_ADDRESS_BURST: '1000000',
    };
  }

  #remember(chunk: Buffer): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      this.#logs.push(line);
      if (this.#logs.length > LOG_TAIL) this.#logs.shift();
    }
  }

  /** Spawns the daemon and waits until /ready answers 200 (database reachable, broker listening). */
  async start(timeoutMs: number): Promise<void> {
    if (this.#running) throw new Error('the daemon is already running');
    // DAEMON_NODE_ARGS profiles a run (`--cpu-prof --cpu-prof-dir=/tmp/prof`); unset, the daemon runs as shipped.
    const nodeArgs = process.env.DAEMON_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const child = spawn(process.execPath, [...nodeArgs, path.join(projectRoot, 'dist', 'src', 'main.js'), 'start'], { env: this.#env(), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (c: Buffer) => this.#remember(c));
    child.stderr!.on('data', (c: Buffer) => this.#remember(c));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.#running = { child, exited };
    this.starts++;
    let gone = false;
    void exited.then(() => (gone = true));
    const ready = await pollUntil(async () => {
      if (gone) return true;
      return (await fetch(`${this.httpUrl}/ready`, { signal: AbortSignal.timeout(2_000) })).status === 200;
    }, timeoutMs);
    if (gone || !ready) {
      await this.kill();
      throw new Error(`the daemon did not become ready (${gone ? 'it exited' : 'time-out'}); last log lines:\n${this.#logs.slice(-20).join('\n')}`);
    }
  }

  /** SIGKILL: no shutdown code runs, as in a power cut or an OOM kill. */
  async kill(): Promise<void> {
    const running = this.#running;
    if (!running) return;
    if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill('SIGKILL');
    await running.exited;
    this.#running = null;
  }

  /** SIGTERM and the exit code; SIGKILL after `timeoutMs` (then the code is null). */
  async stop(timeoutMs: number): Promise<number | null> {
    const running = this.#running;
    if (!running) return null;
    running.child.kill('SIGTERM');
    const timer = setTimeout(() => running.child.kill('SIGKILL'), timeoutMs);
    const { code } = await running.exited;
    clearTimeout(timer);
    this.#running = null;
    return code;
  }

  /** Resident memory of the daemon in KiB (Linux), or null when it is not running or /proc says nothing. */
  rssKiB(): number | null {
    const pid = this.pid;
    if (pid === null) return null;
    try {
      const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return match ? Number(match[1]) : null;
    } catch {
      return null;
    }
  }

  async spoolRecords(): Promise<number | null> {
    try {
      const text = await (await fetch(`${this.httpUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
      const match = /^self_sensored_spool_records (\d+)$/m.exec(text);
      return match ? Number(match[1]) : null;
    } catch {
      return null;
    }
  }
}

/** Samples the daemon's RSS every `intervalMs`, across restarts; keeps the peak per phase. */
export class RssSampler {
  readonly #daemon: Daemon;
  readonly #timer: NodeJS.Timeout;
  readonly peaks = new Map<string, number>();
  phase = 'start';
  last: number | null = null;

  constructor(daemon: Daemon, intervalMs = 500) {
    this.#daemon = daemon;
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  sample(): number | null {
    const kib = this.#daemon.rssKiB();
    if (kib === null) return null;
    this.last = kib;
    this.peaks.set(this.phase, Math.max(this.peaks.get(this.phase) ?? 0, kib));
    return kib;
  }

  get peak(): number {
    return Math.max(0, ...this.peaks.values());
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
