import type { ParseContext } from './context.js';
import type { ValidationLimits } from './limits.js';
import { routePointV1Schema, routePointV2Schema } from './schema.js';
import type { WorkoutRoutePointRow } from './types.js';
import { checkCoordinates, checkDate, describeValue, isPlainObject, Problem, problemFromZod, type DateBounds } from './validate.js';
import type { WorkoutPlace } from './workout-series.js';

const REJECTION_TYPE = 'workouts';

/**
 * CoreLocation marks an unknown course, speed or accuracy with a negative value (-1): stored as
 * null, never as a measurement. Altitude can be negative (below sea level) and is kept.
 */
function validOrNull(value: number | null | undefined): number | null {
  return value === null || value === undefined || value < 0 ? null : value;
}

/** v2 `{latitude, longitude, altitude, course, …, timestamp, speed, speedAccuracy}`. */
function parseV2Point(point: Record<string, unknown>, place: WorkoutPlace, bounds: DateBounds, limits: ValidationLimits): WorkoutRoutePointRow | Problem {
  const parsed = routePointV2Schema.safeParse(point);
  if (!parsed.success) return problemFromZod(parsed.error, point, 'route point');
  const p = parsed.data;
  const time = checkDate(p.timestamp, 'timestamp', bounds);
  if (time instanceof Problem) return time;
  const range = checkCoordinates(p.latitude, p.longitude, limits, { latitude: 'latitude', longitude: 'longitude' });
  if (range !== null) return range;
  return {
    workoutId: place.workoutId,
    time,
    latitude: p.latitude,
    longitude: p.longitude,
    altitude: p.altitude ?? null,
    course: validOrNull(p.course),
    courseAccuracy: validOrNull(p.courseAccuracy),
    horizontalAccuracy: validOrNull(p.horizontalAccuracy),
    verticalAccuracy: validOrNull(p.verticalAccuracy),
    speed: validOrNull(p.speed),
    speedAccuracy: validOrNull(p.speedAccuracy),
  };
}

/** v1 `{lat, lon, altitude, timestamp}` (Q18). */
function parseV1Point(point: Record<string, unknown>, place: WorkoutPlace, bounds: DateBounds, limits: ValidationLimits): WorkoutRoutePointRow | Problem {
  const parsed = routePointV1Schema.safeParse(point);
  if (!parsed.success) return problemFromZod(parsed.error, point, 'route point');
  const p = parsed.data;
  const time = checkDate(p.timestamp, 'timestamp', bounds);
  if (time instanceof Problem) return time;
  const range = checkCoordinates(p.lat, p.lon, limits, { latitude: 'lat', longitude: 'lon' });
  if (range !== null) return range;
  return {
    workoutId: place.workoutId,
    time,
    latitude: p.lat,
    longitude: p.lon,
    altitude: p.altitude ?? null,
    course: null,
    courseAccuracy: null,
    horizontalAccuracy: null,
    verticalAccuracy: null,
    speed: null,
    speedAccuracy: null,
  };
}

/** The point's version is sniffed per point (`latitude` ⇒ v2, `lat` ⇒ v1, §1.6). */
function parseRoutePoint(point: unknown, place: WorkoutPlace, bounds: DateBounds, limits: ValidationLimits): WorkoutRoutePointRow | Problem {
  if (!isPlainObject(point)) return new Problem(undefined, 'invalid_shape', `A route point must be an object but is ${describeValue(point)}`);
  if (Object.hasOwn(point, 'latitude') || Object.hasOwn(point, 'longitude')) return parseV2Point(point, place, bounds, limits);
  if (Object.hasOwn(point, 'lat') || Object.hasOwn(point, 'lon')) return parseV1Point(point, place, bounds, limits);
  return new Problem(undefined, 'invalid_shape', 'A route point has neither latitude/longitude nor lat/lon');
}

/** `route[]` of one workout (the workout row is already accepted). */
export function parseWorkoutRoute(route: unknown, place: WorkoutPlace, ctx: ParseContext): void {
  if (route === undefined || route === null) return;
  if (!Array.isArray(route)) {
    ctx.reject(REJECTION_TYPE, `${place.path}.route`, place.name, new Problem('route', 'invalid_shape', `route must be an array but is ${describeValue(route)}`));
    return;
  }
  for (let i = 0; i < route.length; i++) {
    ctx.settle('workoutRoute', parseRoutePoint(route[i], place, ctx.bounds, ctx.limits), REJECTION_TYPE, `${place.path}.route[${i}]`, place.name);
  }
}
