import type { MetricShape } from './metric-shape.js';
import { heartRatePointSchema, isValidHeartRatePoint, type HeartRatePoint } from './schema.js';
import { checkDate, checkHeartRate, describeValue, isPlainObject, missingHeartRateProblem, Problem, problemFromZod, sourceOrEmpty } from './validate.js';

/** `heart_rate` points `{date, Min, Avg, Max, source?}` (capitalised keys, §1.4). */
export const heartRateShape: MetricShape<'heartRate'> = {
  kind: 'heartRate',
  parsePoint(point, metric) {
    if (!isPlainObject(point)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} point must be an object but is ${describeValue(point)}`);
    }
    let data: HeartRatePoint;
    if (isValidHeartRatePoint(point)) data = point;
    else {
      const parsed = heartRatePointSchema.safeParse(point);
      if (!parsed.success) return problemFromZod(parsed.error, point, `${metric.received} point`);
      data = parsed.data;
    }
    const { Min, Avg, Max, qty } = data;
    const min = Min ?? null;
    const avg = Avg ?? null;
    const max = Max ?? null;
    const time = checkDate(data.date, 'date', metric.bounds);
    if (time instanceof Problem) return time;
    const source = sourceOrEmpty(data.source);
    const units = data.units ?? metric.units;
    if (min === null && avg === null && max === null) {
      // An instantaneous sample written as `qty` (unaggregated export): min = avg = max.
      if (qty === null || qty === undefined) return missingHeartRateProblem();
      const range = checkHeartRate('qty', qty, metric.limits);
      return range ?? { time, source, min: qty, avg: qty, max: qty, units };
    }
    // Q16: each of Min, Avg, Max on its own, so the message names the one that is wrong. Called
    // one by one, not over a list: this runs for every point.
    const range = checkHeartRate('Min', min, metric.limits) ?? checkHeartRate('Avg', avg, metric.limits) ?? checkHeartRate('Max', max, metric.limits);
    return range ?? { time, source, min, avg, max, units };
  },
};
