import type { PointShapeSelector } from './metric-shape.js';
import { hasAnyKey, sleepAggregatedMarkers, sleepSegmentMarkers } from './schema.js';
import { sleepShape } from './sleep.js';
import { sleepSegmentShape } from './sleep-segments.js';
import { isPlainObject } from './validate.js';

/**
 * `sleep_analysis` points come in two shapes, decided per point, never per body: a body may mix
 * aggregated entries and unaggregated segments (fixture caveat, §5). A point with any aggregated
 * amount is an entry; else one with startDate/endDate is a segment (Q11: segments may carry
 * `"date": null`, so `date` says nothing); anything else is read as an entry and rejected there.
 */
export const sleepShapeOf: PointShapeSelector = (point) => {
  if (isPlainObject(point) && !hasAnyKey(point, sleepAggregatedMarkers) && hasAnyKey(point, sleepSegmentMarkers)) return sleepSegmentShape;
  return sleepShape;
};

