import { z } from 'zod';
import type { RecordParser } from './record-section.js';
import { dateField, optionalNumber } from './schema.js';
import type { Instant } from './types.js';
import { checkOptionalDate, checkOptionalSpan, type DateBounds, describeValue, isPlainObject, Problem, problemFromZod } from './validate.js';

/**
 * `heartRateNotifications` (§1.5 ◐): `{start, end, threshold? (high/low only), heartRate[{hr,
 * units, timestamp{start, end, interval{duration, units}}}], heartRateVariation[{hrv, units,
 * timestamp}]}`. The readings are normalised into plain objects with ISO-8601 strings.
 */
const notificationSchema = z.looseObject({
  start: dateField,
  end: dateField,
  threshold: optionalNumber,
  heartRate: z.array(z.unknown()).nullish(),
  heartRateVariation: z.array(z.unknown()).nullish(),
});

/** One normalised reading: `{hr | hrv, units, start, end, interval}` with ISO strings. */
type Reading = Record<string, number | string | null | { duration: number | null; units: string | null }>;

const iso = (instant: Instant | null): string | null => (instant === null ? null : new Date(instant.epochMs).toISOString());

/** The wiki prints the HRV `timestamp` in `[]` brackets (doc typo): a one-element array is read as its element. */
function timestampOf(value: unknown): Record<string, unknown> | null {
  const timestamp = Array.isArray(value) && value.length === 1 ? (value[0] as unknown) : value;
  return isPlainObject(timestamp) ? timestamp : null;
}

function readInterval(value: unknown): { duration: number | null; units: string | null } | null {
  if (!isPlainObject(value)) return null;
  const { duration, units } = value;
  return { duration: typeof duration === 'number' && Number.isFinite(duration) ? duration : null, units: typeof units === 'string' ? units : null };
}

/** `heartRate[i]` or `heartRateVariation[i]` → a plain reading; the number is required. */
function readReading(raw: unknown, field: string, valueKey: 'hr' | 'hrv', bounds: DateBounds): Reading | Problem {
  if (!isPlainObject(raw)) return new Problem(field, 'invalid_shape', `${field} must be an object but is ${describeValue(raw)}`);
  const value = raw[valueKey];
  if (value === undefined || value === null) return new Problem(`${field}.${valueKey}`, 'missing_value', `${field} has no ${valueKey}`);
  if (typeof value !== 'number' || !Number.isFinite(value)) return new Problem(`${field}.${valueKey}`, 'not_a_number', `${field}.${valueKey} must be a number but is ${describeValue(value)}`);
  const timestamp = timestampOf(raw['timestamp']);
  const start = checkOptionalDate(timestamp?.['start'], `${field}.timestamp.start`, bounds);
  if (start instanceof Problem) return start;
  const end = checkOptionalDate(timestamp?.['end'], `${field}.timestamp.end`, bounds);
  if (end instanceof Problem) return end;
  const units = raw['units'];
  return { [valueKey]: value, units: typeof units === 'string' ? units : null, start: iso(start), end: iso(end), interval: readInterval(timestamp?.['interval']) };
}

function readReadings(list: readonly unknown[], key: string, valueKey: 'hr' | 'hrv', bounds: DateBounds): Reading[] | Problem {
  const readings: Reading[] = [];
  for (let i = 0; i < list.length; i++) {
    const reading = readReading(list[i], `${key}[${i}]`, valueKey, bounds);
    if (reading instanceof Problem) return reading;
    readings.push(reading);
  }
  return readings;
}

export const heartRateNotificationParser: RecordParser<'heartRateNotifications'> = {
  kind: 'heartRateNotifications',
  what: 'heart rate notification',
  parseItem(item, { bounds }) {
    const parsed = notificationSchema.safeParse(item);
    if (!parsed.success) return problemFromZod(parsed.error, item, 'heart rate notification');
    const entry = parsed.data;
    const span = checkOptionalSpan(entry.start, entry.end, bounds);
    if (span instanceof Problem) return span;
    const { start, end } = span;
    const heartRate = readReadings(entry.heartRate ?? [], 'heartRate', 'hr', bounds);
    if (heartRate instanceof Problem) return heartRate;
    const heartRateVariation = readReadings(entry.heartRateVariation ?? [], 'heartRateVariation', 'hrv', bounds);
    if (heartRateVariation instanceof Problem) return heartRateVariation;
    return { start, end, threshold: entry.threshold ?? null, heartRate, heartRateVariation };
  },
};
