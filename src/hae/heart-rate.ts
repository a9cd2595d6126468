import type { MetricShape } from './metric-shape.js';
import { heartRatePointSchema } from './schema.js';
import { checkDate, describeValue, isPlainObject, missingHeartRateProblem, Problem, problemFromZod, sourceOrEmpty } from './validate.js';

/** `heart_rate` points `{date, Min, Avg, Max, source?}` (capitalised keys, §1.4). */
export const heartRateShape: MetricShape<'heartRate'> = {
  kind: 'heartRate',
  parsePoint(point, metric) {
    if (!isPlainObject(point)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} point must be an object but is ${describeValue(point)}`);
    }
    const parsed = heartRatePointSchema.safeParse(point);
    if (!parsed.success) return problemFromZod(parsed.error, point, `${metric.received} point`);
    const { Min, Avg, Max, qty } = parsed.data;
    let min = Min ?? null;
    let avg = Avg ?? null;
    let max = Max ?? null;
    if (min === null && avg === null && max === null) {
      // An instantaneous sample written as `qty` (unaggregated export): min = avg = max.
      if (qty === null || qty === undefined) return missingHeartRateProblem();
      min = avg = max = qty;
    }
    const time = checkDate(parsed.data.date, 'date', metric.bounds);
    if (time instanceof Problem) return time;
    return { time, source: sourceOrEmpty(parsed.data.source), min, avg, max, units: parsed.data.units ?? metric.units };
  },
};
