import { CpuWindow, settleDatabase, waitForQuiet, type CpuUse } from './machine.js';
import type { BenchOptions } from './options.js';
import { waitDrained, type Rig } from './rig.js';

/** What every scenario is given. */
export interface BenchContext {
  rig: Rig;
  options: BenchOptions;
  log: (line: string) => void;
  notes: string[];
}

/**
 * Runs one timed step between CPU snapshots. Before it, waits until the daemon has processed
 * everything it acknowledged and (not in quick mode) for the database to settle and a little for
 * other tenants to quieten down, since the machine is shared.
 */
export async function timed<T>(ctx: BenchContext, cpu: Record<string, CpuUse>, step: string, work: () => Promise<T>): Promise<T> {
  const { sql, db } = ctx.rig;
  const backlog = await waitDrained(sql, 300_000);
  if (!backlog.drained) ctx.log(`${step}: the daemon still has unprocessed payloads after ${backlog.seconds.toFixed(0)} s; measuring anyway`);
  if (!ctx.options.quick) {
    // Each step starts from a settled database, not amid the checkpoint and autovacuum work an
    // earlier step's writes left behind (the bulk export's million rows would land in the next step).
    const vacuumWait = await settleDatabase(sql, db.name, 120_000);
    if (vacuumWait >= 1) ctx.log(`${step}: waited ${vacuumWait.toFixed(0)} s for autovacuum to finish`);
    const others = await waitForQuiet(sql, db.name, 10_000);
    if (others >= 0.3) ctx.log(`${step}: other processes use ${others.toFixed(2)} cores; measuring anyway`);
  }
  const window = new CpuWindow(sql, db.name);
  await window.start();
  try {
    return await work();
  } finally {
    cpu[step] = await window.stop();
  }
}
