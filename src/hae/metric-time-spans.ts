import { canonicalMetricName } from './aliases.js';
import { parseHaeDate } from './dates.js';
import { rowKindOfMetric } from './metrics.js';
import type { SampleKind } from './types.js';
import { isPlainObject } from './validate.js';

export interface MetricTimeSpan {
  kind: SampleKind;
  fromMs: number;
  toMs: number;
}

/**
 * The times of the first and last point of every metric in an export (before it is parsed),
 * with the kind of row its points become. HAE lists a metric's points in time order, so the span
 * usually holds every point: enough to make a payload's partitions ready before its rows are
 * written while the rest is still parsed. Nothing here is trusted: the writer checks every row's
 * order and month (streaming-writer.ts). Metrics whose end points have no readable `date` are left out.
 */
export function metricTimeSpans(input: unknown): MetricTimeSpan[] {
  const data = isPlainObject(input) ? input['data'] : undefined;
  const metrics = isPlainObject(data) ? data['metrics'] : undefined;
  if (!Array.isArray(metrics)) return [];
  const spans: MetricTimeSpan[] = [];
  for (const metric of metrics) {
    if (!isPlainObject(metric) || typeof metric['name'] !== 'string') continue;
    const points = metric['data'];
    if (!Array.isArray(points) || points.length === 0) continue;
    const kind = rowKindOfMetric(canonicalMetricName(metric['name']));
    const first = dateOf(points[0]);
    const last = dateOf(points[points.length - 1]);
    if (kind === undefined || first === null || last === null) continue;
    spans.push({ kind, fromMs: Math.min(first, last), toMs: Math.max(first, last) });
  }
  return spans;
}

function dateOf(point: unknown): number | null {
  return isPlainObject(point) ? (parseHaeDate(point['date'])?.epochMs ?? null) : null;
}
