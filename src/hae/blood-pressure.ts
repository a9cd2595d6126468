import type { MetricShape } from './metric-shape.js';
import { bloodPressurePointSchema } from './schema.js';
import { checkBloodPressure, checkDate, describeValue, isPlainObject, Problem, problemFromZod, sourceOrEmpty } from './validate.js';

/** `blood_pressure` points `{date, systolic, diastolic, source?}`, units mmHg (§1.4). */
export const bloodPressureShape: MetricShape<'bloodPressure'> = {
  kind: 'bloodPressure',
  parsePoint(point, metric) {
    if (!isPlainObject(point)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} point must be an object but is ${describeValue(point)}`);
    }
    const parsed = bloodPressurePointSchema.safeParse(point);
    if (!parsed.success) return problemFromZod(parsed.error, point, `${metric.received} point`);
    const { systolic, diastolic } = parsed.data;
    const rangeProblem = checkBloodPressure(systolic, diastolic, metric.limits);
    if (rangeProblem !== null) return rangeProblem;
    const time = checkDate(parsed.data.date, 'date', metric.bounds);
    if (time instanceof Problem) return time;
    return { time, source: sourceOrEmpty(parsed.data.source), systolic, diastolic, units: parsed.data.units ?? metric.units };
  },
};
