import type { ZodError } from 'zod';
import type { RejectionReason } from '../errors.js';
import { parseHaeDate } from './dates.js';
import type { ValidationLimits } from './limits.js';
import type { Instant } from './types.js';

/*
 * Every rule that can reject an item lives here: dates (format and stored range), numbers
 * (present, numeric, finite) and the medical and physical ranges of `ValidationLimits`. The
 * shape parsers only ask; they never decide on a range themselves.
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
    // Too deep for JSON.stringify; String() would recurse through nested arrays just the same.
    text = typeof value === 'object' ? (Array.isArray(value) ? '[…]' : '{…}') : String(value);
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
  if (source === null || source === undefined) return '';
  return sharedSource(source);
}

/**
 * One string object per distinct source name. JSON.parse makes a new string for every point,
 * and rows outlive the parsed tree: a million rows from two watches would keep a million copies.
 * Bounded, since names are few (devices and apps) but arbitrary input could hold many.
 */
const sources = new Map<string, string>();
const MAX_SHARED_SOURCES = 256;
/**
 * The previous call's answer. Consecutive points nearly always share their source, and comparing
 * with it costs less than the Map lookup, which must first hash each point's new string.
 */
let lastSource = '';

function sharedSource(source: string): string {
  if (source === lastSource) return lastSource;
  let shared = sources.get(source);
  if (shared === undefined) {
    if (sources.size >= MAX_SHARED_SOURCES) sources.clear();
    sources.set(source, source);
    shared = source;
  }
  lastSource = shared;
  return shared;
}

/** Heart rate needs at least one of Min/Avg/Max (or qty): a point with none carries no reading. */
export function missingHeartRateProblem(): Problem {
  return new Problem('Avg', 'missing_value', 'The heart_rate point has none of Min, Avg, Max or qty');
}

/* ------------------------------------------------------------------------------------------ */
/* Ranges. Messages state the value and the allowed range: "Min is 12 bpm, outside 15–300 bpm". */

type Range = ValidationLimits['heartRate'];

/** `12 bpm`, `100.4%`, `95°`: the unit as a person writes it after a number. */
function withUnit(value: number, unit: string): string {
  if (unit === '') return String(value);
  return unit === '%' || unit === '°' ? `${value}${unit}` : `${value} ${unit}`;
}

function rangeText(range: Range, unit: string): string {
  // "-90–90°" reads badly; a negative lower end gets words instead of the dash.
  return range.min < 0 ? `${withUnit(range.min, unit)} to ${withUnit(range.max, unit)}` : `${range.min}–${withUnit(range.max, unit)}`;
}

/** Null when `value` is inside [min, max]; else an out_of_range Problem naming value and range. */
export function outsideRange(field: string, value: number, range: Range, unit: string, shownValue?: string): Problem | null {
  if (value >= range.min && value <= range.max) return null;
  return new Problem(field, 'out_of_range', `${field} is ${shownValue ?? withUnit(value, unit)}, outside ${rangeText(range, unit)}`);
}

/** Heart rates everywhere (heart_rate points, resting/walking averages, workout summaries and series). */
export function checkHeartRate(field: string, value: number | null | undefined, limits: ValidationLimits): Problem | null {
  if (value === null || value === undefined) return null;
  return outsideRange(field, value, limits.heartRate, 'bpm');
}

/** The first heart rate of `values` (field → value) outside the limits, or null. */
export function checkHeartRates(values: ReadonlyArray<readonly [string, number | null | undefined]>, limits: ValidationLimits): Problem | null {
  for (const [field, value] of values) {
    const problem = checkHeartRate(field, value, limits);
    if (problem !== null) return problem;
  }
  return null;
}

/**
 * Both pressures inside their limits, and systolic above diastolic: Q16, a reading with
 * systolic ≤ diastolic is a data-entry error (the two values swapped or mistyped), never physiology.
 */
export function checkBloodPressure(systolic: number, diastolic: number, limits: ValidationLimits): Problem | null {
  const problem = outsideRange('systolic', systolic, limits.systolic, 'mmHg') ?? outsideRange('diastolic', diastolic, limits.diastolic, 'mmHg');
  if (problem !== null) return problem;
  if (systolic <= diastolic) {
    return new Problem('systolic', 'out_of_range', `systolic is ${systolic} mmHg, not above diastolic ${diastolic} mmHg (a data-entry error)`);
  }
  return null;
}

/** Canonical names (aliases.ts) of quantity metrics that are heart rates in bpm. */
export const heartRateQuantityMetrics: ReadonlySet<string> = new Set(['resting_heart_rate', 'walking_heart_rate_average']);

/** Canonical names of quantity metrics that are a body temperature (absolute, °C or °F). */
export const bodyTemperatureMetrics: ReadonlySet<string> = new Set(['body_temperature', 'basal_body_temperature', 'apple_sleeping_wrist_temperature']);

/**
 * Quantity metrics whose value can be below zero. Every other metric is an amount, a count, a
 * duration, a rate, a percentage or a level, where a negative number is a glitch. The list:
 * - `under_water_temperature` (HealthKit waterTemperature; also its folded HealthKit spelling
 *   `water_temperature`): water in °C is below 0 in cold seas (salt water freezes at ≈ −1.9 °C).
 * Not on the list, on purpose: `apple_sleeping_wrist_temperature` (HAE exports the absolute
 * temperature, not the deviation the Health app shows, §1.4: the temperature range applies);
 * audio exposure in dB(A) (negative only below the threshold of hearing, which no phone or
 * watch microphone measures); `cardio_recovery` (HealthKit stores the drop in bpm, ≥ 0).
 */
export const metricsAllowedBelowZero: ReadonlySet<string> = new Set(['under_water_temperature', 'water_temperature']);

/** Below this a blood_oxygen_saturation value is a 0–1 fraction (Q13: real exports use 0–100). */
const OXYGEN_FRACTION_MAX = 1;

/** Temperature units as HealthKit/HAE spell them, to °C; anything else is taken as °C. */
function toCelsius(value: number, units: string): { celsius: number; converted: boolean } {
  const unit = units.trim().toLowerCase();
  if (unit === 'degf' || unit === '°f' || unit === 'f') return { celsius: ((value - 32) * 5) / 9, converted: true };
  if (unit === 'k') return { celsius: value - 273.15, converted: true };
  return { celsius: value, converted: false };
}

/** Scaling ×100 adds binary noise (0.973 × 100 = 97.30000000000001); 15 digits drop only that. */
function scaleToPercent(fraction: number): number {
  return Number((fraction * 100).toPrecision(15));
}

/**
 * The value a quantity point is stored with, or why it cannot be: negatives (outside the
 * allow-list), heart-rate metrics, blood oxygen (a 0–1 fraction is scaled to percent and stored
 * scaled; Q13: 0–100 stays as is) and body temperatures (°F converted for the check only).
 */
export function checkQuantity(metric: string, qty: number, units: string, limits: ValidationLimits): number | Problem {
  if (qty < 0 && !metricsAllowedBelowZero.has(metric)) {
    return new Problem('qty', 'out_of_range', `qty is ${withUnit(qty, units)}, but ${metric} cannot be negative`);
  }
  if (heartRateQuantityMetrics.has(metric)) return checkHeartRate('qty', qty, limits) ?? qty;
  if (metric === 'blood_oxygen_saturation') {
    const percent = qty <= OXYGEN_FRACTION_MAX ? scaleToPercent(qty) : qty;
    const shown = percent === qty ? undefined : `${qty} (a 0–1 fraction, ${percent}%)`;
    return outsideRange('qty', percent, limits.bloodOxygen, '%', shown) ?? percent;
  }
  if (bodyTemperatureMetrics.has(metric)) {
    const { celsius, converted } = toCelsius(qty, units);
    const shown = converted ? `${withUnit(qty, units)} (${Number(celsius.toFixed(1))} °C)` : undefined;
    return outsideRange('qty', celsius, limits.bodyTemperatureC, '°C', shown) ?? qty;
  }
  return qty;
}

/** A count, amount or duration that cannot be negative (sexual_activity counts, sleep hours). */
export function checkNotNegative(field: string, value: number | null | undefined, unit = ''): Problem | null {
  if (value === null || value === undefined || !(value < 0)) return null;
  return new Problem(field, 'out_of_range', `${field} is ${withUnit(value, unit)}, but cannot be negative`);
}

/**
 * How far core + deep + rem + awake may exceed inBed, in hours. Measured on the real export
 * (real/hae-export-daily-2023-06-to-2025-04.json, 288 entries): in 196 of the 216 Watch entries
 * with stages and inBed > 0 the stages exceed inBed, by up to 1.82 h (26.5 %). The stages span
 * the Watch's sleep window (their sum equals sleepEnd − sleepStart to 1e-15) while inBed counts
 * only the "In Bed" samples, which start late or pause; so the excess is a gap in time, not a
 * share of the night, and the tolerance is absolute: the measured maximum plus about an hour.
 */
export const SLEEP_STAGES_OVER_IN_BED_TOLERANCE_HOURS = 3;

/**
 * Sleep stages must fit inside time in bed: core + deep + rem + awake ≤ inBed + tolerance.
 * Exceptions (no check): Q8 third-party entries (every stage 0 or missing; Sleep++, AutoSleep
 * report only `asleep`, which may exceed inBed), and entries with inBed 0 or missing (68 real
 * Watch nights carry stages with inBed 0: nothing to compare with).
 */
export function checkSleepStages(entry: { core: number | null; deep: number | null; rem: number | null; awake: number | null; inBed: number | null }): Problem | null {
  const { inBed } = entry;
  if (inBed === null || !(inBed > 0)) return null;
  const stages = [entry.core, entry.deep, entry.rem, entry.awake];
  if (stages.every((stage) => stage === null || stage === 0)) return null;
  const sum = stages.reduce<number>((total, stage) => total + (stage ?? 0), 0);
  if (sum <= inBed + SLEEP_STAGES_OVER_IN_BED_TOLERANCE_HOURS) return null;
  return new Problem(
    'inBed',
    'out_of_range',
    `core + deep + rem + awake is ${sum} hr, more than inBed ${inBed} hr plus the ${SLEEP_STAGES_OVER_IN_BED_TOLERANCE_HOURS} hr tolerance`,
  );
}

function isoOf(instant: Instant): string {
  return new Date(instant.epochMs).toISOString();
}

/** Workouts and sleep segments: the end must be strictly after the start. */
export function checkEndAfterStart(start: Instant, end: Instant, startField: string, endField: string): Problem | null {
  if (end.epochMs > start.epochMs) return null;
  return new Problem(endField, 'out_of_range', `${endField} (${isoOf(end)}) is not after ${startField} (${isoOf(start)})`);
}

/** Events that may be instantaneous (symptoms, medications, …): the end may equal the start. */
export function checkEndNotBefore(start: Instant, end: Instant | null, startField: string, endField: string): Problem | null {
  if (end === null || end.epochMs >= start.epochMs) return null;
  return new Problem(endField, 'out_of_range', `${endField} (${isoOf(end)}) is before ${startField} (${isoOf(start)})`);
}

/**
 * `start` and an optional `end` not before it: the span of every §1.5 record (symptoms,
 * medications, cycle tracking, ECG, notifications, State of Mind), where end == start is a
 * point event.
 */
export function checkOptionalSpan(startValue: unknown, endValue: unknown, bounds: DateBounds): { start: Instant; end: Instant | null } | Problem {
  const start = checkDate(startValue, 'start', bounds);
  if (start instanceof Problem) return start;
  const end = checkOptionalDate(endValue, 'end', bounds);
  if (end instanceof Problem) return end;
  return checkEndNotBefore(start, end, 'start', 'end') ?? { start, end };
}

/** Route coordinates inside the configured bounds (degrees). */
export function checkCoordinates(latitude: number, longitude: number, limits: ValidationLimits, fields: { latitude: string; longitude: string }): Problem | null {
  return outsideRange(fields.latitude, latitude, limits.latitude, '°') ?? outsideRange(fields.longitude, longitude, limits.longitude, '°');
}

/** State of Mind valence is defined on −1 (very unpleasant) … 1 (very pleasant). */
export const VALENCE_RANGE: Range = { min: -1, max: 1 };

export function checkValence(valence: number | null): Problem | null {
  return valence === null ? null : outsideRange('valence', valence, VALENCE_RANGE, '');
}

/**
 * Raw objects kept in rows (workout and State of Mind `metadata`, medication `codings`) are
 * stored as JSON. JSON.parse accepts any nesting, but JSON.stringify overflows the stack at a few
 * thousand levels (Node 20), which would fail the whole payload's transaction in the store; no
 * HealthKit metadata nests more than a few levels, so deeper values are refused here.
 */
export const MAX_STORED_JSON_DEPTH = 64;

export function checkJsonDepth(field: string, value: unknown): Problem | null {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (typeof current !== 'object' || current === null) continue;
    if (depth > MAX_STORED_JSON_DEPTH) return new Problem(field, 'invalid_shape', `${field} nests deeper than ${MAX_STORED_JSON_DEPTH} levels`);
    for (const key of Object.keys(current)) stack.push([(current as Record<string, unknown>)[key], depth + 1]);
  }
  return null;
}
