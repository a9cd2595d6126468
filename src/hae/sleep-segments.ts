import type { MetricShape } from './metric-shape.js';
import { sleepSegmentSchema } from './schema.js';
import type { SleepSegmentRow } from './types.js';
import { checkDate, checkEndAfterStart, checkNotNegative, describeValue, isPlainObject, Problem, problemFromZod, sourceOrEmpty } from './validate.js';

type Stage = SleepSegmentRow['stage'];

/**
 * `value` with case, spaces, underscores and hyphens removed → stage. Q10: the docs say
 * "In Bed", a real 2023 payload said "InBed"; HealthKit's own names (asleepCore, …) are accepted
 * too, defensively. `Asleep` is the uncategorised stage, not total sleep (§1.4).
 */
const stageByFoldedValue: ReadonlyMap<string, Stage> = new Map<string, Stage>([
  ['inbed', 'in_bed'],
  ['asleep', 'asleep'],
  ['asleepunspecified', 'asleep'],
  ['core', 'core'],
  ['asleepcore', 'core'],
  ['deep', 'deep'],
  ['asleepdeep', 'deep'],
  ['rem', 'rem'],
  ['asleeprem', 'rem'],
  ['awake', 'awake'],
  ['unspecified', 'unspecified'],
]);

export function sleepStageOf(value: string): Stage | null {
  return stageByFoldedValue.get(value.toLowerCase().replace(/[\s_-]+/g, '')) ?? null;
}

/** One unaggregated sleep segment `{startDate, endDate, qty, value, source}` → SleepSegmentRow. */
export const sleepSegmentShape: MetricShape<'sleepSegments'> = {
  kind: 'sleepSegments',
  parsePoint(point, metric) {
    if (!isPlainObject(point)) {
      return new Problem(undefined, 'invalid_shape', `A ${metric.received} segment must be an object but is ${describeValue(point)}`);
    }
    const parsed = sleepSegmentSchema.safeParse(point);
    if (!parsed.success) return problemFromZod(parsed.error, point, `${metric.received} segment`);
    const { value } = parsed.data;
    if (value === undefined || value === null || value === '') return new Problem('value', 'missing_value', `The ${metric.received} segment has no value (its stage)`);
    if (typeof value !== 'string') return new Problem('value', 'invalid_shape', `value must be a sleep stage name but is ${describeValue(value)}`);
    const stage = sleepStageOf(value);
    if (stage === null) {
      return new Problem('value', 'invalid_shape', `value is ${describeValue(value)}, not one of In Bed, Asleep, Core, Deep, REM, Awake, Unspecified`);
    }
    const start = checkDate(parsed.data.startDate, 'startDate', metric.bounds);
    if (start instanceof Problem) return start;
    const end = checkDate(parsed.data.endDate, 'endDate', metric.bounds);
    if (end instanceof Problem) return end;
    const hours = parsed.data.qty ?? null;
    const problem = checkEndAfterStart(start, end, 'startDate', 'endDate') ?? checkNotNegative('qty', hours, 'hr');
    if (problem !== null) return problem;
    return { start, end, stage, valueReceived: value, hours, source: sourceOrEmpty(parsed.data.source) };
  },
};
