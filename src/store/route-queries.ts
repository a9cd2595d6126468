import type pg from 'pg';

export interface RouteBox {
  userId: string;
  minLat: number;
  maxLat: number;
  minLon: number;
  maxLon: number;
  /** Inclusive. */
  from?: Date;
  /** Exclusive. */
  to?: Date;
}

export interface RoutePoint {
  workoutId: string;
  time: Date;
  latitude: number;
  longitude: number;
  altitude: number | null;
  course: number | null;
  courseAccuracy: number | null;
  horizontalAccuracy: number | null;
  verticalAccuracy: number | null;
  speed: number | null;
  speedAccuracy: number | null;
}

/** How a box query finds its points: the PostGIS GiST index, or the (user, lat, lon) btree. */
export type RouteQueryPlan = { method: 'geography'; postgisSchema: string } | { method: 'lat_lon' };

/**
 * A great-circle edge between two corners at the same latitude bulges toward the pole, so a
 * geography envelope with the box's own corners misses points near its equator-side edge. The
 * envelope used as the index pre-filter is therefore split into edges of at most 1° (bulge
 * < 0.0011°) and widened by 0.01°; the exact latitude/longitude ranges are applied on top. Both
 * paths thus return exactly the points inside the box.
 */
const SEGMENT_DEGREES = 1;
const MARGIN_DEGREES = 0.01;
/** Boxes wider than this, or reaching the poles, are left to the lat/lon path. */
const MAX_GEOGRAPHY_LON_SPAN = 180;
const MAX_GEOGRAPHY_ABS_LAT = 89;

/** Whether workout_route_points has the geography column of migration 0003 (PostGIS enabled). */
export async function routeQueryPlan(pool: pg.Pool): Promise<RouteQueryPlan> {
  const { rows } = await pool.query<{ schema: string | null }>(
    `SELECT (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'postgis') AS schema
      WHERE EXISTS (SELECT 1 FROM pg_attribute
                     WHERE attrelid = 'workout_route_points'::regclass AND attname = 'geog' AND NOT attisdropped)`,
  );
  const schema = rows[0]?.schema;
  return schema ? { method: 'geography', postgisSchema: schema } : { method: 'lat_lon' };
}

function checkBox(box: RouteBox): void {
  const { minLat, maxLat, minLon, maxLon } = box;
  if (![minLat, maxLat, minLon, maxLon].every(Number.isFinite)) throw new RangeError('the box needs four finite coordinates');
  if (minLat > maxLat || minLon > maxLon) throw new RangeError('the box needs minLat <= maxLat and minLon <= maxLon (a box across the antimeridian is two queries)');
}

/** The SQL of a box query for a given plan (exported so tests can EXPLAIN exactly what runs). */
export function routeBoxQuery(box: RouteBox, plan: RouteQueryPlan): { text: string; values: unknown[] } {
  checkBox(box);
  const values: unknown[] = [box.userId, box.minLat, box.maxLat, box.minLon, box.maxLon];
  const where = ['user_id = $1', 'latitude BETWEEN $2 AND $3', 'longitude BETWEEN $4 AND $5'];
  if (box.from) {
    values.push(box.from.toISOString());
    where.push(`start_time >= $${values.length}::timestamptz`);
  }
  if (box.to) {
    values.push(box.to.toISOString());
    where.push(`start_time < $${values.length}::timestamptz`);
  }
  if (plan.method === 'geography' && fitsGeography(box)) {
    const s = quoteIdent(plan.postgisSchema);
    const first = values.length + 1;
    values.push(
      Math.max(-180, box.minLon - MARGIN_DEGREES),
      Math.max(-90, box.minLat - MARGIN_DEGREES),
      Math.min(180, box.maxLon + MARGIN_DEGREES),
      Math.min(90, box.maxLat + MARGIN_DEGREES),
    );
    where.push(
      `geog OPERATOR(${s}.&&) ${s}.geography(${s}.st_segmentize(${s}.st_makeenvelope($${first}, $${first + 1}, $${first + 2}, $${first + 3}, 4326), ${SEGMENT_DEGREES}))`,
    );
  }
  const text = `SELECT workout_id, start_time, latitude, longitude, altitude, course, course_accuracy, horizontal_accuracy,
      vertical_accuracy, speed, speed_accuracy
    FROM workout_route_points WHERE ${where.join(' AND ')}
    ORDER BY start_time, workout_id`;
  return { text, values };
}

/** Route points of one user inside a latitude/longitude box (and time range), by time. */
export async function routePointsInBox(pool: pg.Pool, box: RouteBox): Promise<RoutePoint[]> {
  const { text, values } = routeBoxQuery(box, await routeQueryPlan(pool));
  const { rows } = await pool.query<RouteRow>(text, values);
  return rows.map(toPoint);
}

interface RouteRow {
  workout_id: string;
  start_time: Date;
  latitude: number;
  longitude: number;
  altitude: number | null;
  course: number | null;
  course_accuracy: number | null;
  horizontal_accuracy: number | null;
  vertical_accuracy: number | null;
  speed: number | null;
  speed_accuracy: number | null;
}

function toPoint(r: RouteRow): RoutePoint {
  return {
    workoutId: r.workout_id,
    time: r.start_time,
    latitude: r.latitude,
    longitude: r.longitude,
    altitude: r.altitude,
    course: r.course,
    courseAccuracy: r.course_accuracy,
    horizontalAccuracy: r.horizontal_accuracy,
    verticalAccuracy: r.vertical_accuracy,
    speed: r.speed,
    speedAccuracy: r.speed_accuracy,
  };
}

function fitsGeography(box: RouteBox): boolean {
  return box.maxLon - box.minLon <= MAX_GEOGRAPHY_LON_SPAN && Math.abs(box.minLat) <= MAX_GEOGRAPHY_ABS_LAT && Math.abs(box.maxLat) <= MAX_GEOGRAPHY_ABS_LAT;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
