import { z } from 'zod';

/*
 * External shapes of a Health Auto Export body (§1 of the format note). Every schema is a loose
 * object: the app adds keys over time and unknown keys must never fail a point.
 *
 * Dates are `dateField` (unknown) here on purpose: dates.ts decides what a timestamp is, so that a bad
 * date is reported as `invalid_date` / `date_out_of_range` rather than as a shape error.
 *
 * Zod runs per point (safeParse, so one bad point never rejects its neighbours). Measured on
 * Node 20 with zod 4.6: ~0.06–0.09 µs per quantity point and ~0.11–0.13 µs per heart-rate point
 * (1,000,000 points); but each parse also copies the point, and in a whole-payload run those
 * copies cost as much again in garbage collection. The two bulk shapes (heart rate, quantity)
 * therefore have guards below that let the common valid point through without zod. The
 * timestamp is the costly part (~0.4 µs with the general regex), hence the char-code fast path
 * in dates.ts.
 */

export const optionalNumber = z.number().nullish();
/**
 * A date, checked by dates.ts, never by zod. Optional to zod (zod 4 treats a bare z.unknown()
 * key as required) so that a missing date is `invalid_date`, like any unusable date.
 */
export const dateField = z.unknown().optional();
/** Q1/Q2: `source` is often missing, sometimes "" or null. */
export const optionalSource = z.string().nullish();

/** `{"data": {...}}`: keys are checked one by one so a bad key never hides the good ones. */
export const envelopeSchema = z.looseObject({
  data: z.record(z.string(), z.unknown()),
});
export type Envelope = z.infer<typeof envelopeSchema>;

/**
 * Q4: `data` may be `[]`; a missing `data` is treated the same. `name` is not trimmed here: the
 * name as received is kept (metricReceived); a blank name is refused by the metrics parser.
 */
export const metricObjectSchema = z.looseObject({
  name: z.string(),
  units: z.string().nullish(),
  data: z.array(z.unknown()).nullish(),
});
export type MetricObject = z.infer<typeof metricObjectSchema>;

/** The common point `{date, qty, source?}` plus any other scalar fields (mealTime, reason, value, …). */
export const quantityPointSchema = z.looseObject({
  date: dateField,
  qty: z.number(),
  source: optionalSource,
  units: z.string().nullish(),
});
export type QuantityPoint = z.infer<typeof quantityPointSchema>;

/** `heart_rate`: capitalised Min/Avg/Max; `qty` accepted as an instantaneous sample. */
export const heartRatePointSchema = z.looseObject({
  date: dateField,
  Min: optionalNumber,
  Avg: optionalNumber,
  Max: optionalNumber,
  qty: optionalNumber,
  source: optionalSource,
  units: z.string().nullish(),
});
export type HeartRatePoint = z.infer<typeof heartRatePointSchema>;

const isOptionalNumber = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'number' && Number.isFinite(v));
const isOptionalString = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string';
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/*
 * The guards below accept exactly what their schema accepts for the common, valid point and let
 * everything else go to zod (which then explains the problem). They exist because zod copies each
 * point, and a payload holds up to a million of them.
 */

/** True when envelopeSchema would accept the body: an object whose `data` is an object. */
export function isValidEnvelope(input: unknown): input is Envelope {
  return isRecord(input) && isRecord(input['data']);
}

/**
 * True when metricObjectSchema would accept the metric object unchanged. zod would also walk
 * and copy its `data` array: a million elements for the largest exports.
 */
export function isValidMetricObject(metric: Record<string, unknown>): metric is MetricObject {
  const data = metric['data'];
  return typeof metric['name'] === 'string' && isOptionalString(metric['units']) && (data === undefined || data === null || Array.isArray(data));
}

/** True when heartRatePointSchema would accept the point unchanged. */
export function isValidHeartRatePoint(point: Record<string, unknown>): point is HeartRatePoint {
  return (
    isOptionalNumber(point['Min']) &&
    isOptionalNumber(point['Avg']) &&
    isOptionalNumber(point['Max']) &&
    isOptionalNumber(point['qty']) &&
    isOptionalString(point['source']) &&
    isOptionalString(point['units'])
  );
}

/** True when quantityPointSchema would accept the point unchanged. */
export function isValidQuantityPoint(point: Record<string, unknown>): point is QuantityPoint {
  const qty = point['qty'];
  return typeof qty === 'number' && Number.isFinite(qty) && isOptionalString(point['source']) && isOptionalString(point['units']);
}

export const bloodPressurePointSchema = z.looseObject({
  date: dateField,
  systolic: z.number(),
  diastolic: z.number(),
  source: optionalSource,
  units: z.string().nullish(),
});
export type BloodPressurePoint = z.infer<typeof bloodPressurePointSchema>;

/**
 * Aggregated sleep ("Summarize Data" on), both shapes: before app v6.6.2 `sleepSource` and
 * `inBedSource`, after it `source` plus core/deep/rem/awake; `totalSleep` only in 2024+ docs
 * (absent from the 2025 capture), so every amount is optional.
 */
export const sleepAggregatedSchema = z.looseObject({
  date: dateField,
  sleepStart: dateField,
  sleepEnd: dateField,
  inBedStart: dateField,
  inBedEnd: dateField,
  totalSleep: optionalNumber,
  asleep: optionalNumber,
  core: optionalNumber,
  deep: optionalNumber,
  rem: optionalNumber,
  awake: optionalNumber,
  inBed: optionalNumber,
  source: optionalSource,
  sleepSource: optionalSource,
  inBedSource: optionalSource,
});
export type SleepAggregatedEntry = z.infer<typeof sleepAggregatedSchema>;

/** Keys whose presence marks an aggregated sleep entry (any one of them suffices). */
export const sleepAggregatedMarkers = ['asleep', 'inBed', 'totalSleep', 'core', 'deep', 'rem', 'awake', 'sleepStart'] as const;
/** Keys whose presence marks an unaggregated sleep segment `{startDate, endDate, qty, value}`. */
export const sleepSegmentMarkers = ['startDate', 'endDate'] as const;

export function hasAnyKey(item: Record<string, unknown>, keys: readonly string[]): boolean {
  for (const key of keys) if (Object.hasOwn(item, key)) return true;
  return false;
}

/**
 * Unaggregated sleep ("Summarize Data" off): `{startDate, endDate, qty (hours), value, source}`;
 * Q11: `date` may be present and null. `value` is checked by sleep-segments.ts.
 */
export const sleepSegmentSchema = z.looseObject({
  startDate: dateField,
  endDate: dateField,
  qty: optionalNumber,
  value: z.unknown().optional(),
  source: optionalSource,
});

/** `{qty, units}` as used by workout summaries; units may be missing (kept as ''). */
export const qtyWithUnitsSchema = z.looseObject({
  qty: z.number(),
  units: z
    .string()
    .nullish()
    .transform((units) => units ?? ''),
});
export type QtyWithUnitsInput = z.infer<typeof qtyWithUnitsSchema>;

const heartRateSummarySchema = z.looseObject({
  min: qtyWithUnitsSchema.nullish(),
  avg: qtyWithUnitsSchema.nullish(),
  max: qtyWithUnitsSchema.nullish(),
});

/** v1 `elevation: {ascent, descent, units}` (§1.6). */
export const elevationSchema = z.looseObject({
  ascent: optionalNumber,
  descent: optionalNumber,
  units: z.string().nullish(),
});

/** Fields both workout export versions share (§1.6). */
const workoutCommonFields = {
  name: z.string(),
  start: dateField,
  end: dateField,
  duration: optionalNumber,
  location: z.string().nullish(),
  isIndoor: z.boolean().nullish(),
  /** Checked here; the row keeps the input's own object (zod's copy loses a `__proto__` key). */
  metadata: z.record(z.string(), z.unknown()).nullish(),
  activeEnergyBurned: qtyWithUnitsSchema.nullish(),
  totalEnergy: qtyWithUnitsSchema.nullish(),
  distance: qtyWithUnitsSchema.nullish(),
  avgHeartRate: qtyWithUnitsSchema.nullish(),
  maxHeartRate: qtyWithUnitsSchema.nullish(),
  heartRate: heartRateSummarySchema.nullish(),
  elevation: elevationSchema.nullish(),
};

/** Workout export version 1 (legacy, Q18): no `id`. */
export const workoutV1Schema = z.looseObject(workoutCommonFields);

/** Workout export version 2 (§1.6): recognised by its HealthKit `id`. */
export const workoutV2Schema = z.looseObject({ id: z.string().min(1), ...workoutCommonFields });
export type WorkoutInput = z.infer<typeof workoutV1Schema>;

/** A point of a workout series: `{date, qty, units}` or heart rate `{date, Min, Avg, Max, units}`. */
export const workoutSeriesPointSchema = z.looseObject({
  date: dateField,
  qty: optionalNumber,
  Min: optionalNumber,
  Avg: optionalNumber,
  Max: optionalNumber,
  units: z.string().nullish(),
  source: optionalSource,
});

/** v2 route point (§1.6, [S1, S8 Workout.ts]). */
export const routePointV2Schema = z.looseObject({
  latitude: z.number(),
  longitude: z.number(),
  altitude: optionalNumber,
  course: optionalNumber,
  courseAccuracy: optionalNumber,
  horizontalAccuracy: optionalNumber,
  verticalAccuracy: optionalNumber,
  speed: optionalNumber,
  speedAccuracy: optionalNumber,
  timestamp: dateField,
});

/** v1 route point `{lat, lon, altitude, timestamp}`. */
export const routePointV1Schema = z.looseObject({
  lat: z.number(),
  lon: z.number(),
  altitude: optionalNumber,
  timestamp: dateField,
});
