import { canonicalMetricName } from './aliases.js';
import { bloodPressureShape } from './blood-pressure.js';
import type { ParseContext } from './context.js';
import { heartRateShape } from './heart-rate.js';
import { Unsupported, type MetricInfo, type MetricShape } from './metric-shape.js';
import { quantityShape } from './quantity.js';
import { metricObjectSchema } from './schema.js';
import { sleepShape } from './sleep.js';
import type { SampleKind } from './types.js';
import { describeValue, isPlainObject, Problem, problemFromZod } from './validate.js';

const REJECTION_TYPE = 'metrics';

function parsePoints<K extends SampleKind>(shape: MetricShape<K>, points: readonly unknown[], metric: MetricInfo, basePath: string, ctx: ParseContext): void {
  for (let i = 0; i < points.length; i++) {
    const outcome = shape.parsePoint(points[i], metric);
    if (outcome instanceof Problem) ctx.rejectItem(shape.kind, REJECTION_TYPE, `${basePath}.data[${i}]`, metric.received, outcome);
    else if (outcome instanceof Unsupported) ctx.notStored(outcome.type, 1, 'unsupported_type');
    else ctx.accept(shape.kind, outcome);
  }
}

/** One object of `data.metrics`: `{name, units, data: [points]}`. */
function parseMetricObject(raw: unknown, index: number, ctx: ParseContext): void {
  const path = `data.metrics[${index}]`;
  if (!isPlainObject(raw)) {
    ctx.reject(REJECTION_TYPE, path, undefined, new Problem(undefined, 'invalid_shape', `A metric must be an object but is ${describeValue(raw)}`));
    return;
  }
  const parsed = metricObjectSchema.safeParse(raw);
  const nameAsReceived = typeof raw['name'] === 'string' ? raw['name'] : undefined;
  if (!parsed.success) {
    ctx.reject(REJECTION_TYPE, path, nameAsReceived, problemFromZod(parsed.error, raw, 'metric'));
    return;
  }
  const { name, units, data } = parsed.data;
  if (name.trim() === '') {
    ctx.reject(REJECTION_TYPE, path, name, new Problem('name', 'missing_value', 'The metric has an empty name'));
    return;
  }
  const canonicalName = canonicalMetricName(name);
  const metric: MetricInfo = { name: canonicalName, received: name, units: units ?? '', bounds: ctx.bounds };
  // Q4: `data: []` (or no `data`) is a selected metric without samples.
  const points = data ?? [];
  // The point shape by canonical name. Every name not listed is a quantity metric: names are
  // open text and an unknown name is never rejected (§1.8). A new shape is a file and a case.
  switch (canonicalName) {
    case 'heart_rate':
      return parsePoints(heartRateShape, points, metric, path, ctx);
    case 'blood_pressure':
      return parsePoints(bloodPressureShape, points, metric, path, ctx);
    case 'sleep_analysis':
      return parsePoints(sleepShape, points, metric, path, ctx);
    default:
      return parsePoints(quantityShape, points, metric, path, ctx);
  }
}

/** `data.metrics`: every metric object is read on its own; a bad one never hides the others. */
export function parseMetricsSection(value: unknown, ctx: ParseContext): void {
  if (!Array.isArray(value)) {
    ctx.reject(REJECTION_TYPE, 'data.metrics', undefined, new Problem(undefined, 'invalid_shape', `data.metrics must be an array but is ${describeValue(value)}`));
    return;
  }
  for (let i = 0; i < value.length; i++) parseMetricObject(value[i], i, ctx);
}
