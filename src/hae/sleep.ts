import type { MetricShape } from './metric-shape.js';
import { Unsupported } from './metric-shape.js';
import { sleepAggregatedMarkers, sleepAggregatedSchema, sleepSegmentMarkers, type SleepAggregatedEntry } from './schema.js';
import type { Instant, SleepRow } from './types.js';
import { checkDate, checkOptionalDate, describeValue, isPlainObject, Problem, problemFromZod, type DateBounds } from './validate.js';

/** The notStored type of unaggregated sleep segments ("Summarize Data" off), modelled in a later issue. */
export const SLEEP_SEGMENTS_TYPE = 'sleep_segments';
const segment = new Unsupported(SLEEP_SEGMENTS_TYPE);

function hasAnyKey(point: Record<string, unknown>, keys: readonly string[]): boolean {
  for (const key of keys) if (Object.hasOwn(point, key)) return true;
  return false;
}

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
  return asleep === null ? null : asleep / inBed;
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

/**
 * `sleep_analysis` points. The shape is decided per point, not per body: a body may mix
 * aggregated entries (before/after app v6.6.2) and unaggregated segments (fixture caveat, §5).
 */
export const sleepShape: MetricShape<'sleep'> = {
  kind: 'sleep',
  parsePoint(point, metric) {
    if (!isPlainObject(point)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} entry must be an object but is ${describeValue(point)}`);
    }
    if (!hasAnyKey(point, sleepAggregatedMarkers)) {
      // Q11: segments may carry `"date": null`; they are recognised by startDate/endDate.
      if (hasAnyKey(point, sleepSegmentMarkers)) return segment;
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
