import type { ParseContext } from './context.js';
import type { ValidationLimits } from './limits.js';
import { workoutSeriesPointSchema } from './schema.js';
import type { Instant, WorkoutSeriesRow } from './types.js';
import { checkDate, checkHeartRates, describeValue, isPlainObject, Problem, problemFromZod, sourceOrEmpty, type DateBounds } from './validate.js';

/** Where a workout's children are read: its id, name, end and path in the body. */
export interface WorkoutPlace {
  workoutId: string;
  name: string;
  end: Instant;
  path: string;
}

const REJECTION_TYPE = 'workouts';
const HEART_RATE_DATA = 'heartRateData';
const HEART_RATE_RECOVERY = 'heartRateRecovery';

/** Heart-rate series: their points are checked against the heart-rate limits. */
const heartRateSeries: ReadonlySet<string> = new Set([HEART_RATE_DATA, HEART_RATE_RECOVERY]);

/**
 * Series documented in §1.6 (only with "Include Workout Metrics"). Any other array whose first
 * object looks like `{date, qty | Min/Avg/Max}` is a series too; other arrays stay in the raw body.
 */
const knownSeries: ReadonlySet<string> = new Set([
  HEART_RATE_DATA,
  HEART_RATE_RECOVERY,
  'activeEnergy',
  'basalEnergy',
  'stepCount',
  'walkingAndRunningDistance',
  'cyclingCadence',
  'cyclingDistance',
  'cyclingPower',
  'cyclingSpeed',
  'swimDistance',
  'swimStroke',
]);

/** Keys of a workout that are never series. */
const notSeries: ReadonlySet<string> = new Set(['route']);

function looksLikeSeries(points: readonly unknown[]): boolean {
  const first = points.find(isPlainObject);
  return first !== undefined && Object.hasOwn(first, 'date') && ['qty', 'Min', 'Avg', 'Max'].some((key) => Object.hasOwn(first, key));
}

/** v2 `{date, Min, Avg, Max, units, source?}`, v1 heart rate and per-minute `{date, qty, units}`. */
function parseSeriesPoint(point: unknown, series: string, place: WorkoutPlace, bounds: DateBounds, limits: ValidationLimits): WorkoutSeriesRow | Problem {
  if (!isPlainObject(point)) return new Problem(undefined, 'invalid_shape', `A ${series} point must be an object but is ${describeValue(point)}`);
  const parsed = workoutSeriesPointSchema.safeParse(point);
  if (!parsed.success) return problemFromZod(parsed.error, point, `${series} point`);
  const { qty = null, Min: min = null, Avg: avg = null, Max: max = null } = parsed.data;
  if (qty === null && min === null && avg === null && max === null) {
    return new Problem('qty', 'missing_value', `The ${series} point has none of qty, Min, Avg or Max`);
  }
  const time = checkDate(parsed.data.date, 'date', bounds);
  if (time instanceof Problem) return time;
  if (heartRateSeries.has(series)) {
    // A bad heart-rate point rejects only the point, never its workout.
    const range = checkHeartRates(
      [
        ['qty', qty],
        ['Min', min],
        ['Avg', avg],
        ['Max', max],
      ],
      limits,
    );
    if (range !== null) return range;
  }
  return { workoutId: place.workoutId, series, time, qty, min, avg, max, units: parsed.data.units ?? '', source: sourceOrEmpty(parsed.data.source) };
}

/**
 * Q17 (app bug, [S9 #60]): `heartRateData` sometimes holds the recovery series and
 * `heartRateRecovery` is missing. Recognised when every parsed point is at or after the workout's
 * end and is an instantaneous sample (Min == Avg == Max); those points are stored as
 * 'heartRateRecovery' so that in-workout heart rate is not polluted with post-workout values.
 */
function isMislabelledRecovery(rows: readonly WorkoutSeriesRow[], end: Instant): boolean {
  return rows.length > 0 && rows.every((row) => row.time.epochMs >= end.epochMs && row.min !== null && row.min === row.avg && row.avg === row.max);
}

function hasPoints(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

/** Every series of one workout (the workout row is already accepted). */
export function parseWorkoutSeries(raw: Record<string, unknown>, place: WorkoutPlace, ctx: ParseContext): void {
  for (const key of Object.keys(raw)) {
    if (notSeries.has(key)) continue;
    const value = raw[key];
    if (!Array.isArray(value)) {
      // A known series key holding neither points nor a v1 `{qty, units}` summary.
      if (knownSeries.has(key) && value !== null && value !== undefined && !(isPlainObject(value) && Object.hasOwn(value, 'qty'))) {
        ctx.reject(REJECTION_TYPE, `${place.path}.${key}`, place.name, new Problem(key, 'invalid_shape', `${key} must be an array of points but is ${describeValue(value)}`));
      }
      continue;
    }
    if (!knownSeries.has(key) && !looksLikeSeries(value)) {
      if (value.length > 0) ctx.notStored(`workouts.${key}`, value.length, 'unsupported_type');
      continue;
    }
    const outcomes = value.map((point) => parseSeriesPoint(point, key, place, ctx.bounds, ctx.limits));
    if (key === HEART_RATE_DATA && !hasPoints(raw[HEART_RATE_RECOVERY])) {
      const rows = outcomes.filter((outcome): outcome is WorkoutSeriesRow => !(outcome instanceof Problem));
      if (isMislabelledRecovery(rows, place.end)) for (const row of rows) row.series = HEART_RATE_RECOVERY;
    }
    outcomes.forEach((outcome, index) => ctx.settle('workoutSeries', outcome, REJECTION_TYPE, `${place.path}.${key}[${index}]`, place.name));
  }
}
