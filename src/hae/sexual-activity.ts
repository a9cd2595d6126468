import type { MetricShape, PointShapeSelector } from './metric-shape.js';
import { setOwn } from './own.js';
import { commonPointKeys, quantityRow, quantityShape } from './quantity.js';
import { checkDate, checkNotNegative, describeValue, isPlainObject, Problem, sourceOrEmpty } from './validate.js';

/**
 * `sexual_activity` points `{date, "Unspecified": n, "Protection Used": n, "Protection Not Used": n}`
 * (keys with spaces, §1.4): one quantity row whose qty is the sum of the counts, with each count
 * kept in `extra` under its key as received. Every key beside date/source/units is a count, so a
 * renamed or added category is summed too rather than lost.
 */
const countsShape: MetricShape<'quantity'> = {
  kind: 'quantity',
  parsePoint(point, metric) {
    if (!isPlainObject(point)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} point must be an object but is ${describeValue(point)}`);
    }
    const counts: Record<string, number> = {};
    let total = 0;
    let seen = 0;
    for (const key of Object.keys(point)) {
      if (commonPointKeys.has(key)) continue;
      const count = point[key];
      if (typeof count !== 'number' || !Number.isFinite(count)) {
        return new Problem(key, 'not_a_number', `${key} must be a count but is ${describeValue(count)}`);
      }
      const negative = checkNotNegative(key, count);
      if (negative !== null) return negative;
      setOwn(counts, key, count);
      total += count;
      seen++;
    }
    if (seen === 0) return new Problem('qty', 'missing_value', `The ${metric.received} point has no counts (Unspecified, Protection Used, Protection Not Used)`);
    if (!Number.isFinite(total)) return new Problem('qty', 'out_of_range', `The counts of the ${metric.received} point add up to more than a number can hold`);
    const time = checkDate(point['date'], 'date', metric.bounds);
    if (time instanceof Problem) return time;
    const source = point['source'];
    if (source !== undefined && source !== null && typeof source !== 'string') {
      return new Problem('source', 'invalid_shape', `source must be a string but is ${describeValue(source)}`);
    }
    const units = typeof point['units'] === 'string' ? point['units'] : metric.units;
    return quantityRow(metric, time, total, units, sourceOrEmpty(source), counts);
  },
};

/** A point with `qty` is read like any quantity point; one without it carries the counts. */
export const sexualActivityShapeOf: PointShapeSelector = (point) => (isPlainObject(point) && Object.hasOwn(point, 'qty') ? quantityShape : countsShape);
