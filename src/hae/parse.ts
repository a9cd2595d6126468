import { ParseContext } from './context.js';
import { parseMetricsSection } from './metrics.js';
import { envelopeSchema } from './schema.js';
import type { ParsedPayload } from './types.js';
import { describeValue, isPlainObject, Problem } from './validate.js';
import { parseWorkoutsSection } from './workouts.js';

export type { ParsedPayload } from './types.js';

/** Keys of `data` that are read into rows in this version. */
const sectionParsers = new Map<string, (value: unknown, ctx: ParseContext) => void>([
  ['metrics', parseMetricsSection],
  ['workouts', parseWorkoutsSection],
]);

/** Documented HAE data types (§1.5) kept only in the raw payload until they are modelled. */
const unmodelledSections = new Set(['stateOfMind', 'medications', 'symptoms', 'cycleTracking', 'ecg', 'heartRateNotifications']);

function itemCount(value: unknown): number {
  return Array.isArray(value) ? value.length : 1;
}

function parseDataKey(key: string, value: unknown, ctx: ParseContext): void {
  const parseSection = sectionParsers.get(key);
  if (parseSection !== undefined) {
    // Only the selected data types are present, and a null one is the same as an absent one.
    if (value !== null && value !== undefined) parseSection(value, ctx);
    return;
  }
  if (unmodelledSections.has(key)) {
    const items = value === null ? 0 : itemCount(value);
    if (items > 0) ctx.notStored(key, items, 'unsupported_type');
    return;
  }
  ctx.notStored(key, itemCount(value), 'unknown_key');
}

/**
 * Reads a Health Auto Export body (already JSON.parse'd) into rows. Never throws on any JSON
 * value: whatever cannot be stored becomes a rejection (with its path and reason) or a
 * notStored entry, and one bad item never affects its neighbours. Pure: `now` (default: the
 * current time) only bounds future dates.
 */
export function parseHaePayload(input: unknown, options?: { now?: Date }): ParsedPayload {
  const ctx = new ParseContext(options?.now ?? new Date());
  // `{}` is what an automation with nothing selected sends: valid, and it yields nothing.
  if (isPlainObject(input) && Object.keys(input).length === 0) return ctx.result;
  const envelope = envelopeSchema.safeParse(input);
  if (!envelope.success) {
    const data = isPlainObject(input) ? input['data'] : input;
    const message = isPlainObject(input)
      ? `The body has no "data" object (data is ${describeValue(data)})`
      : `The body must be an object with a "data" object but is ${describeValue(input)}`;
    ctx.reject('payload', '$', undefined, new Problem(undefined, 'not_an_export', message));
    return ctx.result;
  }
  // The input itself is walked, not zod's copy: the copy loses an own key named `__proto__`.
  const body = input as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    // Keys beside `data` are not HAE's; they are reported so nothing is dropped silently.
    if (key !== 'data') ctx.notStored(key, itemCount(body[key]), 'unknown_key');
  }
  const data = body['data'] as Record<string, unknown>;
  for (const key of Object.keys(data)) parseDataKey(key, data[key], ctx);
  return ctx.result;
}
