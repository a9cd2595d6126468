import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import type pg from 'pg';

/** Facts about where the figures were measured, recorded beside them. */
export interface MachineFacts {
  date: string;
  hostname: string;
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  platform: string;
  loadAverageAtStart: number[];
  postgres: { version: string; settings: Record<string, string> };
}

const PG_SETTINGS = ['shared_buffers', 'synchronous_commit', 'fsync', 'max_wal_size', 'wal_level'];

export async function machineFacts(sql: pg.Pool): Promise<MachineFacts> {
  const version = (await sql.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v;
  const { rows } = await sql.query<{ name: string; setting: string }>('SELECT name, current_setting(name) AS setting FROM unnest($1::text[]) AS name', [PG_SETTINGS]);
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    postgres: { version, settings: Object.fromEntries(rows.map((r) => [r.name, r.setting])) },
  };
}

// USER_HZ: /proc reports CPU time in 1/100 s on every Linux we run on.
const TICKS_PER_SECOND = 100;

interface ProcessTimes {
  ppid: number;
  comm: string;
  seconds: number;
}

function machineBusySeconds(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

function processTimes(): Map<number, ProcessTimes> {
  const all = new Map<number, ProcessTimes>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return all;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const times = processTimesOf(Number(entry));
    // Null: the process ended between readdir and read.
    if (times) all.set(Number(entry), times);
  }
  return all;
}

/** Name, parent and CPU time (all threads) of process `pid`, from /proc/PID/stat; null when it cannot be read. */
function processTimesOf(pid: number): ProcessTimes | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name is in parentheses and may hold spaces: fields are counted after the last ')'.
    const close = stat.lastIndexOf(')');
    const rest = stat.slice(close + 2).split(' ');
    return {
      comm: stat.slice(stat.indexOf('(') + 1, close),
      ppid: Number(rest[1]),
      seconds: (Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND,
    };
  } catch {
    return null;
  }
}

/** The CPU time of process `pid`, all its threads; null when it cannot be read. */
export function processCpuSeconds(pid: number): number | null {
  return processTimesOf(pid)?.seconds ?? null;
}

/** This process and every process below it (the daemon, load generators, an embedded PostgreSQL). */
function ownTree(all: Map<number, ProcessTimes>): Set<number> {
  const tree = new Set<number>([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, p] of all) {
      if (!tree.has(pid) && tree.has(p.ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  return tree;
}

/** A thread's time on a CPU and time runnable but waiting for one, from the kernel's schedstat. */
export interface ThreadSchedule {
  runSeconds: number;
  waitSeconds: number;
}

/**
 * The main thread of process `pid` (its thread id is the pid): how long it ran and how long it
 * was ready to run but waited in a run queue. Null where the kernel does not say (not Linux, or
 * schedstats unavailable).
 */
export function mainThreadSchedule(pid: number): ThreadSchedule | null {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    if (!Number.isFinite(run) || !Number.isFinite(wait)) return null;
    return { runSeconds: run! / 1e9, waitSeconds: wait! / 1e9 };
  } catch {
    return null;
  }
}

export interface CpuUse {
  seconds: number;
  /** Every core's busy time over the window, in cores (2.0 = both cores of a 2-core machine). */
  machineBusyCores: number;
  /** The bench, its children (daemon, generators) and the run database's backends. */
  benchCores: number;
  /** Of benchCores: the run database's backends (the receiver's statements, the bench's own queries). */
  databaseCores: number;
  /** Other PostgreSQL processes: other databases' backends and the server's shared workers (WAL writer, checkpointer). */
  otherPostgresCores: number;
  /** Everything else: other people's work on a shared machine. */
  otherCores: number;
}

/** Several windows as one: their CPU over their summed durations. */
export function combinedCpu(uses: readonly CpuUse[]): CpuUse {
  const seconds = uses.reduce((n, u) => n + u.seconds, 0);
  const cores = (pick: (u: CpuUse) => number) => Math.round((uses.reduce((n, u) => n + pick(u) * u.seconds, 0) / seconds) * 100) / 100;
  return {
    seconds: Math.round(seconds * 100) / 100,
    machineBusyCores: cores((u) => u.machineBusyCores),
    benchCores: cores((u) => u.benchCores),
    databaseCores: cores((u) => u.databaseCores),
    otherPostgresCores: cores((u) => u.otherPostgresCores),
    otherCores: cores((u) => u.otherCores),
  };
}

/**
 * CPU used during a measurement, split into ours and everybody else's, so that a figure taken
 * while someone else was busy can be recognised. Our database backends are found by name.
 */
export class CpuWindow {
  readonly #sql: pg.Pool;
  readonly #database: string;
  #t0 = 0;
  #busy0 = 0;
  #times0 = new Map<number, ProcessTimes>();
  #backends0 = new Set<number>();

  constructor(sql: pg.Pool, database: string) {
    this.#sql = sql;
    this.#database = database;
  }

  async #backendPids(): Promise<Set<number>> {
    const { rows } = await this.#sql.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [this.#database]);
    return new Set(rows.map((r) => r.pid));
  }

  async start(): Promise<void> {
    this.#backends0 = await this.#backendPids();
    this.#times0 = processTimes();
    this.#busy0 = machineBusySeconds();
    this.#t0 = performance.now();
  }

  async stop(): Promise<CpuUse> {
    const seconds = (performance.now() - this.#t0) / 1000;
    const busy = machineBusySeconds() - this.#busy0;
    const times1 = processTimes();
    const backends = new Set([...this.#backends0, ...(await this.#backendPids())]);
    const ours = new Set([...ownTree(times1), ...ownTree(this.#times0), ...backends]);
    let bench = 0;
    let database = 0;
    let otherPostgres = 0;
    for (const [pid, p1] of times1) {
      const p0 = this.#times0.get(pid);
      const used = p1.seconds - (p0 && p0.comm === p1.comm ? p0.seconds : 0);
      if (ours.has(pid)) bench += used;
      else if (p1.comm === 'postgres') otherPostgres += used;
      if (backends.has(pid)) database += used;
    }
    const cores = (s: number) => Math.round((s / seconds) * 100) / 100;
    return {
      seconds: Math.round(seconds * 100) / 100,
      machineBusyCores: cores(busy),
      benchCores: cores(bench),
      databaseCores: cores(database),
      otherPostgresCores: cores(otherPostgres),
      otherCores: cores(Math.max(0, busy - bench - otherPostgres)),
    };
  }
}

/** Waits (at most maxWaitMs) for a second in which other tenants use less than `cores`; answers what it saw last. */
export async function waitForQuiet(sql: pg.Pool, database: string, maxWaitMs: number, cores = 0.3): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let seen = 0;
  do {
    const w = new CpuWindow(sql, database);
    await w.start();
    await new Promise((r) => setTimeout(r, 1000));
    const use = await w.stop();
    seen = use.otherCores + use.otherPostgresCores;
    if (seen < cores) return seen;
  } while (Date.now() < deadline);
  return seen;
}

/**
 * Lets the database settle before a timed step: a CHECKPOINT (so the step does not share the
 * disk with one an earlier step's writes would trigger), then a wait (at most maxWaitMs) until no
 * autovacuum worker runs in the bench database (a million rows written by the bulk scenario start
 * one). Answers how long it waited for autovacuum. CHECKPOINT needs superuser or pg_checkpoint;
 * without it only the wait is done.
 */
export async function settleDatabase(sql: pg.Pool, database: string, maxWaitMs: number): Promise<number> {
  await sql.query('CHECKPOINT').catch(() => undefined);
  const started = Date.now();
  for (;;) {
    const { rows } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'autovacuum worker'`,
      [database],
    );
    if (rows[0]!.n === 0 || Date.now() - started >= maxWaitMs) return (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 200));
  }
}
