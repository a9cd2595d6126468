import type pg from 'pg';
import type { Logger } from '../log.js';

export const partitionedTables = [
  'quantity_samples',
  'heart_rate_samples',
  'blood_pressure_samples',
  'sleep_sessions',
  'sleep_segments',
  'workouts',
  'workout_series',
  'workout_route_points',
  'state_of_mind',
  'medications',
  'symptoms',
  'cycle_tracking',
  'ecg_readings',
  'heart_rate_notifications',
] as const;
export type PartitionedTable = (typeof partitionedTables)[number];

/** First day of the UTC month holding epochMs, as YYYY-MM-01. */
export function monthOf(epochMs: number): string {
  const d = new Date(epochMs);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-01`;
}

/**
 * The months (as monthOf) of every row's time. Rows mostly arrive in time order, so the month is
 * worked out again only when a time leaves the month of the one before: a million rows cost a
 * million comparisons, not a million dates and strings.
 */
export function monthsOf<R>(rows: readonly R[], time: (row: R) => number): Set<string> {
  const months = new Set<string>();
  let from = Infinity;
  let until = -Infinity;
  for (const row of rows) {
    const t = time(row);
    if (t >= from && t < until) continue;
    const d = new Date(t);
    from = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    until = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    months.add(monthOf(t));
  }
  return months;
}

/** Every month (as monthOf) from the one holding fromMs to the one holding toMs, or null if there are more than `max`. */
export function monthsBetween(fromMs: number, toMs: number, max: number): string[] | null {
  const months: string[] = [];
  const from = new Date(fromMs);
  for (let m = Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), 1); m <= toMs; ) {
    if (months.length === max) return null;
    months.push(monthOf(m));
    const d = new Date(m);
    m = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  }
  return months;
}

/**
 * Keeps monthly partitions in place: ahead of time (the next N months) and on demand for every
 * month a payload touches (exports often reach years back). Partitions are created in their own
 * short transactions, outside the sample write: creating one locks the parent table.
 */
export class PartitionManager {
  readonly #pool: pg.Pool;
  readonly #logger: Logger;
  readonly #known = new Set<string>();

  constructor(pool: pg.Pool, logger: Logger) {
    this.#pool = pool;
    this.#logger = logger;
  }

  async ensureMonths(table: PartitionedTable, months: Iterable<string>): Promise<void> {
    for (const month of months) {
      const key = `${table}:${month}`;
      if (this.#known.has(key)) continue;
      const { rows } = await this.#pool.query<{ name: string }>('SELECT ss_ensure_month_partition($1::regclass, $2::date) AS name', [
        table,
        month,
      ]);
      this.#known.add(key);
      this.#logger.debug({ table, partition: rows[0]?.name }, 'partition ready');
    }
  }

  /** Whether the partition of every month in `months` is known to exist (made ready by ensureMonths). */
  hasMonths(table: PartitionedTable, months: Iterable<string>): boolean {
    for (const month of months) if (!this.#known.has(`${table}:${month}`)) return false;
    return true;
  }

  async ensureAhead(monthsAhead: number, now = new Date()): Promise<void> {
    const months: string[] = [];
    for (let i = 0; i <= monthsAhead; i++) {
      months.push(monthOf(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1)));
    }
    for (const table of partitionedTables) await this.ensureMonths(table, months);
  }

  /** Forget what is known, e.g. after the database was restored from a backup. */
  reset(): void {
    this.#known.clear();
  }
}
