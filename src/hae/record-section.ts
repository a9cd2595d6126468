import type { ParseContext, RowOf } from './context.js';
import type { ValidationLimits } from './limits.js';
import type { SampleKind } from './types.js';
import { describeValue, isPlainObject, Problem, type DateBounds } from './validate.js';

/** What an item parser needs besides the item. */
export interface ParseEnv {
  bounds: DateBounds;
  limits: ValidationLimits;
}

/**
 * How the items of one of the non-metric arrays of `data` (§1.5: stateOfMind, medications,
 * symptoms, cycleTracking, ecg, heartRateNotifications) are read: one item, one row or Problem.
 */
export interface RecordParser<K extends SampleKind> {
  readonly kind: K;
  /** The item in messages: "state of mind entry", "medication", … */
  readonly what: string;
  parseItem(item: Record<string, unknown>, env: ParseEnv): RowOf<K> | Problem;
}

/** The name a rejection carries: the item's `name` or `displayText` when it is a string. */
function nameOf(item: Record<string, unknown>): string | undefined {
  const name = item['name'] ?? item['displayText'];
  return typeof name === 'string' ? name : undefined;
}

/** A section parser for `data[key]`: every item on its own; a bad one never hides the others. */
export function recordSection<K extends SampleKind>(key: string, parser: RecordParser<K>): (value: unknown, ctx: ParseContext) => void {
  return (value, ctx) => {
    if (!Array.isArray(value)) {
      ctx.reject(key, `data.${key}`, undefined, new Problem(undefined, 'invalid_shape', `data.${key} must be an array but is ${describeValue(value)}`));
      return;
    }
    const env: ParseEnv = { bounds: ctx.bounds, limits: ctx.limits };
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const path = `data.${key}[${i}]`;
      if (!isPlainObject(item)) {
        ctx.rejectItem(parser.kind, key, path, undefined, new Problem(undefined, 'invalid_shape', `A ${parser.what} must be an object but is ${describeValue(item)}`));
        continue;
      }
      ctx.settle(parser.kind, parser.parseItem(item, env), key, path, nameOf(item));
    }
  };
}

/** The item's own object under `key` (not zod's copy, which loses a `__proto__` key), or null. */
export function ownObject(item: Record<string, unknown>, key: string): Record<string, unknown> | null {
  const value = item[key];
  return isPlainObject(value) ? value : null;
}
