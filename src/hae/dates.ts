import type { Instant } from './types.js';

/*
 * Health Auto Export timestamps. The app formats local wall time plus the phone's numeric offset,
 * so every instant is computed as Date.UTC(wall time) minus the offset: never with
 * `new Date(string)` (its parsing of non-ISO strings is engine-dependent) and never with the
 * server's time zone (a peer got duplicate rows across DST and container-TZ changes, §1.2).
 */

/**
 * `2024-02-06 14:30:00 -0800` (documented) and the 12-hour locale form
 * `2024-09-21 7:57:00 am +1000` (Q5): hour not zero-padded, am/pm in either case, preceded by a
 * plain space, U+202F NARROW NO-BREAK SPACE (iOS/ICU 72+) or U+00A0. Fractional seconds and a
 * colon in the offset are accepted defensively.
 */
const haeDateTime =
  /^(\d{4})-(\d{2})-(\d{2}) (\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[ \u202F\u00A0]?([AaPp][Mm]))? ?([+-])(\d{2}):?(\d{2})$/;

/** `2024-05-09`: the documented aggregated-sleep `date` (Q7). */
const dateOnly = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * ISO-8601 with an explicit zone (`2024-02-06T14:30:00Z`, `…+01:00`, fractional seconds). Not an
 * HAE form, accepted defensively (one third-party doc claims stateOfMind uses it, §1.2). A value
 * without a zone is ambiguous and is refused.
 */
const isoDateTime =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

const MS_PER_MINUTE = 60_000;
const MS_PER_DAY = 86_400_000;
/** 400 Gregorian years are exactly 146,097 days. */
const DAYS_PER_400_YEARS = 146_097;
/** Days from 0000-03-01 (the start of the calendar's cycle below) to 1970-01-01. */
const DAYS_TO_UNIX_EPOCH = 719_468;
/** Real UTC offsets span −12:00 … +14:00. */
const MAX_OFFSET_MINUTES = 14 * 60;

/** Days in a month of the proleptic Gregorian calendar; month is 1–12. */
export function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function isValidCalendarDate(year: number, month: number, day: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
}

/** Milliseconds from the first 1–3 digits of a fraction string (`5` ⇒ 500, `123456` ⇒ 123). */
function fractionToMs(fraction: string | undefined): number {
  if (fraction === undefined) return 0;
  return Number((fraction + '00').slice(0, 3));
}

/**
 * Days from 1970-01-01 to a date of the proleptic Gregorian calendar (month 1–12), for every
 * year including 0–99 (which Date.UTC maps to 1900–1999). Integer arithmetic: Date.UTC is a call
 * into the runtime, and every sample's timestamp passes here (a quarter of a small payload's
 * parse). Years are counted from March, so the leap day ends a year.
 */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const monthFromMarch = month > 2 ? month - 3 : month + 9;
  const dayOfYear = Math.floor((153 * monthFromMarch + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * DAYS_PER_400_YEARS + dayOfEra - DAYS_TO_UNIX_EPOCH;
}

/** Epoch milliseconds of a UTC wall time whose fields are already known valid. */
function utcMs(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number): number {
  return daysFromCivil(year, month, day) * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + ms;
}

/** Offset in minutes from its sign and parts, or null when it cannot be a real offset. */
function offsetFrom(sign: string, hours: string, minutes: string): number | null {
  const h = Number(hours);
  const m = Number(minutes);
  if (m > 59) return null;
  const total = h * 60 + m;
  if (total > MAX_OFFSET_MINUTES) return null;
  return sign === '-' && total !== 0 ? -total : total; // never -0
}

/** 12-hour clock to 24-hour: 12 am is 00, 12 pm is 12, 1–11 pm add 12. Null for hour 0 or > 12. */
function hourFrom12(hour: number, meridiem: string): number | null {
  if (hour < 1 || hour > 12) return null;
  const pm = meridiem.charCodeAt(0) === 0x70 /* p */ || meridiem.charCodeAt(0) === 0x50; /* P */
  if (hour === 12) return pm ? 12 : 0;
  return pm ? hour + 12 : hour;
}

function buildInstant(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
  offsetMinutes: number,
  localDate: string,
): Instant | null {
  if (!isValidCalendarDate(year, month, day)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  const epochMs = utcMs(year, month, day, hour, minute, second, ms) - offsetMinutes * MS_PER_MINUTE;
  return { epochMs, offsetMinutes, localDate };
}

function parseHaeDateTime(match: RegExpExecArray): Instant | null {
  const [, y, mo, d, h, mi, s, frac, meridiem, sign, oh, om] = match;
  let hour = Number(h);
  if (meridiem !== undefined) {
    const converted = hourFrom12(hour, meridiem);
    if (converted === null) return null;
    hour = converted;
  }
  const offset = offsetFrom(sign!, oh!, om!);
  if (offset === null) return null;
  return buildInstant(Number(y), Number(mo), Number(d), hour, Number(mi), Number(s), fractionToMs(frac), offset, `${y}-${mo}-${d}`);
}

function parseIsoDateTime(match: RegExpExecArray): Instant | null {
  const [, y, mo, d, h, mi, s, frac, zulu, sign, oh, om] = match;
  let offset: number | null = 0;
  if (zulu === undefined) offset = offsetFrom(sign!, oh!, om!);
  if (offset === null) return null;
  // localDate is the date as written; with Z that is the UTC date.
  return buildInstant(
    Number(y),
    Number(mo),
    Number(d),
    Number(h),
    Number(mi),
    s === undefined ? 0 : Number(s),
    fractionToMs(frac),
    offset,
    `${y}-${mo}-${d}`,
  );
}

function parseDateOnly(match: RegExpExecArray): Instant | null {
  const [, y, mo, d] = match;
  // Q7: a date-only sleep `date` is local midnight; its offset is unknown, so 0 is recorded.
  return buildInstant(Number(y), Number(mo), Number(d), 0, 0, 0, 0, 0, `${y}-${mo}-${d}`);
}

/** The two-digit number at index i of s, or -1 when either character is not a digit. */
function twoDigitsAt(s: string, i: number): number {
  const tens = s.charCodeAt(i) - 48;
  const ones = s.charCodeAt(i + 1) - 48;
  return tens >= 0 && tens <= 9 && ones >= 0 && ones <= 9 ? tens * 10 + ones : -1;
}

/**
 * Fast path for the exact documented 24-hour form `YYYY-MM-DD HH:MM:SS ±HHMM` (25 characters),
 * which is nearly every timestamp in real payloads. Reading char codes costs a fraction of the
 * regex with its capture array (~0.4 µs), and payloads reach 1,000,000 points. Returns undefined
 * when the string is not exactly that form, so the general regex decides.
 */
function parseCanonical24h(s: string): Instant | null | undefined {
  if (s.length !== 25) return undefined;
  if (s.charCodeAt(4) !== 0x2d || s.charCodeAt(7) !== 0x2d || s.charCodeAt(13) !== 0x3a || s.charCodeAt(16) !== 0x3a) return undefined;
  if (s.charCodeAt(19) !== 0x20) return undefined;
  const sign = s.charCodeAt(20);
  if (sign !== 0x2b && sign !== 0x2d) return undefined;
  const century = twoDigitsAt(s, 0);
  const yearOfCentury = twoDigitsAt(s, 2);
  const month = twoDigitsAt(s, 5);
  const day = twoDigitsAt(s, 8);
  const hour = twoDigitsAt(s, 11);
  const minute = twoDigitsAt(s, 14);
  const second = twoDigitsAt(s, 17);
  const offsetHours = twoDigitsAt(s, 21);
  const offsetMins = twoDigitsAt(s, 23);
  if ((century | yearOfCentury | month | day | hour | minute | second | offsetHours | offsetMins) < 0) return undefined;
  if (offsetMins > 59) return null;
  const offsetAbs = offsetHours * 60 + offsetMins;
  if (offsetAbs > MAX_OFFSET_MINUTES) return null;
  const offsetMinutes = sign === 0x2d && offsetAbs !== 0 ? -offsetAbs : offsetAbs; // never -0
  return buildInstant(century * 100 + yearOfCentury, month, day, hour, minute, second, 0, offsetMinutes, localDateOf(s));
}

/**
 * The first 10 characters, as the same string object as the previous call's when they are equal:
 * consecutive samples mostly share a day, and a million rows would otherwise hold a million
 * copies of it.
 */
let lastLocalDate = '';
function localDateOf(s: string): string {
  if (lastLocalDate === '' || !s.startsWith(lastLocalDate)) lastLocalDate = s.slice(0, 10);
  return lastLocalDate;
}

/**
 * Parses any timestamp form Health Auto Export writes (and ISO-8601 with a zone), or returns
 * null for anything else, including impossible calendar values (month 13, 30 February, hour 25).
 */
export function parseHaeDate(value: unknown): Instant | null {
  if (typeof value !== 'string') return null;
  // Cheapest discriminator first: the documented form has a space at index 10.
  const separator = value.charCodeAt(10);
  if (separator === 0x20 /* space */) {
    const fast = parseCanonical24h(value);
    if (fast !== undefined) return fast;
    const match = haeDateTime.exec(value);
    return match === null ? null : parseHaeDateTime(match);
  }
  if (value.length === 10) {
    const match = dateOnly.exec(value);
    return match === null ? null : parseDateOnly(match);
  }
  if (separator === 0x54 /* T */ || separator === 0x74 /* t */) {
    const match = isoDateTime.exec(value);
    return match === null ? null : parseIsoDateTime(match);
  }
  return null;
}
