import { canonicalMetricName } from './aliases.js';
import { bloodPressureShape } from './blood-pressure.js';
import type { ParseContext } from './context.js';
import { heartRateShape } from './heart-rate.js';
import type { MetricInfo, PointShapeSelector } from './metric-shape.js';
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

/** A metric object whose points are to be read, with what reading them needs. */
interface MetricToRead {
  /** The object itself (its `data` is detached once read, with releaseInput). */
  raw: Record<string, unknown>;
  metric: MetricInfo;
  points: readonly unknown[];
  /** Path of the points array, e.g. `data.metrics[0].data`. */
  pointsPath: string;
  shapeOf: PointShapeSelector;
}

/** The metric object `raw` (element `index` of data.metrics) ready to read, or null when it is rejected as a whole. */
function metricToRead(raw: unknown, index: number, ctx: ParseContext): MetricToRead | null {
  const path = `data.metrics[${index}]`;
  if (!isPlainObject(raw)) {
    ctx.reject(REJECTION_TYPE, path, undefined, new Problem(undefined, 'invalid_shape', `A metric must be an object but is ${describeValue(raw)}`));
    return null;
  }
  let metricObject: MetricObject;
  if (isValidMetricObject(raw)) metricObject = raw;
  else {
    const parsed = metricObjectSchema.safeParse(raw);
    if (!parsed.success) {
      ctx.reject(REJECTION_TYPE, path, typeof raw['name'] === 'string' ? raw['name'] : undefined, problemFromZod(parsed.error, raw, 'metric'));
      return null;
    }
    metricObject = parsed.data;
  }
  const { name, units, data } = metricObject;
  if (name.trim() === '') {
    ctx.reject(REJECTION_TYPE, path, name, new Problem('name', 'missing_value', 'The metric has an empty name'));
    return null;
  }
  const canonicalName = canonicalMetricName(name);
  const metric: MetricInfo = { name: canonicalName, received: name, units: units ?? '', bounds: ctx.bounds, limits: ctx.limits };
  // Q4: `data: []` (or no `data`) is a selected metric without samples.
  return { raw, metric, points: data ?? [], pointsPath: `${path}.data`, shapeOf: shapeByMetric.get(canonicalName) ?? quantitySelector };
}

/** Points [from, to) of the metric. */
function readPoints(m: MetricToRead, from: number, to: number, ctx: ParseContext): void {
  const { metric, points, pointsPath, shapeOf } = m;
  for (let i = from; i < to; i++) {
    const point = points[i];
    const shape = shapeOf(point);
    ctx.settle(shape.kind, shape.parsePoint(point, metric), REJECTION_TYPE, pointsPath, metric.received, i);
  }
}

/** Detaches the metric's points from the input when the caller gave it up; how many were detached. */
function releasePoints(m: MetricToRead, ctx: ParseContext): number {
  if (!ctx.releaseInput) return 0;
  m.raw['data'] = null;
  return m.points.length;
}

/**
 * One object of `data.metrics`: `{name, units, data: [points]}`. Yields after every `stepPoints`
 * points read; returns how many points it detached (releaseInput).
 */
function* parseMetricObject(raw: unknown, index: number, ctx: ParseContext, stepPoints: number): Generator<void, number> {
  const m = metricToRead(raw, index, ctx);
  if (m === null) return 0;
  for (let from = 0; from < m.points.length; from += stepPoints) {
    if (from > 0) yield;
    readPoints(m, from, Math.min(m.points.length, from + stepPoints), ctx);
  }
  return releasePoints(m, ctx);
}

function rejectNotAnArray(value: unknown, ctx: ParseContext): void {
  ctx.reject(REJECTION_TYPE, 'data.metrics', undefined, new Problem(undefined, 'invalid_shape', `data.metrics must be an array but is ${describeValue(value)}`));
}

/**
 * `data.metrics`: every metric object is read on its own; a bad one never hides the others.
 * Without pauses: most payloads are small, and a generator's resumes cost them a fifth of the parse.
 */
export function parseMetricsSection(value: unknown, ctx: ParseContext): void {
  if (!Array.isArray(value)) return rejectNotAnArray(value, ctx);
  for (let i = 0; i < value.length; i++) {
    // Called out here, after readMetric returned: none of its locals still holds the points.
    const released = readMetric(value[i], i, ctx);
    if (released > 0) ctx.onInputReleased?.(released);
  }
}

/** One metric object read at once; how many points it detached. */
function readMetric(raw: unknown, index: number, ctx: ParseContext): number {
  const m = metricToRead(raw, index, ctx);
  if (m === null) return 0;
  readPoints(m, 0, m.points.length, ctx);
  return releasePoints(m, ctx);
}

/**
 * parseMetricsSection, pausing after every `stepPoints` points and between metrics, so that a
 * caller can write the rows read so far (and let I/O run) before the rest is read.
 */
export function* parseMetricsSectionInSteps(value: unknown, ctx: ParseContext, stepPoints: number): Generator<void, void> {
  if (!Array.isArray(value)) return rejectNotAnArray(value, ctx);
  for (let i = 0; i < value.length; i++) {
    // Called out here, after parseMetricObject returned: none of its locals still holds the points.
    const released = yield* parseMetricObject(value[i], i, ctx, stepPoints);
    if (released > 0) ctx.onInputReleased?.(released);
    if (i < value.length - 1) yield;
  }
}
