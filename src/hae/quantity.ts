import type { MetricShape } from './metric-shape.js';
import { Unsupported } from './metric-shape.js';
import { quantityPointSchema } from './schema.js';
import type { QuantityRow } from './types.js';
import { checkDate, describeValue, isPlainObject, Problem, problemFromZod, sourceOrEmpty } from './validate.js';

/** Keys with a column of their own; every other scalar goes to `extra`. */
const columnKeys = new Set(['date', 'qty', 'source', 'units']);

/**
 * Other scalar fields of the point: blood_glucose `mealTime`, insulin_delivery `reason`,
 * handwashing `value`, a wrist-temperature `end`, … Objects and arrays stay in the raw payload.
 */
function extraFields(point: Record<string, unknown>): QuantityRow['extra'] {
  let extra: Record<string, string | number | boolean> | null = null;
  for (const key in point) {
    if (columnKeys.has(key)) continue;
    const value = point[key];
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      extra ??= {};
      extra[key] = value;
    }
  }
  return extra;
}

/** True when the point has nothing but the keys every point has: it lacks its value. */
function hasOnlyCommonKeys(point: Record<string, unknown>): boolean {
  for (const key in point) if (!columnKeys.has(key)) return false;
  return true;
}

/** The common `{date, qty, source?}` point of every metric without a special shape. */
export const quantityShape: MetricShape<'quantity'> = {
  kind: 'quantity',
  parsePoint(point, metric) {
    if (!isPlainObject(point)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} point must be an object but is ${describeValue(point)}`);
    }
    if (!Object.hasOwn(point, 'qty')) {
      // e.g. sexual_activity {date, "Unspecified": n, "Protection Used": n}: a shape not modelled yet.
      if (!hasOnlyCommonKeys(point)) return new Unsupported(`metric:${metric.name}`);
      return new Problem('qty', 'missing_value', `The ${metric.received} point has no qty`);
    }
    const parsed = quantityPointSchema.safeParse(point);
    if (!parsed.success) return problemFromZod(parsed.error, point, `${metric.received} point`);
    const time = checkDate(parsed.data.date, 'date', metric.bounds);
    if (time instanceof Problem) return time;
    return {
      metric: metric.name,
      metricReceived: metric.received,
      time,
      qty: parsed.data.qty,
      // A point-level unit (workout-style points carry one) is more specific than the metric's.
      units: parsed.data.units ?? metric.units,
      source: sourceOrEmpty(parsed.data.source),
      extra: extraFields(point),
    };
  },
};
