import { canonicalMetricName } from './aliases.js';
import { bloodPressureShape } from './blood-pressure.js';
import type { ParseContext } from './context.js';
import { heartRateShape } from './heart-rate.js';
import type { MetricInfo, MetricShape, PointShapeSelector } from './metric-shape.js';
import { quantityShape } from './quantity.js';
import { isValidMetricObject, metricObjectSchema, type MetricObject } from './schema.js';
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

/**
 * The kind of row every point of a metric (by canonical name) becomes, or undefined for
 * sleep_analysis, whose points become sessions or segments: lets a caller plan before parsing.
 */
export function rowKindOfMetric(canonicalName: string): SampleKind | undefined {
  if (canonicalName === 'sleep_analysis') return undefined;
  const shape = (shapeByMetric.get(canonicalName) ?? quantitySelector)({ qty: 0 });
  return shape.kind;
}

function parsePoint<K extends SampleKind>(shape: MetricShape<K>, point: unknown, metric: MetricInfo, path: string, ctx: ParseContext): void {
  ctx.settle(shape.kind, shape.parsePoint(point, metric), REJECTION_TYPE, path, metric.received);
}

/**
 * One object of `data.metrics`: `{name, units, data: [points]}`. Yields after every `stepPoints`
 * points read; returns how many points it detached (releaseInput).
 */
function* parseMetricObject(raw: unknown, index: number, ctx: ParseContext, stepPoints: number): Generator<void, number> {
  const path = `data.metrics[${index}]`;
  if (!isPlainObject(raw)) {
    ctx.reject(REJECTION_TYPE, path, undefined, new Problem(undefined, 'invalid_shape', `A metric must be an object but is ${describeValue(raw)}`));
    return 0;
  }
  let metricObject: MetricObject;
  if (isValidMetricObject(raw)) metricObject = raw;
  else {
    const parsed = metricObjectSchema.safeParse(raw);
    if (!parsed.success) {
      ctx.reject(REJECTION_TYPE, path, typeof raw['name'] === 'string' ? raw['name'] : undefined, problemFromZod(parsed.error, raw, 'metric'));
      return 0;
    }
    metricObject = parsed.data;
  }
  const { name, units, data } = metricObject;
  if (name.trim() === '') {
    ctx.reject(REJECTION_TYPE, path, name, new Problem('name', 'missing_value', 'The metric has an empty name'));
    return 0;
  }
  const canonicalName = canonicalMetricName(name);
  const metric: MetricInfo = { name: canonicalName, received: name, units: units ?? '', bounds: ctx.bounds, limits: ctx.limits };
  // Q4: `data: []` (or no `data`) is a selected metric without samples.
  const points = data ?? [];
  const shapeOf = shapeByMetric.get(canonicalName) ?? quantitySelector;
  for (let from = 0; from < points.length; from += stepPoints) {
    if (from > 0) yield;
    const to = Math.min(points.length, from + stepPoints);
    for (let i = from; i < to; i++) parsePoint(shapeOf(points[i]), points[i], metric, `${path}.data[${i}]`, ctx);
  }
  if (!ctx.releaseInput) return 0;
  raw['data'] = null;
  return points.length;
}

/** `data.metrics`: every metric object is read on its own; a bad one never hides the others. */
export function parseMetricsSection(value: unknown, ctx: ParseContext): void {
  const steps = parseMetricsSectionInSteps(value, ctx, Infinity);
  while (!steps.next().done);
}

/**
 * parseMetricsSection, pausing after every `stepPoints` points and between metrics, so that a
 * caller can write the rows read so far (and let I/O run) before the rest is read.
 */
export function* parseMetricsSectionInSteps(value: unknown, ctx: ParseContext, stepPoints: number): Generator<void, void> {
  if (!Array.isArray(value)) {
    ctx.reject(REJECTION_TYPE, 'data.metrics', undefined, new Problem(undefined, 'invalid_shape', `data.metrics must be an array but is ${describeValue(value)}`));
    return;
  }
  for (let i = 0; i < value.length; i++) {
    // Called out here, after parseMetricObject returned: none of its locals still holds the points.
    const released = yield* parseMetricObject(value[i], i, ctx, stepPoints);
    if (released > 0) ctx.onInputReleased?.(released);
    if (i < value.length - 1) yield;
  }
}
