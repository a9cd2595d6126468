import type { MetricInfo, MetricShape } from './metric-shape.js';
import { setOwn } from './own.js';
import { isValidQuantityPoint, quantityPointSchema, type QuantityPoint } from './schema.js';
import type { Instant, QuantityRow } from './types.js';
import { checkDate, checkQuantity, describeValue, isPlainObject, Problem, problemFromZod, sourceOrEmpty } from './validate.js';

/** Keys every point has (or may have); all other scalars of a point go to `extra`. */
export const commonPointKeys: ReadonlySet<string> = new Set(['date', 'qty', 'source', 'units']);

/**
 * Other scalar fields of the point: blood_glucose `mealTime`, insulin_delivery `reason`,
 * handwashing/toothbrushing `value`, a wrist-temperature `end`, … Objects and arrays stay in the
 * raw payload.
 */
function extraFields(point: Record<string, unknown>): QuantityRow['extra'] {
  let extra: Record<string, string | number | boolean> | null = null;
  for (const key of Object.keys(point)) {
    if (commonPointKeys.has(key)) continue;
    const value = point[key];
    if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') {
      extra ??= {};
      setOwn(extra, key, value);
    }
  }
  return extra;
}

/** True when the point has nothing but the keys every point has: it lacks its value. */
function hasOnlyCommonKeys(point: Record<string, unknown>): boolean {
  for (const key of Object.keys(point)) if (!commonPointKeys.has(key)) return false;
  return true;
}

/** A quantity row after the value checks of validate.ts (which may scale the value, Q13). */
export function quantityRow(
  metric: MetricInfo,
  time: Instant,
  qty: number,
  units: string,
  source: string | null | undefined,
  extra: QuantityRow['extra'],
): QuantityRow | Problem {
  const stored = checkQuantity(metric.name, qty, units, metric.limits);
  if (stored instanceof Problem) return stored;
  return { metric: metric.name, metricReceived: metric.received, time, qty: stored, units, source: sourceOrEmpty(source), extra };
}

/** The common `{date, qty, source?}` point of every metric without a special shape. */
export const quantityShape: MetricShape<'quantity'> = {
  kind: 'quantity',
  parsePoint(point, metric) {
    if (!isPlainObject(point)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} point must be an object but is ${describeValue(point)}`);
    }
    if (!Object.hasOwn(point, 'qty')) {
      if (hasOnlyCommonKeys(point)) return new Problem('qty', 'missing_value', `The ${metric.received} point has no qty`);
      const keys = Object.keys(point).filter((key) => !commonPointKeys.has(key));
      return new Problem('qty', 'invalid_shape', `The ${metric.received} point has no qty, only ${describeValue(keys)}: not a shape this metric has`);
    }
    let data: QuantityPoint;
    if (isValidQuantityPoint(point)) data = point;
    else {
      const parsed = quantityPointSchema.safeParse(point);
      if (!parsed.success) return problemFromZod(parsed.error, point, `${metric.received} point`);
      data = parsed.data;
    }
    const time = checkDate(data.date, 'date', metric.bounds);
    if (time instanceof Problem) return time;
    // A point-level unit (workout-style points carry one) is more specific than the metric's.
    return quantityRow(metric, time, data.qty, data.units ?? metric.units, data.source, extraFields(point));
  },
};
