import type { ZodError } from 'zod';
import type { RejectionReason } from '../errors.js';
import { parseHaeDate } from './dates.js';
import type { Instant } from './types.js';

/*
 * Every rule that can reject an item lives here, so that the later issue adding configurable
 * medical ranges grows one file. This issue checks only: dates (format and stored range),
 * numbers (present, numeric, finite) and blood pressure > 0.
 */

/** Why one item cannot be stored; the caller adds where it is (type, path, name). */
export class Problem {
  constructor(
    readonly field: string | undefined,
    readonly reason: RejectionReason,
    readonly message: string,
  ) {}
}

export interface DateBounds {
  minEpochMs: number;
  maxEpochMs: number;
}

/** Stored dates start at 1970-01-01T00:00Z. */
export const MIN_STORED_EPOCH_MS = 0;
/** Phones with a wrong clock write slightly future dates; two days absorbs every time zone. */
export const FUTURE_TOLERANCE_MS = 2 * 86_400_000;

/**
 * The accepted interval [1970-01-01, now + 2 days]. It protects the monthly partitions from
 * absurd years (a year-0024 or year-9999 timestamp would otherwise create a partition).
 */
export function dateBoundsAt(now: Date): DateBounds {
  return { minEpochMs: MIN_STORED_EPOCH_MS, maxEpochMs: now.getTime() + FUTURE_TOLERANCE_MS };
}

const MAX_VALUE_TEXT = 80;

function truncate(text: string): string {
  return text.length > MAX_VALUE_TEXT ? `${text.slice(0, MAX_VALUE_TEXT - 1)}…` : text;
}

/** A short human description of a value for messages: `the string "12"`, `an array [1,2]`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'number') return `the number ${String(value)}`;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  if (typeof value === 'string') return `the string ${truncate(text)}`;
  if (typeof value === 'boolean') return `the boolean ${text}`;
  if (Array.isArray(value)) return `an array ${truncate(text)}`;
  if (typeof value === 'object') return `an object ${truncate(text)}`;
  return truncate(text);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function dateProblem(value: unknown, field: string): Problem {
  if (value === undefined || value === null) return new Problem(field, 'invalid_date', `${field} is missing`);
  return new Problem(field, 'invalid_date', `${field} is ${describeValue(value)}, which is not a date in a format Health Auto Export uses`);
}

function checkBounds(instant: Instant, value: unknown, field: string, bounds: DateBounds): Instant | Problem {
  if (instant.epochMs < bounds.minEpochMs || instant.epochMs > bounds.maxEpochMs) {
    return new Problem(field, 'date_out_of_range', `${field} is ${describeValue(value)}, which is before 1970 or more than 2 days in the future`);
  }
  return instant;
}

/** A required date: missing, unparseable or outside the stored range is a Problem. */
export function checkDate(value: unknown, field: string, bounds: DateBounds): Instant | Problem {
  const instant = parseHaeDate(value);
  if (instant === null) return dateProblem(value, field);
  return checkBounds(instant, value, field, bounds);
}

/** An optional date: absent (undefined, null, '') is null; present but wrong is a Problem. */
export function checkOptionalDate(value: unknown, field: string, bounds: DateBounds): Instant | null | Problem {
  if (value === undefined || value === null || value === '') return null;
  return checkDate(value, field, bounds);
}

function valueAtPath(item: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = item;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

const expectedNames: Readonly<Record<string, string>> = { record: 'object', object: 'object', number: 'number', string: 'string', boolean: 'boolean', array: 'array' };

/**
 * The first schema issue as a Problem: a missing required value is `missing_value`, a
 * non-number where a number belongs is `not_a_number` (strings are never coerced), anything else
 * is `invalid_shape`. `item` is what was parsed; `fieldPrefix` names it inside a larger item.
 */
export function problemFromZod(error: ZodError, item: unknown, what: string, fieldPrefix?: string): Problem {
  const issue = error.issues[0];
  if (issue === undefined) return new Problem(fieldPrefix, 'invalid_shape', `The ${what} has an unexpected shape`);
  const fieldParts = issue.path.map(String);
  if (fieldPrefix !== undefined) fieldParts.unshift(fieldPrefix);
  const field = fieldParts.length === 0 ? undefined : fieldParts.join('.');
  const value = valueAtPath(item, issue.path);
  if (field === undefined) {
    return new Problem(undefined, 'invalid_shape', `The ${what} must be an object but is ${describeValue(value)}`);
  }
  // '' is "missing" for a string that must not be empty (a workout id), but a string where a
  // number belongs is not_a_number.
  if (value === undefined || value === null || (value === '' && issue.code !== 'invalid_type')) {
    return new Problem(field, 'missing_value', `The ${what} has no ${field}`);
  }
  const expected = issue.code === 'invalid_type' ? (expectedNames[issue.expected] ?? issue.expected) : undefined;
  if (expected === 'number') {
    return new Problem(field, 'not_a_number', `${field} must be a number but is ${describeValue(value)}`);
  }
  if (expected !== undefined) {
    return new Problem(field, 'invalid_shape', `${field} must be ${expected === 'array' || expected === 'object' ? 'an' : 'a'} ${expected} but is ${describeValue(value)}`);
  }
  return new Problem(field, 'invalid_shape', `${field} is not valid: ${describeValue(value)}`);
}

/** Q1/Q2: a missing or null source is stored as ''. Q3: joined sources are kept verbatim. */
export function sourceOrEmpty(source: string | null | undefined): string {
  return source ?? '';
}

/** Blood pressure needs both pressures above zero (a reading of 0 is a failed measurement). */
export function checkBloodPressure(systolic: number, diastolic: number): Problem | null {
  if (systolic <= 0) return new Problem('systolic', 'out_of_range', `systolic must be above 0 but is ${describeValue(systolic)}`);
  if (diastolic <= 0) return new Problem('diastolic', 'out_of_range', `diastolic must be above 0 but is ${describeValue(diastolic)}`);
  return null;
}

/** Heart rate needs at least one of Min/Avg/Max (or qty): a point with none carries no reading. */
export function missingHeartRateProblem(): Problem {
  return new Problem('Avg', 'missing_value', 'The heart_rate point has none of Min, Avg, Max or qty');
}
