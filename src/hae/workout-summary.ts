import type { ValidationLimits } from './limits.js';
import { elevationSchema, qtyWithUnitsSchema, workoutV1Schema, workoutV2Schema, type WorkoutInput } from './schema.js';
import type { QtyWithUnits, WorkoutRow } from './types.js';
import { checkDate, checkEndAfterStart, checkHeartRates, checkJsonDepth, isPlainObject, Problem, problemFromZod, type DateBounds } from './validate.js';
import { setOwn } from './own.js';
import { v1WorkoutId } from './workout-id.js';

type Summary = WorkoutRow['summaries'][string];

/** `elevation {ascent, descent, units}` (v1) as received, without absent keys. */
function elevationSummary(value: Record<string, unknown>): Summary | Problem {
  const parsed = elevationSchema.safeParse(value);
  if (!parsed.success) return problemFromZod(parsed.error, value, 'workout', 'elevation');
  const elevation: Record<string, unknown> = {};
  for (const key of ['ascent', 'descent', 'units'] as const) {
    const field = parsed.data[key];
    if (field !== undefined && field !== null) elevation[key] = field;
  }
  return elevation;
}

/**
 * Every `{qty, units}` field of the workout, by key (activeEnergyBurned, intensity, avgSpeed,
 * temperature, v1 stepCount, …), as received, plus v1 `elevation`. Series (arrays) and
 * heartRate {min, avg, max} are not summaries.
 */
function collectSummaries(workout: Record<string, unknown>): WorkoutRow['summaries'] | Problem {
  const summaries: WorkoutRow['summaries'] = {};
  for (const key of Object.keys(workout)) {
    const value = workout[key];
    if (!isPlainObject(value)) continue;
    if (key === 'elevation') {
      const elevation = elevationSummary(value);
      if (elevation instanceof Problem) return elevation;
      summaries[key] = elevation;
      continue;
    }
    if (!Object.hasOwn(value, 'qty')) continue;
    const parsed = qtyWithUnitsSchema.safeParse(value);
    if (!parsed.success) return problemFromZod(parsed.error, value, 'workout', key);
    setOwn(summaries, key, { qty: parsed.data.qty, units: parsed.data.units });
  }
  return summaries;
}

function plainQty(value: { qty: number; units: string } | null | undefined): QtyWithUnits | null {
  return value === null || value === undefined ? null : { qty: value.qty, units: value.units };
}

/** Summary heart rates (v2 heartRate {min, avg, max}; v1 and v2 avgHeartRate/maxHeartRate) inside the limits. */
function checkSummaryHeartRates(workout: WorkoutInput, limits: ValidationLimits): Problem | null {
  return checkHeartRates(
    [
      ['heartRate.min.qty', workout.heartRate?.min?.qty],
      ['heartRate.avg.qty', workout.heartRate?.avg?.qty],
      ['heartRate.max.qty', workout.heartRate?.max?.qty],
      ['avgHeartRate.qty', workout.avgHeartRate?.qty],
      ['maxHeartRate.qty', workout.maxHeartRate?.qty],
    ],
    limits,
  );
}

/**
 * A workout's summary row, export version 1 (no `id`, Q18) or 2 (HealthKit `id`). Series and the
 * route are read by workout-series.ts and workout-route.ts once this row exists.
 */
export function parseWorkoutSummary(raw: Record<string, unknown>, version: 1 | 2, bounds: DateBounds, limits: ValidationLimits): WorkoutRow | Problem {
  const parsed = version === 2 ? workoutV2Schema.safeParse(raw) : workoutV1Schema.safeParse(raw);
  if (!parsed.success) return problemFromZod(parsed.error, raw, 'workout');
  const workout = parsed.data;
  const start = checkDate(workout.start, 'start', bounds);
  if (start instanceof Problem) return start;
  const end = checkDate(workout.end, 'end', bounds);
  if (end instanceof Problem) return end;
  const problem = checkEndAfterStart(start, end, 'start', 'end') ?? checkSummaryHeartRates(workout, limits);
  if (problem !== null) return problem;
  const summaries = collectSummaries(raw);
  if (summaries instanceof Problem) return summaries;
  // `activeEnergy` is a per-minute series in v2 and a summary in v1: only the object form is a
  // fallback for the summary.
  const activeEnergySummary = summaries['activeEnergy'];
  const activeEnergy = plainQty(workout.activeEnergyBurned) ?? (activeEnergySummary !== undefined && 'qty' in activeEnergySummary ? (activeEnergySummary as QtyWithUnits) : null);
  const heartRate = workout.heartRate;
  const metadata = raw['metadata'];
  const deepMetadata = checkJsonDepth('metadata', metadata);
  if (deepMetadata !== null) return deepMetadata;
  return {
    workoutId: 'id' in workout && typeof workout.id === 'string' ? workout.id : v1WorkoutId(workout.name, start, end),
    formatVersion: version,
    name: workout.name,
    start,
    end,
    durationSeconds: workout.duration ?? null,
    location: workout.location ?? null,
    isIndoor: workout.isIndoor ?? null,
    activeEnergy,
    totalEnergy: plainQty(workout.totalEnergy),
    distance: plainQty(workout.distance),
    heartRateMin: heartRate?.min?.qty ?? null,
    heartRateAvg: heartRate?.avg?.qty ?? workout.avgHeartRate?.qty ?? null,
    heartRateMax: heartRate?.max?.qty ?? workout.maxHeartRate?.qty ?? null,
    summaries,
    metadata: isPlainObject(metadata) ? metadata : null,
  };
}
