import type { MetricShape } from './metric-shape.js';
import { hasAnyKey, sleepAggregatedMarkers, sleepAggregatedSchema, type SleepAggregatedEntry } from './schema.js';
import type { Instant, SleepRow } from './types.js';
import { checkDate, checkNotNegative, checkOptionalDate, checkSleepStages, describeValue, isPlainObject, Problem, problemFromZod, type DateBounds } from './validate.js';

/**
 * Time asleep / time in bed. Asleep is totalSleep when given (2024+ docs); else `asleep` when
 * positive (pre-6.6.2 entries and third-party apps, Q8); else the sum of the stages (post-6.6.2
 * sets `asleep` to 0 when stages exist). Q8: third-party entries may have asleep > inBed, so
 * the result can exceed 1; it is kept, not clamped. Null when inBed is not positive or nothing
 * about sleep is known.
 */
export function sleepEfficiency(entry: Pick<SleepRow, 'totalSleep' | 'asleep' | 'core' | 'deep' | 'rem' | 'inBed'>): number | null {
  const { inBed } = entry;
  if (inBed === null || !(inBed > 0)) return null;
  let asleep: number | null;
  if (entry.totalSleep !== null) asleep = entry.totalSleep;
  else if (entry.asleep !== null && entry.asleep > 0) asleep = entry.asleep;
  else if (entry.core !== null || entry.deep !== null || entry.rem !== null) asleep = (entry.core ?? 0) + (entry.deep ?? 0) + (entry.rem ?? 0);
  else asleep = entry.asleep;
  if (asleep === null) return null;
  const efficiency = asleep / inBed;
  // 1e308 hours over a tiny inBed is Infinity, which no column can hold.
  return Number.isFinite(efficiency) ? efficiency : null;
}

interface SleepInstants {
  date: Instant;
  sleepStart: Instant | null;
  sleepEnd: Instant | null;
  inBedStart: Instant | null;
  inBedEnd: Instant | null;
}

function checkSleepDates(entry: SleepAggregatedEntry, metricBounds: DateBounds): SleepInstants | Problem {
  // Q7: `date` is a full timestamp in real exports and date-only in the docs; both parse.
  const date = checkDate(entry.date, 'date', metricBounds);
  if (date instanceof Problem) return date;
  const sleepStart = checkOptionalDate(entry.sleepStart, 'sleepStart', metricBounds);
  if (sleepStart instanceof Problem) return sleepStart;
  const sleepEnd = checkOptionalDate(entry.sleepEnd, 'sleepEnd', metricBounds);
  if (sleepEnd instanceof Problem) return sleepEnd;
  const inBedStart = checkOptionalDate(entry.inBedStart, 'inBedStart', metricBounds);
  if (inBedStart instanceof Problem) return inBedStart;
  const inBedEnd = checkOptionalDate(entry.inBedEnd, 'inBedEnd', metricBounds);
  if (inBedEnd instanceof Problem) return inBedEnd;
  return { date, sleepStart, sleepEnd, inBedStart, inBedEnd };
}

function checkAmounts(amounts: Record<string, number | null>): Problem | null {
  for (const [field, value] of Object.entries(amounts)) {
    const problem = checkNotNegative(field, value, 'hr');
    if (problem !== null) return problem;
  }
  return checkSleepStages({ core: amounts['core'] ?? null, deep: amounts['deep'] ?? null, rem: amounts['rem'] ?? null, awake: amounts['awake'] ?? null, inBed: amounts['inBed'] ?? null });
}

/**
 * An aggregated `sleep_analysis` entry ("Summarize Data" on), either shape (before/after app
 * v6.6.2). sleep-shape.ts decides per point whether a point is this or a segment.
 */
export const sleepShape: MetricShape<'sleep'> = {
  kind: 'sleep',
  parsePoint(point, metric) {
    if (!isPlainObject(point)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} entry must be an object but is ${describeValue(point)}`);
    }
    if (!hasAnyKey(point, sleepAggregatedMarkers)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} entry has neither sleep amounts (asleep, inBed, …) nor startDate/endDate`);
    }
    const parsed = sleepAggregatedSchema.safeParse(point);
    if (!parsed.success) return problemFromZod(parsed.error, point, `${metric.received} entry`);
    const entry = parsed.data;
    const dates = checkSleepDates(entry, metric.bounds);
    if (dates instanceof Problem) return dates;
    const amounts = {
      totalSleep: entry.totalSleep ?? null,
      asleep: entry.asleep ?? null,
      core: entry.core ?? null,
      deep: entry.deep ?? null,
      rem: entry.rem ?? null,
      awake: entry.awake ?? null,
      inBed: entry.inBed ?? null,
    };
    const amountProblem = checkAmounts(amounts);
    if (amountProblem !== null) return amountProblem;
    const sleepSource = entry.sleepSource ?? null;
    const inBedSource = entry.inBedSource ?? null;
    const row: SleepRow = {
      date: dates.date,
      start: dates.sleepStart ?? dates.date,
      end: dates.sleepEnd,
      inBedStart: dates.inBedStart,
      inBedEnd: dates.inBedEnd,
      // Before v6.6.2 there was no `source`; `sleepSource` (then `inBedSource`) names the same
      // device, so the natural key (start, source) still tells entries from different apps apart.
      source: entry.source ?? sleepSource ?? inBedSource ?? '',
      sleepSource,
      inBedSource,
      ...amounts,
      efficiency: sleepEfficiency(amounts),
      units: metric.units,
    };
    return row;
  },
};
