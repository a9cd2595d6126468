import type { RowOf } from './context.js';
import type { ValidationLimits } from './limits.js';
import type { SampleKind } from './types.js';
import type { DateBounds, Problem } from './validate.js';

/** What a point parser knows about the metric object its point came from. */
export interface MetricInfo {
  /** Canonical name (aliases.ts). */
  name: string;
  /** Name exactly as received. */
  received: string;
  /** The metric object's `units` ('' when missing): units are per metric object, not per point (§1.3). */
  units: string;
  bounds: DateBounds;
  limits: ValidationLimits;
}

/**
 * How the points of one kind of metric are read. Adding a point shape is adding a file with one
 * of these and an entry in the table of metrics.ts.
 */
export interface MetricShape<K extends SampleKind> {
  /** The kind a point is counted under when it is a row or a rejection. */
  readonly kind: K;
  parsePoint(point: unknown, metric: MetricInfo): RowOf<K> | Problem;
}

/** Picks the shape of one point: decided per point, never per body (sleep mixes two shapes). */
export type PointShapeSelector = (point: unknown) => MetricShape<SampleKind>;
