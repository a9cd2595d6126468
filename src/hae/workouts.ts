import type { ParseContext } from './context.js';
import { qtyWithUnitsSchema, workoutV2Schema } from './schema.js';
import type { QtyWithUnits, WorkoutRow } from './types.js';
import { checkDate, describeValue, isPlainObject, Problem, problemFromZod } from './validate.js';

const REJECTION_TYPE = 'workouts';
/** notStored type of legacy workouts (Q18), modelled in a later issue. */
export const WORKOUTS_V1_TYPE = 'workouts_v1';

/**
 * Every `{qty, units}` field of the workout, by key (activeEnergyBurned, intensity, avgSpeed,
 * temperature, …), as received. Series (arrays) and heartRate {min, avg, max} are not summaries.
 */
function collectSummaries(workout: Record<string, unknown>): Record<string, QtyWithUnits> | Problem {
  const summaries: Record<string, QtyWithUnits> = {};
  for (const key of Object.keys(workout)) {
    const value = workout[key];
    if (!isPlainObject(value) || !Object.hasOwn(value, 'qty')) continue;
    const parsed = qtyWithUnitsSchema.safeParse(value);
    if (!parsed.success) return problemFromZod(parsed.error, value, 'workout', key);
    summaries[key] = { qty: parsed.data.qty, units: parsed.data.units };
  }
  return summaries;
}

function plainQty(value: { qty: number; units: string } | null | undefined): QtyWithUnits | null {
  return value === null || value === undefined ? null : { qty: value.qty, units: value.units };
}

/** A v2 workout (has a HealthKit `id`) to its summary row; series come in a later issue. */
export function parseWorkoutV2(raw: Record<string, unknown>, bounds: ParseContext['bounds']): WorkoutRow | Problem {
  const parsed = workoutV2Schema.safeParse(raw);
  if (!parsed.success) return problemFromZod(parsed.error, raw, 'workout');
  const workout = parsed.data;
  const start = checkDate(workout.start, 'start', bounds);
  if (start instanceof Problem) return start;
  const end = checkDate(workout.end, 'end', bounds);
  if (end instanceof Problem) return end;
  const summaries = collectSummaries(raw);
  if (summaries instanceof Problem) return summaries;
  // `activeEnergy` is a per-minute series in v2 and a summary in v1-style bodies: only the
  // object form is a fallback for the summary.
  const activeEnergy = plainQty(workout.activeEnergyBurned) ?? (isPlainObject(raw['activeEnergy']) ? (summaries['activeEnergy'] ?? null) : null);
  const heartRate = workout.heartRate;
  return {
    workoutId: workout.id,
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
    metadata: workout.metadata ?? null,
  };
}

function parseWorkout(raw: unknown, index: number, ctx: ParseContext): void {
  const path = `data.workouts[${index}]`;
  if (!isPlainObject(raw)) {
    ctx.rejectItem('workouts', REJECTION_TYPE, path, undefined, new Problem(undefined, 'invalid_shape', `A workout must be an object but is ${describeValue(raw)}`));
    return;
  }
  // Q18: the body does not say its export version; a workout without `id` is v1. Decided per
  // workout, not per body.
  if (raw['id'] === undefined || raw['id'] === null) {
    ctx.notStored(WORKOUTS_V1_TYPE, 1, 'unsupported_type');
    return;
  }
  const row = parseWorkoutV2(raw, ctx.bounds);
  const name = typeof raw['name'] === 'string' ? raw['name'] : undefined;
  if (row instanceof Problem) ctx.rejectItem('workouts', REJECTION_TYPE, path, name, row);
  else ctx.accept('workouts', row);
}

/** `data.workouts`: each workout on its own. */
export function parseWorkoutsSection(value: unknown, ctx: ParseContext): void {
  if (!Array.isArray(value)) {
    ctx.reject(REJECTION_TYPE, 'data.workouts', undefined, new Problem(undefined, 'invalid_shape', `data.workouts must be an array but is ${describeValue(value)}`));
    return;
  }
  for (let i = 0; i < value.length; i++) parseWorkout(value[i], i, ctx);
}
