import type { ParseContext } from './context.js';
import { describeValue, isPlainObject, Problem } from './validate.js';
import { parseWorkoutRoute } from './workout-route.js';
import { parseWorkoutSeries } from './workout-series.js';
import { parseWorkoutSummary } from './workout-summary.js';

const REJECTION_TYPE = 'workouts';

/**
 * One workout: its summary row first; its series and route only when the summary is stored (they
 * belong to it). A rejected workout's series and route points are neither rows nor rejections.
 */
function parseWorkout(raw: unknown, index: number, ctx: ParseContext): void {
  const path = `data.workouts[${index}]`;
  if (!isPlainObject(raw)) {
    ctx.rejectItem('workouts', REJECTION_TYPE, path, undefined, new Problem(undefined, 'invalid_shape', `A workout must be an object but is ${describeValue(raw)}`));
    return;
  }
  // Q18: the body does not say its export version; a workout with an `id` is v2, one without is
  // v1. Decided per workout, not per body.
  const version = raw['id'] === undefined || raw['id'] === null ? 1 : 2;
  const row = parseWorkoutSummary(raw, version, ctx.bounds, ctx.limits);
  const name = typeof raw['name'] === 'string' ? raw['name'] : undefined;
  // A rejected workout takes its series and route with it.
  if (!ctx.settle('workouts', row, REJECTION_TYPE, path, name) || row instanceof Problem) return;
  const place = { workoutId: row.workoutId, name: row.name, end: row.end, path };
  parseWorkoutSeries(raw, place, ctx);
  parseWorkoutRoute(raw['route'], place, ctx);
}

/** `data.workouts`: each workout on its own. */
export function parseWorkoutsSection(value: unknown, ctx: ParseContext): void {
  if (!Array.isArray(value)) {
    ctx.reject(REJECTION_TYPE, 'data.workouts', undefined, new Problem(undefined, 'invalid_shape', `data.workouts must be an array but is ${describeValue(value)}`));
    return;
  }
  for (let i = 0; i < value.length; i++) parseWorkout(value[i], i, ctx);
}
