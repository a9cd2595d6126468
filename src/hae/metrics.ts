import { canonicalMetricName } from './aliases.js';
import { bloodPressureShape } from './blood-pressure.js';
import type { ParseContext } from './context.js';
import { heartRateShape } from './heart-rate.js';
import type { MetricInfo, MetricShape, PointShapeSelector } from './metric-shape.js';
import { quantityShape } from './quantity.js';
import { metricObjectSchema } from './schema.js';
import { sexualActivityShapeOf } from './sexual-activity.js';
import { sleepShapeOf } from './sleep-shape.js';
import type { SampleKind } from './types.js';
import { describeValue, isPlainObject, Problem, problemFromZod } from './validate.js';

const REJECTION_TYPE = 'metrics';

/**
 * The point shape by canonical name. Every name not listed is a quantity metric: names are open
 * text and an unknown name is never rejected (§1.8). A new shape is a file and an entry here.
 * blood_glucose (mealTime), insulin_delivery (reason), handwashing/toothbrushing (value) and
 * apple_sleeping_wrist_temperature (end) are quantity points whose other scalars go to `extra`.
 */
const shapeByMetric: ReadonlyMap<string, PointShapeSelector> = new Map<string, PointShapeSelector>([
  ['heart_rate', () => heartRateShape],
  ['blood_pressure', () => bloodPressureShape],
  ['sleep_analysis', sleepShapeOf],
  ['sexual_activity', sexualActivityShapeOf],
]);
const quantitySelector: PointShapeSelector = () => quantityShape;

function parsePoint<K extends SampleKind>(shape: MetricShape<K>, point: unknown, metric: MetricInfo, path: string, ctx: ParseContext): void {
  ctx.settle(shape.kind, shape.parsePoint(point, metric), REJECTION_TYPE, path, metric.received);
}

/** One object of `data.metrics`: `{name, units, data: [points]}`. Returns how many points it detached (releaseInput). */
function parseMetricObject(raw: unknown, index: number, ctx: ParseContext): number {
  const path = `data.metrics[${index}]`;
  if (!isPlainObject(raw)) {
    ctx.reject(REJECTION_TYPE, path, undefined, new Problem(undefined, 'invalid_shape', `A metric must be an object but is ${describeValue(raw)}`));
    return 0;
  }
  const parsed = metricObjectSchema.safeParse(raw);
  const nameAsReceived = typeof raw['name'] === 'string' ? raw['name'] : undefined;
  if (!parsed.success) {
    ctx.reject(REJECTION_TYPE, path, nameAsReceived, problemFromZod(parsed.error, raw, 'metric'));
    return 0;
  }
  const { name, units, data } = parsed.data;
  if (name.trim() === '') {
    ctx.reject(REJECTION_TYPE, path, name, new Problem('name', 'missing_value', 'The metric has an empty name'));
    return 0;
  }
  const canonicalName = canonicalMetricName(name);
  const metric: MetricInfo = { name: canonicalName, received: name, units: units ?? '', bounds: ctx.bounds, limits: ctx.limits };
  // Q4: `data: []` (or no `data`) is a selected metric without samples.
  const points = data ?? [];
  const shapeOf = shapeByMetric.get(canonicalName) ?? quantitySelector;
  for (let i = 0; i < points.length; i++) parsePoint(shapeOf(points[i]), points[i], metric, `${path}.data[${i}]`, ctx);
  if (!ctx.releaseInput) return 0;
  raw['data'] = null;
  return points.length;
}

/** `data.metrics`: every metric object is read on its own; a bad one never hides the others. */
export function parseMetricsSection(value: unknown, ctx: ParseContext): void {
  if (!Array.isArray(value)) {
    ctx.reject(REJECTION_TYPE, 'data.metrics', undefined, new Problem(undefined, 'invalid_shape', `data.metrics must be an array but is ${describeValue(value)}`));
    return;
  }
  for (let i = 0; i < value.length; i++) {
    // Called out here, after parseMetricObject returned: none of its locals still holds the points.
    const released = parseMetricObject(value[i], i, ctx);
    if (released > 0) ctx.onInputReleased?.(released);
  }
}
