import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { daysFromCivil, daysInMonth, parseHaeDate } from '../src/hae/dates.js';
import type { Instant } from '../src/hae/types.js';
import { projectRoot } from '../src/paths.js';

const HOUR = 3_600_000;

function instant(epochMs: number, offsetMinutes: number, localDate: string): Instant {
  return { epochMs, offsetMinutes, localDate };
}

describe('parseHaeDate: documented 24-hour form', () => {
  test('local wall time minus the offset', () => {
    assert.deepEqual(parseHaeDate('2024-02-06 14:30:00 -0800'), instant(Date.UTC(2024, 1, 6, 22, 30), -480, '2024-02-06'));
    assert.deepEqual(parseHaeDate('2025-03-11 07:00:00 +0100'), instant(Date.UTC(2025, 2, 11, 6, 0), 60, '2025-03-11'));
    assert.deepEqual(parseHaeDate('2024-01-01 00:00:00 +0000'), instant(Date.UTC(2024, 0, 1), 0, '2024-01-01'));
  });

  test('localDate is the date as written, even when the UTC date differs', () => {
    const late = parseHaeDate('2024-12-31 23:30:00 -0500');
    assert.equal(late?.localDate, '2024-12-31');
    assert.equal(new Date(late!.epochMs).toISOString(), '2025-01-01T04:30:00.000Z');
    const early = parseHaeDate('2024-01-01 00:30:00 +1000');
    assert.equal(early?.localDate, '2024-01-01');
    assert.equal(new Date(early!.epochMs).toISOString(), '2023-12-31T14:30:00.000Z');
  });

  test('Q6: the DST fall-back pair is two instants on the same local date', () => {
    const daylight = parseHaeDate('2024-11-03 01:30:00 -0400');
    const standard = parseHaeDate('2024-11-03 01:30:00 -0500');
    assert.ok(daylight && standard);
    assert.notEqual(daylight.epochMs, standard.epochMs);
    assert.equal(standard.epochMs - daylight.epochMs, HOUR);
    assert.equal(daylight.localDate, '2024-11-03');
    assert.equal(standard.localDate, '2024-11-03');
    assert.equal(daylight.offsetMinutes, -240);
    assert.equal(standard.offsetMinutes, -300);
  });

  test('half-hour and quarter-hour offsets, offsets with a colon, single-digit hour, fractions', () => {
    assert.deepEqual(parseHaeDate('2024-06-01 12:00:00 +0530'), instant(Date.UTC(2024, 5, 1, 6, 30), 330, '2024-06-01'));
    assert.deepEqual(parseHaeDate('2024-06-01 12:00:00 +0545'), instant(Date.UTC(2024, 5, 1, 6, 15), 345, '2024-06-01'));
    assert.deepEqual(parseHaeDate('2024-06-01 12:00:00 -03:30'), instant(Date.UTC(2024, 5, 1, 15, 30), -210, '2024-06-01'));
    assert.deepEqual(parseHaeDate('2024-06-01 7:05:09 +0000'), instant(Date.UTC(2024, 5, 1, 7, 5, 9), 0, '2024-06-01'));
    assert.deepEqual(parseHaeDate('2024-06-01 07:05:09.25 +0000'), instant(Date.UTC(2024, 5, 1, 7, 5, 9, 250), 0, '2024-06-01'));
  });

  test('a -0000 offset is recorded as 0, never -0', () => {
    assert.ok(Object.is(parseHaeDate('2024-06-01 12:00:00 -0000')?.offsetMinutes, 0));
  });
});

describe('parseHaeDate: Q5 12-hour form', () => {
  test('am/pm with a plain space, hour not zero-padded', () => {
    assert.deepEqual(parseHaeDate('2024-09-21 7:57:00 am +1000'), instant(Date.UTC(2024, 8, 20, 21, 57), 600, '2024-09-21'));
    assert.deepEqual(parseHaeDate('2024-09-21 7:57:00 pm +1000'), instant(Date.UTC(2024, 8, 21, 9, 57), 600, '2024-09-21'));
    assert.deepEqual(parseHaeDate('2024-09-21 07:57:00 AM +1000'), instant(Date.UTC(2024, 8, 20, 21, 57), 600, '2024-09-21'));
  });

  test('U+202F NARROW NO-BREAK SPACE and U+00A0 before am/pm', () => {
    const expected = instant(Date.UTC(2024, 8, 21, 9, 57), 600, '2024-09-21');
    assert.deepEqual(parseHaeDate('2024-09-21 7:57:00\u202fPM +1000'), expected);
    assert.deepEqual(parseHaeDate('2024-09-21 7:57:00\u202fpm +1000'), expected);
    assert.deepEqual(parseHaeDate('2024-09-21 7:57:00\u00a0PM +1000'), expected);
  });

  test('12 am is midnight, 12 pm is noon, 11 pm is 23', () => {
    assert.deepEqual(parseHaeDate('2024-03-05 12:00:00 am +0000'), instant(Date.UTC(2024, 2, 5, 0, 0), 0, '2024-03-05'));
    assert.deepEqual(parseHaeDate('2024-03-05 12:30:15 AM +0000'), instant(Date.UTC(2024, 2, 5, 0, 30, 15), 0, '2024-03-05'));
    assert.deepEqual(parseHaeDate('2024-03-05 12:00:00 pm +0000'), instant(Date.UTC(2024, 2, 5, 12, 0), 0, '2024-03-05'));
    assert.deepEqual(parseHaeDate('2024-03-05 12:59:59 PM +0000'), instant(Date.UTC(2024, 2, 5, 12, 59, 59), 0, '2024-03-05'));
    assert.deepEqual(parseHaeDate('2024-03-05 1:00:00 am +0000'), instant(Date.UTC(2024, 2, 5, 1, 0), 0, '2024-03-05'));
    assert.deepEqual(parseHaeDate('2024-03-05 1:00:00 pm +0000'), instant(Date.UTC(2024, 2, 5, 13, 0), 0, '2024-03-05'));
    assert.deepEqual(parseHaeDate('2024-03-05 11:59:59 pm +0000'), instant(Date.UTC(2024, 2, 5, 23, 59, 59), 0, '2024-03-05'));
  });

  test('12-hour values that cannot exist are null', () => {
    assert.equal(parseHaeDate('2024-03-05 0:30:00 am +0000'), null);
    assert.equal(parseHaeDate('2024-03-05 13:00:00 pm +0000'), null);
    assert.equal(parseHaeDate('2024-03-05 7:00:00 xm +0000'), null);
  });
});

describe('parseHaeDate: Q7 date only', () => {
  test('local midnight with offset 0, localDate the date', () => {
    assert.deepEqual(parseHaeDate('2024-05-09'), instant(Date.UTC(2024, 4, 9), 0, '2024-05-09'));
    assert.deepEqual(parseHaeDate('2024-02-29'), instant(Date.UTC(2024, 1, 29), 0, '2024-02-29'));
  });
});

describe('parseHaeDate: ISO-8601 (defensive)', () => {
  test('Z, offsets with and without colon, fractional seconds, no seconds', () => {
    assert.deepEqual(parseHaeDate('2024-02-06T14:30:00Z'), instant(Date.UTC(2024, 1, 6, 14, 30), 0, '2024-02-06'));
    assert.deepEqual(parseHaeDate('2024-02-06T14:30:00+01:00'), instant(Date.UTC(2024, 1, 6, 13, 30), 60, '2024-02-06'));
    assert.deepEqual(parseHaeDate('2024-02-06T14:30:00-0800'), instant(Date.UTC(2024, 1, 6, 22, 30), -480, '2024-02-06'));
    assert.deepEqual(parseHaeDate('2024-02-06T14:30:00.123Z'), instant(Date.UTC(2024, 1, 6, 14, 30, 0, 123), 0, '2024-02-06'));
    assert.deepEqual(parseHaeDate('2024-02-06T14:30:00.123456+00:00'), instant(Date.UTC(2024, 1, 6, 14, 30, 0, 123), 0, '2024-02-06'));
    assert.deepEqual(parseHaeDate('2024-02-06T14:30Z'), instant(Date.UTC(2024, 1, 6, 14, 30), 0, '2024-02-06'));
  });

  test('with Z the localDate is the UTC date', () => {
    assert.equal(parseHaeDate('2024-02-06T23:30:00Z')?.localDate, '2024-02-06');
    assert.equal(parseHaeDate('2024-02-06T23:30:00-05:00')?.localDate, '2024-02-06');
  });

  test('an ISO time without a zone is ambiguous and refused', () => {
    assert.equal(parseHaeDate('2024-02-06T14:30:00'), null);
  });
});

describe('parseHaeDate: invalid values are null', () => {
  const invalid: unknown[] = [
    '2024-13-01 10:00:00 +0000', // month 13
    '2024-00-10 10:00:00 +0000', // month 0
    '2024-02-30 10:00:00 +0000', // 30 February
    '2023-02-29 10:00:00 +0000', // not a leap year
    '2024-04-31 10:00:00 +0000', // April has 30 days
    '2024-01-00 10:00:00 +0000', // day 0
    '2024-01-01 25:00:00 +0000', // hour 25
    '2024-01-01 24:00:00 +0000', // hour 24
    '2024-01-01 10:60:00 +0000', // minute 60
    '2024-01-01 10:00:60 +0000', // second 60
    '2024-01-01 10:00:00 +1500', // offset beyond +14:00
    '2024-01-01 10:00:00 +0160', // offset minutes 60
    '2024-01-01 10:00:00', // no offset
    '2024-1-01 10:00:00 +0000',
    '2024-13-01',
    '2024-02-30',
    '2024-02-06T25:00:00Z',
    '2024-02-30T10:00:00Z',
    '24-02-06 10:00:00 +0000',
    ' 2024-02-06 10:00:00 +0000',
    '2024-02-06 10:00:00 +0000 ',
    'garbage',
    '',
    1707229800000,
    null,
    undefined,
    true,
    {},
    [],
    ['2024-02-06 14:30:00 -0800'],
  ];
  for (const value of invalid) {
    test(JSON.stringify(value) ?? 'undefined', () => {
      assert.equal(parseHaeDate(value), null);
    });
  }
});

describe('parseHaeDate: calendar edges', () => {
  test('leap years follow the Gregorian rules', () => {
    assert.equal(daysInMonth(2000, 2), 29);
    assert.equal(daysInMonth(1900, 2), 28);
    assert.equal(daysInMonth(2024, 2), 29);
    assert.equal(daysInMonth(2023, 2), 28);
    assert.notEqual(parseHaeDate('2000-02-29 00:00:00 +0000'), null);
    assert.equal(parseHaeDate('1900-02-29 00:00:00 +0000'), null);
  });

  test('years 0–99 are not shifted into the 1900s (the range check must see them as they are)', () => {
    const expected = new Date(Date.UTC(2000, 0, 1));
    expected.setUTCFullYear(75);
    assert.equal(parseHaeDate('0075-01-01 00:00:00 +0000')?.epochMs, expected.getTime());
    assert.ok(parseHaeDate('0075-01-01 00:00:00 +0000')!.epochMs < 0);
  });

  test('the day count agrees with the JavaScript calendar on every day of the years 0000–9999', () => {
    const DAY = 86_400_000;
    const first = new Date(Date.UTC(2000, 0, 1));
    first.setUTCFullYear(0);
    const last = Date.UTC(9999, 11, 31);
    let days = 0;
    let mismatch: string | null = null;
    for (let t = first.getTime(); t <= last && mismatch === null; t += DAY, days++) {
      const d = new Date(t);
      const counted = daysFromCivil(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate());
      if (counted * DAY !== t) mismatch = `${d.toISOString()}: ${counted} days, expected ${t / DAY}`;
    }
    assert.equal(mismatch, null);
    assert.equal(days, 3_652_425, 'every day of 10,000 Gregorian years was compared');
  });
});


describe('parseHaeDate: independent of the process time zone', () => {
  test('TZ=America/New_York, Asia/Kolkata and UTC give identical output', () => {
    const datesModule = pathToFileURL(join(projectRoot, 'dist', 'src', 'hae', 'dates.js')).href;
    const samples = [
      '2024-02-06 14:30:00 -0800',
      '2024-11-03 01:30:00 -0400',
      '2024-11-03 01:30:00 -0500',
      '2024-03-10 02:30:00 -0500',
      '2024-09-21 7:57:00\u202fpm +1000',
      '2024-09-21 12:00:00 am +1000',
      '2024-05-09',
      '2024-02-06T14:30:00Z',
      '2024-02-06T14:30:00.5+05:30',
    ];
    const script = `import { parseHaeDate } from ${JSON.stringify(datesModule)};
      const samples = ${JSON.stringify(samples)};
      process.stdout.write(JSON.stringify({ offset: new Date(2024, 0, 1).getTimezoneOffset(), dates: samples.map(parseHaeDate) }));`;
    const outputs = ['America/New_York', 'Asia/Kolkata', 'UTC'].map((zone) => {
      const text = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, TZ: zone }, encoding: 'utf8' });
      return JSON.parse(text) as { offset: number; dates: Array<Instant | null> };
    });
    // The children really ran in different zones…
    assert.deepEqual(
      outputs.map((o) => o.offset),
      [300, -330, 0],
    );
    // …and parsed every date identically.
    assert.ok(outputs[0]!.dates.every((d) => d !== null));
    assert.deepEqual(outputs[1]!.dates, outputs[0]!.dates);
    assert.deepEqual(outputs[2]!.dates, outputs[0]!.dates);
  });
});

describe('parseHaeDate: every timestamp of every fixture', () => {
  const dateKeys = new Set(['date', 'start', 'end', 'startDate', 'endDate', 'sleepStart', 'sleepEnd', 'inBedStart', 'inBedEnd', 'timestamp', 'scheduledDate']);

  function timestampsOf(value: unknown, out: string[] = []): string[] {
    if (Array.isArray(value)) for (const item of value) timestampsOf(item, out);
    else if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        if (dateKeys.has(key) && typeof item === 'string') out.push(item);
        else timestampsOf(item, out);
      }
    }
    return out;
  }

  for (const file of ['real/hae-export-daily-2023-06-to-2025-04.json', 'real/hae-workouts-sample.json', 'composed/hae-small.json', 'composed/hae-sleep-unaggregated.json']) {
    test(file, () => {
      const body = JSON.parse(readFileSync(join(projectRoot, '..', 'shared', 'fixtures', file), 'utf8')) as unknown;
      const stamps = timestampsOf(body);
      assert.ok(stamps.length > 0);
      for (const stamp of stamps) {
        const parsed = parseHaeDate(stamp);
        assert.ok(parsed !== null, stamp);
        assert.equal(parsed.localDate, stamp.slice(0, 10));
      }
    });
  }
});

describe('parseHaeDate: forms of the data types added later (§1.2, §1.5)', () => {
  test('stateOfMind may use ISO-8601 with Z or the HAE form; both give the same instant', () => {
    const iso = parseHaeDate('2025-05-05T18:00:00Z');
    const hae = parseHaeDate('2025-05-05 20:00:00 +0200');
    assert.equal(iso?.epochMs, hae?.epochMs);
    assert.deepEqual([iso?.offsetMinutes, hae?.offsetMinutes], [0, 120]);
  });

  test('12-hour form with U+202F and upper-case AM at the 12 o\u2019clock edges', () => {
    assert.deepEqual(parseHaeDate('2024-09-21 12:05:00\u202fAM -0400'), instant(Date.UTC(2024, 8, 21, 4, 5), -240, '2024-09-21'));
    assert.deepEqual(parseHaeDate('2024-09-21 12:05:00\u202fPM -0400'), instant(Date.UTC(2024, 8, 21, 16, 5), -240, '2024-09-21'));
  });
});
