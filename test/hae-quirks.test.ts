/**
 * One test per real-world quirk of §1.9 of the format note (Q1–Q20). Each builds its small
 * payload inline and asserts the rows and the rejections.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseHaePayload } from '../src/hae/parse.js';
import type { ParsedPayload } from '../src/hae/types.js';

const NOW = new Date('2025-06-01T00:00:00Z');
const parse = (input: unknown): ParsedPayload => parseHaePayload(input, { now: NOW });
type Json = Record<string, unknown>;
const metrics = (...list: Json[]): Json => ({ data: { metrics: list } });
const D = '2025-03-11 07:00:00 +0100';

describe('Health Auto Export quirks (§1.9)', () => {
  test('Q1 source missing: the row has source ""', () => {
    const result = parse(metrics({ name: 'resting_heart_rate', units: 'count/min', data: [{ date: D, qty: 56 }] }));
    assert.deepEqual(result.rejections, []);
    assert.equal(result.quantity[0]!.source, '');
  });

  test('Q2 source "" is kept as ""', () => {
    const result = parse(metrics({ name: 'step_count', units: 'count', data: [{ date: D, qty: 5, source: '' }] }));
    assert.equal(result.quantity[0]!.source, '');
  });

  test('Q3 joined and duplicated sources with | and U+2019 are kept verbatim', () => {
    const source = 'Eli\u2019s Apple\u00a0Watch|Eli\u2019s Apple\u00a0Watch|Sleep++';
    const result = parse(metrics({ name: 'heart_rate', units: 'count/min', data: [{ date: D, Min: 50, Avg: 55, Max: 60, source }] }));
    assert.equal(result.heartRate[0]!.source, source);
  });

  test('Q4 empty data [] yields nothing and rejects nothing', () => {
    const result = parse(metrics({ name: 'step_count', units: 'count', data: [] }, { name: 'heart_rate', units: 'count/min', data: [] }));
    assert.deepEqual([result.quantity, result.heartRate, result.rejections, result.notStored], [[], [], [], []]);
  });

  test('Q5 12-hour time, incl. U+202F before am/pm', () => {
    const result = parse(metrics({ name: 'step_count', units: 'count', data: [{ date: '2024-09-21 7:57:00 am +1000', qty: 1 }, { date: '2024-09-21 7:57:00\u202fPM +1000', qty: 2 }] }));
    assert.deepEqual(
      result.quantity.map((r) => r.time),
      [
        { epochMs: Date.UTC(2024, 8, 20, 21, 57), offsetMinutes: 600, localDate: '2024-09-21' },
        { epochMs: Date.UTC(2024, 8, 21, 9, 57), offsetMinutes: 600, localDate: '2024-09-21' },
      ],
    );
  });

  test('Q6 offsets change inside one body: the DST pair 01:30 -0400 / -0500 is two instants an hour apart', () => {
    const result = parse(metrics({ name: 'step_count', units: 'count', data: [{ date: '2024-11-03 01:30:00 -0400', qty: 1 }, { date: '2024-11-03 01:30:00 -0500', qty: 2 }] }));
    const [daylight, standard] = result.quantity.map((r) => r.time);
    assert.deepEqual([daylight!.offsetMinutes, standard!.offsetMinutes], [-240, -300]);
    assert.equal(standard!.epochMs - daylight!.epochMs, 3_600_000);
    assert.deepEqual([daylight!.localDate, standard!.localDate], ['2024-11-03', '2024-11-03']);
  });

  test('Q7 sleep date as a datetime and as a date only', () => {
    const result = parse(metrics({ name: 'sleep_analysis', units: 'hr', data: [{ date: '2024-05-09 05:50:16 -0400', asleep: 7, inBed: 8, source: 'A' }, { date: '2024-05-10', asleep: 7, inBed: 8, source: 'A' }] }));
    assert.deepEqual(
      result.sleep.map((r) => r.date),
      [
        { epochMs: Date.UTC(2024, 4, 9, 9, 50, 16), offsetMinutes: -240, localDate: '2024-05-09' },
        { epochMs: Date.UTC(2024, 4, 10), offsetMinutes: 0, localDate: '2024-05-10' },
      ],
    );
  });

  test('Q8 asleep > inBed with all stages 0 (third-party) is kept; efficiency above 1 is not clamped', () => {
    const result = parse(metrics({ name: 'sleep_analysis', units: 'hr', data: [{ date: '2025-03-28 12:28:22 -0400', asleep: 2.57, inBed: 2.06, core: 0, deep: 0, rem: 0, awake: 0, source: 'Sleep++' }] }));
    assert.deepEqual(result.rejections, []);
    assert.deepEqual([result.sleep[0]!.asleep, result.sleep[0]!.inBed, result.sleep[0]!.efficiency], [2.57, 2.06, 2.57 / 2.06]);
  });

  test('Q9 several sleep entries on one day (night and nap, two sources) are all rows', () => {
    const entry = (date: string, source: string): Json => ({ date, sleepStart: date, asleep: 1, inBed: 1.2, source });
    const result = parse(metrics({ name: 'sleep_analysis', units: 'hr', data: [entry('2025-03-28 06:00:00 -0400', 'Watch'), entry('2025-03-28 14:00:00 -0400', 'Watch'), entry('2025-03-28 06:00:00 -0400', 'AutoSleep')] }));
    assert.equal(result.sleep.length, 3);
    assert.ok(result.sleep.every((r) => r.date.localDate === '2025-03-28'));
    assert.equal(new Set(result.sleep.map((r) => `${r.start.epochMs}|${r.source}`)).size, 3); // three natural keys
  });

  test('Q10 "InBed" and "In Bed" are the same stage; the value as received is kept', () => {
    const seg = (value: string): Json => ({ startDate: '2025-03-10 23:00:00 +0100', endDate: '2025-03-11 06:00:00 +0100', qty: 7, value, source: 'iPhone' });
    const result = parse(metrics({ name: 'sleep_analysis', units: 'hr', data: [seg('InBed'), seg('In Bed'), seg('in bed')] }));
    assert.deepEqual(result.sleepSegments.map((r) => [r.stage, r.valueReceived]), [
      ['in_bed', 'InBed'],
      ['in_bed', 'In Bed'],
      ['in_bed', 'in bed'],
    ]);
  });

  test('Q11 "date": null on a sleep segment: read as a segment, the null date ignored', () => {
    const result = parse(metrics({ name: 'sleep_analysis', units: 'hr', data: [{ startDate: '2025-03-11 00:14:30 +0100', endDate: '2025-03-11 00:58:00 +0100', qty: 0.725, value: 'Deep', source: 'Watch', date: null }] }));
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(result.sleepSegments.map((r) => [r.stage, r.hours, r.start.epochMs]), [['deep', 0.725, Date.UTC(2025, 2, 10, 23, 14, 30)]]);
  });

  test('Q12 float noise is kept exactly as received', () => {
    const body = JSON.parse('{"data":{"metrics":[{"name":"heart_rate","units":"count/min","data":[{"date":"2025-03-11 07:02:00 +0100","Min":46.00000000000001,"Avg":77.000000000000014,"Max":88}]}]}}') as unknown;
    const result = parse(body);
    assert.deepEqual([result.heartRate[0]!.min, result.heartRate[0]!.avg], [46.00000000000001, 77.000000000000014]);
  });

  test('Q13 count as the unit of BMI and % on a 0–100 scale are kept as they are', () => {
    const result = parse(metrics({ name: 'body_mass_index', units: 'count', data: [{ date: D, qty: 24.3 }] }, { name: 'blood_oxygen_saturation', units: '%', data: [{ date: D, qty: 97.78 }] }));
    assert.deepEqual(result.quantity.map((r) => [r.metric, r.qty, r.units]), [
      ['body_mass_index', 24.3, 'count'],
      ['blood_oxygen_saturation', 97.78, '%'],
    ]);
  });

  test('Q14 legacy and aliased names get their canonical name; the received name and unknown names are kept', () => {
    const names = ['vo2max', 'stair_speed:_down', 'six-minute_walking_test_distance', 'weight_&_body_mass', 'breathing_disturbances'];
    const result = parse(metrics(...names.map((name) => ({ name, units: 'u', data: [{ date: D, qty: 1 }] }))));
    assert.deepEqual(result.quantity.map((r) => [r.metricReceived, r.metric]), [
      ['vo2max', 'vo2_max'],
      ['stair_speed:_down', 'stair_speed_down'],
      ['six-minute_walking_test_distance', 'six_minute_walking_test_distance'],
      ['weight_&_body_mass', 'weight_body_mass'],
      ['breathing_disturbances', 'breathing_disturbances'],
    ]);
  });

  test('Q15 the same point twice (and the same metric twice) are both parsed with equal natural keys', () => {
    const p = { date: D, qty: 412, source: 'iPhone' };
    const result = parse(metrics({ name: 'step_count', units: 'count', data: [p, p] }, { name: 'step_count', units: 'count', data: [p] }));
    assert.equal(result.quantity.length, 3);
    const keys = result.quantity.map((r) => `${r.metric}|${r.time.epochMs}|${r.source}`);
    assert.equal(new Set(keys).size, 1); // the store collapses them into one row
  });

  test('Q16 implausible values: HR Min 12 rejected and Max 210 kept; systolic < diastolic and SpO2 100.4 rejected', () => {
    const result = parse(
      metrics(
        { name: 'heart_rate', units: 'count/min', data: [{ date: D, Min: 12, Avg: 60, Max: 80 }, { date: '2025-03-11 07:01:00 +0100', Min: 150, Avg: 190, Max: 210 }] },
        { name: 'blood_pressure', units: 'mmHg', data: [{ date: D, systolic: 80, diastolic: 120 }] },
        { name: 'blood_oxygen_saturation', units: '%', data: [{ date: D, qty: 100.4 }] },
      ),
    );
    assert.deepEqual(result.heartRate.map((r) => r.max), [210]);
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason, r.message]),
      [
        ['data.metrics[0].data[0]', 'Min', 'out_of_range', 'Min is 12 bpm, outside 15–300 bpm'],
        ['data.metrics[1].data[0]', 'systolic', 'out_of_range', 'systolic is 80 mmHg, not above diastolic 120 mmHg (a data-entry error)'],
        ['data.metrics[2].data[0]', 'qty', 'out_of_range', 'qty is 100.4%, outside 0–100%'],
      ],
    );
    assert.deepEqual([result.bloodPressure, result.quantity], [[], []]);
  });

  test('Q17 heartRateData holding the post-end recovery series (no heartRateRecovery) is stored as heartRateRecovery', () => {
    const workout = (id: string, heartRateData: Json[], extra: Json = {}): Json => ({ id, name: 'Outdoor Run', start: '2025-03-11 18:00:00 +0100', end: '2025-03-11 18:30:00 +0100', heartRateData, ...extra });
    const after = [
      { date: '2025-03-11 18:30:00 +0100', Min: 150, Avg: 150, Max: 150, units: 'bpm' },
      { date: '2025-03-11 18:31:00 +0100', Min: 131, Avg: 131, Max: 131, units: 'bpm' },
    ];
    const during = [{ date: '2025-03-11 18:10:00 +0100', Min: 140, Avg: 140, Max: 140, units: 'bpm' }];
    const recovery = [{ date: '2025-03-11 18:32:00 +0100', Min: 120, Avg: 120, Max: 120, units: 'bpm' }];
    const result = parse({ data: { workouts: [workout('bug', after), workout('normal', [...during, ...after]), workout('both', after, { heartRateRecovery: recovery })] } });
    const seriesOf = (id: string): string[] => result.workoutSeries.filter((r) => r.workoutId === id).map((r) => r.series);
    assert.deepEqual(seriesOf('bug'), ['heartRateRecovery', 'heartRateRecovery']);
    assert.deepEqual(seriesOf('normal'), ['heartRateData', 'heartRateData', 'heartRateData']);
    assert.deepEqual(seriesOf('both'), ['heartRateData', 'heartRateData', 'heartRateRecovery']);
  });

  test('Q18 v1 workout without id: a stable id from name, start and end, same for a re-send with revised values', () => {
    const v1 = { name: 'Walking', start: '2025-05-03 09:00:00 +0200', end: '2025-05-03 09:40:00 +0200', activeEnergy: { qty: 150, units: 'kcal' }, elevation: { ascent: 42, descent: 40, units: 'm' }, route: [{ lat: 52.52, lon: 13.405, altitude: 34, timestamp: '2025-05-03 09:00:05 +0200' }] };
    const first = parse({ data: { workouts: [v1] } }).workouts[0]!;
    const revised = parse({ data: { workouts: [{ ...v1, activeEnergy: { qty: 155, units: 'kcal' }, start: '2025-05-03 7:00:00 am +0000' }] } }).workouts[0]!;
    const other = parse({ data: { workouts: [{ ...v1, end: '2025-05-03 09:41:00 +0200' }] } }).workouts[0]!;
    assert.match(first.workoutId, /^v1-[0-9a-f]{32}$/);
    assert.equal(first.formatVersion, 1);
    assert.equal(revised.workoutId, first.workoutId); // same instant, other notation, revised energy
    assert.notEqual(other.workoutId, first.workoutId);
    assert.deepEqual(first.summaries['elevation'], { ascent: 42, descent: 40, units: 'm' });
  });

  test('Q19 intensity in kcal/hr·kg is kept with its unit as received', () => {
    const result = parse({ data: { workouts: [{ id: 'W', name: 'Yoga', start: D, end: '2025-03-11 08:00:00 +0100', intensity: { qty: 2.1, units: 'kcal/hr\u00b7kg' } }] } });
    assert.deepEqual(result.workouts[0]!.summaries['intensity'], { qty: 2.1, units: 'kcal/hr\u00b7kg' });
  });

  test('Q20 \\/-escaped units arrive unescaped', () => {
    const body = JSON.parse('{"data":{"metrics":[{"name":"vo2_max","units":"ml\\/(kg\u00b7min)","data":[{"date":"2025-03-11 00:00:00 +0100","qty":41.2}]}]}}') as unknown;
    assert.equal(parse(body).quantity[0]!.units, 'ml/(kg\u00b7min)');
  });
});
