import { ParseContext } from './context.js';
import { cycleTrackingParser } from './cycle-tracking.js';
import { ecgParser } from './ecg.js';
import { heartRateNotificationParser } from './heart-rate-notifications.js';
import { defaultLimits, type ValidationLimits } from './limits.js';
import { medicationParser } from './medications.js';
import { parseMetricsSection, parseMetricsSectionInSteps } from './metrics.js';
import { recordSection } from './record-section.js';
import { envelopeSchema, isValidEnvelope } from './schema.js';
import { stateOfMindParser } from './state-of-mind.js';
import { symptomParser } from './symptoms.js';
import type { ParsedPayload } from './types.js';
import { describeValue, isPlainObject, Problem } from './validate.js';
import { parseWorkoutsSection } from './workouts.js';

export type { ParsedPayload } from './types.js';

export interface ParseOptions {
  /** Bounds future dates (now + 2 days); default: the current time. */
  now?: Date;
  /** Medical and physical ranges; default `defaultLimits` (configuration may narrow them). */
  limits?: ValidationLimits;
  /**
   * False when the caller knows no string in the input contains U+0000 (its JSON text has no
   * `\u0000` escape): the per-row search for it, a third of the parse time, is then skipped.
   */
  mayContainNul?: boolean;
  /**
   * True when the caller will not use the input again: each metric's points are detached from
   * it once read (its `data` becomes null), so the parsed tree can shrink while rows are built.
   */
  releaseInput?: boolean;
  /**
   * With releaseInput: called with the number of points each time a metric's points have been
   * detached, between metrics, when nothing in the parser refers to them any more: a caller
   * holding a large payload can reclaim that part of the tree while the rest is read.
   */
  onInputReleased?: (points: number) => void;
}

/** Every key of `data` that HAE writes (§1.1), and its reader. */
const sectionParsers: ReadonlyMap<string, (value: unknown, ctx: ParseContext) => void> = new Map([
  ['metrics', parseMetricsSection],
  ['workouts', parseWorkoutsSection],
  ['stateOfMind', recordSection('stateOfMind', stateOfMindParser)],
  ['medications', recordSection('medications', medicationParser)],
  ['symptoms', recordSection('symptoms', symptomParser)],
  ['cycleTracking', recordSection('cycleTracking', cycleTrackingParser)],
  ['ecg', recordSection('ecg', ecgParser)],
  ['heartRateNotifications', recordSection('heartRateNotifications', heartRateNotificationParser)],
]);

function itemCount(value: unknown): number {
  return Array.isArray(value) ? value.length : 1;
}

function parseDataKey(key: string, value: unknown, ctx: ParseContext): void {
  const parseSection = sectionParsers.get(key);
  if (parseSection === undefined) {
    ctx.notStored(key, itemCount(value), 'unknown_key');
    return;
  }
  // Only the selected data types are present, and a null one is the same as an absent one.
  if (value !== null && value !== undefined) parseSection(value, ctx);
}

/**
 * Reads a Health Auto Export body (already JSON.parse'd) into rows. Never throws on any JSON
 * value: whatever cannot be stored becomes a rejection (with its path and reason) or a
 * notStored entry, and one bad item never affects its neighbours. Pure: `now` (default: the
 * current time) only bounds future dates; `limits` (default `defaultLimits`) are the ranges.
 */
export function parseHaePayload(input: unknown, options?: ParseOptions): ParsedPayload {
  // Not the stepped parse run to its end: most payloads are small, and its generators' resumes cost them a fifth of the parse.
  const ctx = contextFor(options);
  const data = exportData(input, ctx);
  if (data !== null) for (const key of Object.keys(data)) parseDataKey(key, data[key], ctx);
  return ctx.result;
}

function contextFor(options: ParseOptions | undefined): ParseContext {
  return new ParseContext(options?.now ?? new Date(), options?.limits ?? defaultLimits, {
    mayContainNul: options?.mayContainNul ?? true,
    releaseInput: options?.releaseInput ?? false,
    onInputReleased: options?.onInputReleased,
  });
}

/**
 * The export's `data` object, with every key beside it reported as not stored; null when there
 * is nothing to read (`{}`) or the body is not an export (rejected).
 */
function exportData(input: unknown, ctx: ParseContext): Record<string, unknown> | null {
  // `{}` is what an automation with nothing selected sends: valid, and it yields nothing.
  if (isPlainObject(input) && Object.keys(input).length === 0) return null;
  if (!isValidEnvelope(input) && !envelopeSchema.safeParse(input).success) {
    const data = isPlainObject(input) ? input['data'] : input;
    const message = isPlainObject(input)
      ? `The body has no "data" object (data is ${describeValue(data)})`
      : `The body must be an object with a "data" object but is ${describeValue(input)}`;
    ctx.reject('payload', '$', undefined, new Problem(undefined, 'not_an_export', message));
    return null;
  }
  // The input itself is walked, not zod's copy: the copy loses an own key named `__proto__`.
  const body = input as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    // Keys beside `data` are not HAE's; they are reported so nothing is dropped silently.
    if (key !== 'data') ctx.notStored(key, itemCount(body[key]), 'unknown_key');
  }
  return body['data'] as Record<string, unknown>;
}

/**
 * parseHaePayload, pausing after every `stepPoints` metric points and between metrics. Each pause
 * yields the result being filled (the same object every time, the one finally returned), so a
 * caller can write the rows read so far while the rest is read.
 */
export function* parseHaePayloadInSteps(input: unknown, options: ParseOptions | undefined, stepPoints: number): Generator<ParsedPayload, ParsedPayload> {
  const ctx = contextFor(options);
  const data = exportData(input, ctx);
  if (data === null) return ctx.result;
  for (const key of Object.keys(data)) {
    const value = data[key];
    if (key === 'metrics' && Array.isArray(value)) {
      const section = parseMetricsSectionInSteps(value, ctx, stepPoints);
      while (!section.next().done) yield ctx.result;
    } else {
      parseDataKey(key, value, ctx);
    }
  }
  return ctx.result;
}
