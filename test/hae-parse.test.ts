import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ItemRejection } from '../broker/types.js';
import { rejectionCatalogue } from '../src/errors.js';
import { canonicalMetricName } from '../src/hae/aliases.js';
import { parseHaePayload } from '../src/hae/parse.js';
import { sampleKinds, type ParsedPayload, type SampleKind } from '../src/hae/types.js';
import { projectRoot } from '../src/paths.js';

// Fixed clock: fixtures are from 2021–2025; `now` only bounds future dates.
const NOW = new Date('2025-06-01T00:00:00Z');
const parse = (input: unknown): ParsedPayload => parseHaePayload(input, { now: NOW });


const fixturesDir = join(projectRoot, '..', 'shared', 'fixtures');
const REAL_EXPORT = join(fixturesDir, 'real', 'hae-export-daily-2023-06-to-2025-04.json');

function fixtureFiles(): string[] {
  const files: string[] = [];
  for (const folder of ['real', 'composed']) {
    for (const name of readdirSync(join(fixturesDir, folder)).sort()) if (name.endsWith('.json')) files.push(join(folder, name));
  }
  return files;
}

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8')) as unknown;
}

type Json = Record<string, unknown>;
const asObject = (value: unknown): Json => value as Json;
const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

/* ------------------------------------------------------------------------------------------ */
/* An independent count of what a body holds, written from the format note, not from the parser. */

interface IndependentCounts {
  perKind: Record<SampleKind, number>;
  sleepSegments: number;
  workoutsV1: number;
  /** Kind of each point, by `data.metrics[i]` index, to attribute rejections. */
  kindOfMetric: Map<number, SampleKind>;
}

const aggregatedSleepKeys = ['asleep', 'inBed', 'totalSleep', 'core', 'deep', 'rem', 'awake', 'sleepStart'];

function countIndependently(body: unknown): IndependentCounts {
  const perKind: Record<SampleKind, number> = { quantity: 0, heartRate: 0, bloodPressure: 0, sleep: 0, workouts: 0 };
  const counts: IndependentCounts = { perKind, sleepSegments: 0, workoutsV1: 0, kindOfMetric: new Map() };
  const data = asObject(asObject(body)['data']);
  asArray(data['metrics']).forEach((metric, index) => {
    const name = asObject(metric)['name'];
    for (const point of asArray(asObject(metric)['data'])) {
      const keys = Object.keys(asObject(point));
      if (name === 'heart_rate') {
        perKind.heartRate++;
        counts.kindOfMetric.set(index, 'heartRate');
      } else if (name === 'blood_pressure') {
        perKind.bloodPressure++;
        counts.kindOfMetric.set(index, 'bloodPressure');
      } else if (name === 'sleep_analysis') {
        if (keys.some((k) => aggregatedSleepKeys.includes(k))) {
          perKind.sleep++;
          counts.kindOfMetric.set(index, 'sleep');
        } else counts.sleepSegments++;
      } else if (keys.includes('qty')) {
        perKind.quantity++;
        counts.kindOfMetric.set(index, 'quantity');
      }
    }
  });
  for (const workout of asArray(data['workouts'])) {
    if (asObject(workout)['id'] === undefined) counts.workoutsV1++;
    else perKind.workouts++;
  }
  return counts;
}

function rejectionsPerKind(result: ParsedPayload, counts: IndependentCounts): Record<SampleKind, number> {
  const perKind: Record<SampleKind, number> = { quantity: 0, heartRate: 0, bloodPressure: 0, sleep: 0, workouts: 0 };
  for (const rejection of result.rejections) {
    const metric = /^data\.metrics\[(\d+)\]\.data\[\d+\]$/.exec(rejection.path);
    if (metric !== null) {
      const kind = counts.kindOfMetric.get(Number(metric[1]));
      assert.ok(kind !== undefined, `rejection at ${rejection.path} belongs to no counted kind`);
      perKind[kind]++;
    } else if (/^data\.workouts\[\d+\]$/.test(rejection.path)) perKind.workouts++;
  }
  return perKind;
}

const notStoredItems = (result: ParsedPayload, type: string): number =>
  result.notStored.filter((entry) => entry.type === type).reduce((sum, entry) => sum + entry.items, 0);

describe('every fixture: rows + rejections equal an independent count', () => {
  for (const file of fixtureFiles()) {
    test(file, () => {
      const body = readJson(join(fixturesDir, file));
      const result = parse(body);
      const counts = countIndependently(body);
      const rejected = rejectionsPerKind(result, counts);
      for (const kind of sampleKinds) {
        assert.equal(result.received[kind], counts.perKind[kind], `received.${kind}`);
        assert.equal(result[kind].length + rejected[kind], counts.perKind[kind], `rows + rejections of ${kind}`);
      }
      assert.equal(notStoredItems(result, 'sleep_segments'), counts.sleepSegments, 'sleep segments not stored');
      assert.equal(notStoredItems(result, 'workouts_v1'), counts.workoutsV1, 'v1 workouts not stored');
      for (const rejection of result.rejections) assert.ok(rejection.reason in rejectionCatalogue, rejection.reason);
      for (const entry of result.notStored) assert.ok(entry.reason in rejectionCatalogue, entry.reason);
    });
  }
});

/* ------------------------------------------------------------------------------------------ */

describe('real export hae-export-daily-2023-06-to-2025-04.json', () => {
  const body = readJson(REAL_EXPORT);
  const metrics = asArray(asObject(asObject(body)['data'])['metrics']).map(asObject);
  const metricNamed = (name: string): Json => metrics.find((m) => m['name'] === name)!;
  const pointsOf = (name: string): Json[] => asArray(metricNamed(name)['data']).map(asObject);
  const result = parse(body);

  test('11,104 points, zero rejections, nothing set aside', () => {
    const total = sampleKinds.reduce((sum, kind) => sum + result.received[kind], 0);
    assert.equal(total, 11_104);
    assert.equal(result.quantity.length + result.heartRate.length + result.sleep.length, 11_104);
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(result.notStored, []);
  });

  test('per metric exactly as many rows as the file holds', () => {
    const rowsPerMetric = new Map<string, number>();
    for (const row of result.quantity) rowsPerMetric.set(row.metricReceived, (rowsPerMetric.get(row.metricReceived) ?? 0) + 1);
    for (const metric of metrics) {
      const name = metric['name'] as string;
      const inFile = asArray(metric['data']).length;
      if (name === 'heart_rate') assert.equal(result.heartRate.length, inFile, name);
      else if (name === 'sleep_analysis') assert.equal(result.sleep.length, inFile, name);
      else assert.equal(rowsPerMetric.get(name), inFile, name);
    }
    assert.equal(rowsPerMetric.size, metrics.length - 2);
  });

  test('the first heart_rate point, field by field', () => {
    const point = pointsOf('heart_rate')[0]!;
    assert.equal(point['date'], '2023-06-17 00:00:00 -0400');
    assert.deepEqual(result.heartRate[0], {
      time: { epochMs: Date.UTC(2023, 5, 17, 4), offsetMinutes: -240, localDate: '2023-06-17' },
      source: point['source'],
      min: point['Min'],
      avg: point['Avg'],
      max: point['Max'],
      units: 'count/min',
    });
    assert.equal(result.heartRate[0]!.source, 'Eli\u2019s Apple\u00a0Watch'); // Q3: U+2019 and U+00A0 verbatim
    assert.equal(result.heartRate[0]!.min, 46.00000000000001); // Q12 float noise kept as received
  });

  test('a Watch sleep entry with its efficiency (stages summed: asleep is 0 after v6.6.2)', () => {
    const entry = pointsOf('sleep_analysis')[0]!;
    const row = result.sleep[0]!;
    const core = entry['core'] as number;
    const deep = entry['deep'] as number;
    const rem = entry['rem'] as number;
    const inBed = entry['inBed'] as number;
    assert.equal(entry['asleep'], 0);
    assert.deepEqual(row, {
      date: { epochMs: Date.UTC(2024, 4, 9, 9, 50, 16), offsetMinutes: -240, localDate: '2024-05-09' },
      start: { epochMs: Date.UTC(2024, 4, 9, 2, 26, 46), offsetMinutes: -240, localDate: '2024-05-08' },
      end: { epochMs: Date.UTC(2024, 4, 9, 9, 56, 46), offsetMinutes: -240, localDate: '2024-05-09' },
      inBedStart: { epochMs: Date.UTC(2024, 4, 9, 1, 45), offsetMinutes: -240, localDate: '2024-05-08' },
      inBedEnd: { epochMs: Date.UTC(2024, 4, 9, 9, 45, 2), offsetMinutes: -240, localDate: '2024-05-09' },
      source: 'Eli\u2019s Apple\u00a0Watch|Eli\u2019s iPhone',
      sleepSource: null,
      inBedSource: null,
      totalSleep: null,
      asleep: 0,
      core,
      deep,
      rem,
      awake: entry['awake'],
      inBed,
      efficiency: (core + deep + rem) / inBed,
      units: 'hr',
    });
    assert.ok(row.efficiency! > 0.93 && row.efficiency! < 0.94);
  });

  test('Q8: entries with asleep > inBed are valid; inBed 0 gives no efficiency', () => {
    const entries = pointsOf('sleep_analysis');
    let odd = 0;
    entries.forEach((entry, i) => {
      const asleep = entry['asleep'] as number;
      const inBed = entry['inBed'] as number;
      if (!(asleep > inBed)) return;
      odd++;
      const row = result.sleep[i]!; // zero rejections: rows are in file order
      assert.equal(row.asleep, asleep);
      assert.equal(row.efficiency, inBed > 0 ? asleep / inBed : null);
    });
    assert.ok(odd > 0);
  });

  test('vo2_max keeps its canonical name and the name as received', () => {
    const first = pointsOf('vo2_max')[0]!;
    const row = result.quantity.find((r) => r.metricReceived === 'vo2_max')!;
    assert.deepEqual(row, {
      metric: 'vo2_max',
      metricReceived: 'vo2_max',
      time: { epochMs: Date.UTC(2023, 5, 24, 4), offsetMinutes: -240, localDate: '2023-06-24' },
      qty: first['qty'],
      units: 'ml/(kg\u00b7min)', // Q20: `\/` unescaped by JSON.parse
      source: '', // Q1: no source
      extra: null,
    });
    assert.equal(canonicalMetricName('vo2max'), 'vo2_max');
  });

  test('Q1: points without source get "", sources with U+2019 are kept verbatim', () => {
    const resting = result.quantity.filter((r) => r.metric === 'resting_heart_rate');
    assert.equal(resting.length, pointsOf('resting_heart_rate').length);
    assert.ok(resting.every((r) => r.source === ''));
    const daylight = result.quantity.find((r) => r.metric === 'time_in_daylight')!;
    assert.equal(daylight.source, 'Eli\u2019s Apple\u00a0Watch');
    const caffeine = result.quantity.find((r) => r.metric === 'dietary_caffeine')!;
    assert.deepEqual(caffeine, {
      metric: 'dietary_caffeine',
      metricReceived: 'dietary_caffeine',
      time: { epochMs: Date.UTC(2023, 5, 17, 4), offsetMinutes: -240, localDate: '2023-06-17' },
      qty: 68,
      units: 'mg',
      source: 'MyNetDiary',
      extra: null,
    });
  });

  test('Q6: both DST offsets of the file are kept per point', () => {
    const offsets = new Set(result.quantity.map((r) => r.time.offsetMinutes));
    assert.deepEqual([...offsets].sort(), [-240, -300]);
    const winter = result.quantity.find((r) => r.time.offsetMinutes === -300)!;
    assert.equal(winter.time.epochMs % 86_400_000, 5 * 3_600_000); // local midnight at -0500
  });
});

/* ------------------------------------------------------------------------------------------ */

describe('composed hae-small.json', () => {
  const result = parse(readJson(join(fixturesDir, 'composed', 'hae-small.json')));

  test('nothing rejected, nothing set aside', () => {
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(result.notStored, []);
    assert.deepEqual(result.received, { quantity: 8, heartRate: 3, bloodPressure: 1, sleep: 1, workouts: 1 });
  });

  test('the v2 workout becomes one WorkoutRow with its summaries', () => {
    assert.equal(result.workouts.length, 1);
    const workout = result.workouts[0]!;
    assert.equal(workout.workoutId, '5F1C2E3A-8B7D-4E6F-9A0B-1C2D3E4F5A6B');
    assert.equal(workout.name, 'Outdoor Run');
    assert.deepEqual(workout.start, { epochMs: Date.UTC(2025, 2, 11, 17, 2, 10), offsetMinutes: 60, localDate: '2025-03-11' });
    assert.deepEqual(workout.end, { epochMs: Date.UTC(2025, 2, 11, 17, 32, 40), offsetMinutes: 60, localDate: '2025-03-11' });
    assert.equal(workout.durationSeconds, 1830.4183950424194);
    assert.equal(workout.location, 'Outdoor');
    assert.equal(workout.isIndoor, false);
    assert.deepEqual(workout.activeEnergy, { qty: 402.60199999999998, units: 'kcal' });
    assert.deepEqual(workout.totalEnergy, { qty: 455.10000000000002, units: 'kcal' });
    assert.deepEqual(workout.distance, { qty: 5.2103471374511719, units: 'km' });
    assert.equal(workout.heartRateMin, 98);
    assert.equal(workout.heartRateAvg, 152.41);
    assert.equal(workout.heartRateMax, 171);
    assert.deepEqual(Object.keys(workout.summaries).sort(), [
      'activeEnergyBurned',
      'avgHeartRate',
      'avgSpeed',
      'distance',
      'elevationUp',
      'humidity',
      'intensity',
      'maxHeartRate',
      'temperature',
      'totalEnergy',
    ]);
    assert.deepEqual(workout.summaries['intensity'], { qty: 9.8142000000000014, units: 'kcal/hr\u00b7kg' }); // Q19, Q20
    assert.deepEqual(workout.summaries['temperature'], { qty: 9.4, units: 'degC' });
    assert.deepEqual(workout.metadata, {});
  });

  test('sleep efficiency uses totalSleep when present', () => {
    const sleep = result.sleep[0]!;
    assert.equal(sleep.totalSleep, 7.2000000000000002);
    assert.equal(sleep.inBed, 7.9200000000000004);
    assert.equal(sleep.efficiency, 7.2000000000000002 / 7.9200000000000004);
    assert.equal(sleep.core, 4.0999999999999996);
    assert.equal(sleep.awake, 0.35000000000000003);
    assert.equal(sleep.start.epochMs, Date.UTC(2025, 2, 10, 22, 21, 4)); // sleepStart
    assert.equal(sleep.date.epochMs, Date.UTC(2025, 2, 11, 5, 58, 31));
  });

  test('Q13: SpO2 on the 0–100 scale is kept as is', () => {
    const spo2 = result.quantity.find((r) => r.metric === 'blood_oxygen_saturation')!;
    assert.equal(spo2.qty, 97.333333333333329);
    assert.equal(spo2.units, '%');
  });

  test('heart rate, blood pressure and joined sources', () => {
    assert.deepEqual(result.heartRate.map((r) => [r.min, r.avg, r.max]), [
      [54, 61.5, 72],
      [58, 63.333333333333336, 69],
      [66, 77.000000000000014, 88],
    ]);
    assert.ok(result.heartRate.every((r) => r.units === 'count/min'));
    assert.deepEqual(result.bloodPressure, [
      {
        time: { epochMs: Date.UTC(2025, 2, 11, 6, 45, 12), offsetMinutes: 60, localDate: '2025-03-11' },
        source: 'Withings',
        systolic: 124,
        diastolic: 81,
        units: 'mmHg',
      },
    ]);
    assert.equal(result.quantity.find((r) => r.metric === 'step_count')!.source, 'Anna\u2019s iPhone|Anna\u2019s Apple Watch'); // Q3
  });
});

describe('composed hae-sleep-unaggregated.json', () => {
  test('segments go to notStored; the other metrics are stored', () => {
    const result = parse(readJson(join(fixturesDir, 'composed', 'hae-sleep-unaggregated.json')));
    assert.deepEqual(result.notStored, [{ type: 'sleep_segments', items: 13, reason: 'unsupported_type' }]);
    assert.deepEqual(result.rejections, []);
    assert.equal(result.sleep.length, 0);
    assert.equal(result.received.sleep, 0);
    assert.deepEqual(
      result.quantity.map((r) => [r.metric, r.qty, r.units, r.source]),
      [
        ['apple_sleeping_wrist_temperature', 96.873519897460938, 'degF', ''],
        ['respiratory_rate', 14.5, 'count/min', ''],
      ],
    );
  });
});

describe('real hae-workouts-sample.json', () => {
  test('seven v2 workouts, summaries only where the workout has them', () => {
    const result = parse(readJson(join(fixturesDir, 'real', 'hae-workouts-sample.json')));
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(
      result.workouts.map((w) => w.workoutId),
      ['SAMPLE-001', 'SAMPLE-002', 'SAMPLE-003', 'SAMPLE-004', 'SAMPLE-005', 'SAMPLE-006', 'SAMPLE-007'],
    );
    const run = result.workouts[4]!;
    assert.deepEqual(run.distance, { qty: 3.2, units: 'mi' });
    assert.deepEqual(run.activeEnergy, { qty: 250.7, units: 'kcal' });
    assert.equal(run.totalEnergy, null);
    assert.equal(run.heartRateAvg, null);
    assert.equal(run.isIndoor, null);
    assert.equal(run.durationSeconds, 1800);
    assert.equal(result.workouts[3]!.location, null);
    assert.deepEqual(Object.keys(result.workouts[3]!.summaries).sort(), ['activeEnergyBurned', 'intensity']);
  });
});

/* ------------------------------------------------------------------------------------------ */

const metricsBody = (...metrics: unknown[]): unknown => ({ data: { metrics } });
const point = (qty: unknown, extra: Json = {}): Json => ({ date: '2024-05-01 08:00:00 +0200', qty, ...extra });

function only(result: ParsedPayload): ItemRejection {
  assert.equal(result.rejections.length, 1, JSON.stringify(result.rejections));
  return result.rejections[0]!;
}

describe('envelope', () => {
  for (const input of [null, [], 'x', 5, true, { data: 5 }, { data: [] }, { data: null }, { data: 'x' }, { metrics: [] }]) {
    test(`not an export: ${JSON.stringify(input)}`, () => {
      const result = parse(input);
      const rejection = only(result);
      assert.equal(rejection.reason, 'not_an_export');
      assert.equal(rejection.path, '$');
      assert.ok(rejection.message.length > 0);
      assert.equal(result.quantity.length, 0);
    });
  }

  test('{} and {"data":{}} are valid and yield nothing', () => {
    for (const input of [{}, { data: {} }]) {
      const result = parse(input);
      assert.deepEqual(result.rejections, []);
      assert.deepEqual(result.notStored, []);
      assert.deepEqual(result.received, { quantity: 0, heartRate: 0, bloodPressure: 0, sleep: 0, workouts: 0 });
    }
  });

  test('data.metrics that is not an array is rejected at data.metrics; workouts still parse', () => {
    const result = parse({ data: { metrics: 5, workouts: [{ id: 'W1', name: 'Walk', start: '2024-05-01 08:00:00 +0200', end: '2024-05-01 08:30:00 +0200', duration: 1800 }] } });
    const rejection = only(result);
    assert.equal(rejection.reason, 'invalid_shape');
    assert.equal(rejection.path, 'data.metrics');
    assert.equal(result.workouts.length, 1);
  });

  test('unmodelled data types go to notStored with their item count; empty ones are skipped', () => {
    const result = parse({
      data: {
        stateOfMind: [{ id: 'x' }],
        medications: [{}, {}],
        symptoms: [],
        ecg: [],
        cycleTracking: [{}, {}, {}],
        heartRateNotifications: [{}],
        breathing: [1, 2],
        metrics: [],
      },
      meta: 'x',
    });
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(
      [...result.notStored].sort((a, b) => a.type.localeCompare(b.type)),
      [
        { type: 'breathing', items: 2, reason: 'unknown_key' },
        { type: 'cycleTracking', items: 3, reason: 'unsupported_type' },
        { type: 'heartRateNotifications', items: 1, reason: 'unsupported_type' },
        { type: 'medications', items: 2, reason: 'unsupported_type' },
        { type: 'meta', items: 1, reason: 'unknown_key' },
        { type: 'stateOfMind', items: 1, reason: 'unsupported_type' },
      ],
    );
  });
});

describe('metric objects', () => {
  test('a metric without name is rejected; its neighbours are parsed', () => {
    const result = parse(metricsBody({ units: 'count', data: [point(1)] }, { name: 'step_count', units: 'count', data: [point(2)] }));
    const rejection = only(result);
    assert.deepEqual([rejection.type, rejection.path, rejection.field, rejection.reason], ['metrics', 'data.metrics[0]', 'name', 'missing_value']);
    assert.deepEqual(result.quantity.map((r) => r.qty), [2]);
  });

  test('a blank name, a numeric name, a metric that is a string, data that is not an array', () => {
    const result = parse(
      metricsBody(
        { name: '  ', data: [point(1)] },
        { name: 7, data: [point(1)] },
        'step_count',
        { name: 'step_count', data: { qty: 1 } },
        { name: 'step_count', units: 'count', data: [point(5)] },
      ),
    );
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason]),
      [
        ['data.metrics[0]', 'name', 'missing_value'],
        ['data.metrics[1]', 'name', 'invalid_shape'],
        ['data.metrics[2]', undefined, 'invalid_shape'],
        ['data.metrics[3]', 'data', 'invalid_shape'],
      ],
    );
    assert.deepEqual(result.quantity.map((r) => r.qty), [5]);
  });

  test('Q4: data [] and a missing data yield nothing', () => {
    const result = parse(metricsBody({ name: 'step_count', units: 'count', data: [] }, { name: 'step_count', units: 'count' }));
    assert.deepEqual(result.rejections, []);
    assert.equal(result.quantity.length, 0);
  });

  test('Q14: aliased and legacy names map to one canonical name; the received name is kept', () => {
    const names: Array<[string, string]> = [
      ['vo2max', 'vo2_max'],
      ['VO2_Max ', 'vo2_max'],
      ['caffeine', 'dietary_caffeine'],
      ['cholesterol', 'dietary_cholesterol'],
      ['biotin', 'dietary_biotin'],
      ['walking_heart_rate', 'walking_heart_rate_average'],
      ['environmental_audio', 'environmental_audio_exposure'],
      ['headphone_audio_exposure', 'headphone_audio_exposure'],
      ['monosaturated_fat', 'monounsaturated_fat'],
      ['six-minute_walking_test_distance', 'six_minute_walking_test_distance'],
      ['stair_speed:_up', 'stair_speed_up'],
      ['stair_speed:_down', 'stair_speed_down'],
      ['weight_&_body_mass', 'weight_body_mass'],
      ['weight_body_mass', 'weight_body_mass'],
      ['swim_stroke_count', 'swimming_stroke_count'],
      ['wheelchair_push_count', 'push_count'],
      ['downhill_snow_sports', 'distance_downhill_snow_sports'],
      ['forced_expiratory_volume', 'forced_expiratory_volume_1'],
      ['number_of_time_fallen', 'number_of_times_fallen'],
      ['breathing_disturbances', 'breathing_disturbances'],
      ['constructor', 'constructor'],
    ];
    const result = parse(metricsBody(...names.map(([name], i) => ({ name, units: 'u', data: [point(i)] }))));
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(
      result.quantity.map((r) => [r.metricReceived, r.metric]),
      names,
    );
  });

  test('heart_rate arriving under a differently spelled name still gets the heart-rate shape', () => {
    const result = parse(metricsBody({ name: 'Heart_Rate', units: 'bpm', data: [{ date: '2024-05-01 08:00:00 +0200', Avg: 60 }] }));
    assert.equal(result.heartRate.length, 1);
  });
});

describe('points', () => {
  test('strings where numbers go are not_a_number (never coerced); neighbours survive', () => {
    const result = parse(
      metricsBody(
        { name: 'step_count', units: 'count', data: [point(10), point('12'), point(true), point(11)] },
        { name: 'heart_rate', units: 'count/min', data: [{ date: '2024-05-01 08:00:00 +0200', Min: 'x', Avg: 60, Max: 70 }, { date: '2024-05-01 08:01:00 +0200', Avg: 61 }] },
        { name: 'blood_pressure', units: 'mmHg', data: [{ date: '2024-05-01 08:00:00 +0200', systolic: '120', diastolic: 80 }, { date: '2024-05-01 08:05:00 +0200', systolic: 121, diastolic: 79 }] },
        { name: 'sleep_analysis', units: 'hr', data: [{ date: '2024-05-01', inBed: '7', asleep: 6 }, { date: '2024-05-02', inBed: 8, asleep: 6 }] },
      ),
    );
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.name, r.field, r.reason]),
      [
        ['data.metrics[0].data[1]', 'step_count', 'qty', 'not_a_number'],
        ['data.metrics[0].data[2]', 'step_count', 'qty', 'not_a_number'],
        ['data.metrics[1].data[0]', 'heart_rate', 'Min', 'not_a_number'],
        ['data.metrics[2].data[0]', 'blood_pressure', 'systolic', 'not_a_number'],
        ['data.metrics[3].data[0]', 'sleep_analysis', 'inBed', 'not_a_number'],
      ],
    );
    assert.ok(result.rejections[0]!.message.includes('"12"'), result.rejections[0]!.message);
    assert.deepEqual(result.quantity.map((r) => r.qty), [10, 11]);
    assert.deepEqual(result.heartRate.map((r) => [r.min, r.avg, r.max]), [[null, 61, null]]);
    assert.deepEqual(result.bloodPressure.map((r) => r.systolic), [121]);
    assert.deepEqual(result.sleep.map((r) => [r.date.localDate, r.efficiency]), [['2024-05-02', 0.75]]);
    assert.deepEqual(result.received, { quantity: 4, heartRate: 2, bloodPressure: 2, sleep: 2, workouts: 0 });
  });

  test('NaN and Infinity (impossible from JSON.parse, possible from other callers) are not numbers', () => {
    const result = parse(
      metricsBody(
        { name: 'step_count', units: 'count', data: [point(Number.NaN), point(Number.POSITIVE_INFINITY), point(''), point(1)] },
        { name: 'heart_rate', units: 'bpm', data: [{ date: '2024-05-01 08:00:00 +0200', Max: Number.NEGATIVE_INFINITY }] },
        { name: 'blood_pressure', units: 'mmHg', data: [{ date: '2024-05-01 08:00:00 +0200', systolic: Number.NaN, diastolic: 80 }] },
      ),
    );
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason]),
      [
        ['data.metrics[0].data[0]', 'qty', 'not_a_number'],
        ['data.metrics[0].data[1]', 'qty', 'not_a_number'],
        ['data.metrics[0].data[2]', 'qty', 'not_a_number'],
        ['data.metrics[1].data[0]', 'Max', 'not_a_number'],
        ['data.metrics[2].data[0]', 'systolic', 'not_a_number'],
      ],
    );
    assert.ok(result.rejections[0]!.message.includes('NaN'), result.rejections[0]!.message);
    assert.equal(result.quantity.length, 1);
  });

  test('points that are not objects are invalid_shape', () => {
    const result = parse(metricsBody({ name: 'step_count', units: 'count', data: ['x', null, 5, [1], point(3)] }));
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.reason]),
      [
        ['data.metrics[0].data[0]', 'invalid_shape'],
        ['data.metrics[0].data[1]', 'invalid_shape'],
        ['data.metrics[0].data[2]', 'invalid_shape'],
        ['data.metrics[0].data[3]', 'invalid_shape'],
      ],
    );
    assert.equal(result.quantity.length, 1);
    assert.equal(result.received.quantity, 5);
  });

  test('missing values', () => {
    const result = parse(
      metricsBody(
        { name: 'step_count', units: 'count', data: [point(null), { date: '2024-05-01 08:00:00 +0200', source: 'x' }] },
        { name: 'heart_rate', units: 'bpm', data: [{ date: '2024-05-01 08:00:00 +0200', source: 'w' }, { date: '2024-05-01 08:00:00 +0200', Min: null, Avg: null, Max: null }] },
        { name: 'blood_pressure', units: 'mmHg', data: [{ date: '2024-05-01 08:00:00 +0200', systolic: 120 }] },
      ),
    );
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason]),
      [
        ['data.metrics[0].data[0]', 'qty', 'missing_value'],
        ['data.metrics[0].data[1]', 'qty', 'missing_value'],
        ['data.metrics[1].data[0]', 'Avg', 'missing_value'],
        ['data.metrics[1].data[1]', 'Avg', 'missing_value'],
        ['data.metrics[2].data[0]', 'diastolic', 'missing_value'],
      ],
    );
  });

  test('dates: a number, a missing date, garbage → invalid_date; absurd years → date_out_of_range', () => {
    const result = parse(
      metricsBody({
        name: 'step_count',
        units: 'count',
        data: [
          { date: 1714550400000, qty: 1 },
          { qty: 2 },
          { date: '2024-02-30 08:00:00 +0200', qty: 3 },
          { date: '1969-12-31 23:00:00 +0000', qty: 4 },
          { date: '2999-01-01 00:00:00 +0000', qty: 5 },
          { date: '2025-06-02 12:00:00 +0000', qty: 6 }, // now + 1.5 days: accepted
          { date: '2025-06-03 12:00:00 +0000', qty: 7 }, // now + 2.5 days: refused
          { date: '1970-01-01 00:00:00 +0000', qty: 8 },
        ],
      }),
    );
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason]),
      [
        ['data.metrics[0].data[0]', 'date', 'invalid_date'],
        ['data.metrics[0].data[1]', 'date', 'invalid_date'],
        ['data.metrics[0].data[2]', 'date', 'invalid_date'],
        ['data.metrics[0].data[3]', 'date', 'date_out_of_range'],
        ['data.metrics[0].data[4]', 'date', 'date_out_of_range'],
        ['data.metrics[0].data[6]', 'date', 'date_out_of_range'],
      ],
    );
    assert.ok(result.rejections[0]!.message.includes('1714550400000'));
    assert.deepEqual(result.quantity.map((r) => r.qty), [6, 8]);
  });

  test('Q5/Q6/Q7 dates inside a body: 12-hour with U+202F, mixed offsets, date-only sleep', () => {
    const result = parse(
      metricsBody(
        { name: 'step_count', units: 'count', data: [point(1, { date: '2024-09-21 7:57:00\u202fPM +1000' }), point(2, { date: '2024-11-03 01:30:00 -0500' }), point(3, { date: '2024-11-03 01:30:00 -0400' })] },
        { name: 'sleep_analysis', units: 'hr', data: [{ date: '2024-05-09', asleep: 7, inBed: 8, sleepSource: 'AutoSleep', inBedSource: 'iPhone' }] },
      ),
    );
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(result.quantity.map((r) => r.time.offsetMinutes), [600, -300, -240]);
    const sleep = result.sleep[0]!;
    assert.deepEqual(sleep.date, { epochMs: Date.UTC(2024, 4, 9), offsetMinutes: 0, localDate: '2024-05-09' });
    assert.deepEqual(sleep.start, sleep.date);
    // Before app v6.6.2 there was no `source`: the sleep source stands in for it.
    assert.deepEqual([sleep.source, sleep.sleepSource, sleep.inBedSource], ['AutoSleep', 'AutoSleep', 'iPhone']);
    assert.equal(sleep.efficiency, 7 / 8);
  });

  test('Q2/Q3 sources: "" and null become "", joined and odd characters verbatim, a numeric source is refused', () => {
    const joined = 'Ana\u2019s Watch|Ana\u2019s Watch|Zo\u00a0e\'s iPhone';
    const result = parse(metricsBody({ name: 'step_count', units: 'count', data: [point(1, { source: '' }), point(2, { source: null }), point(3, { source: joined }), point(4, { source: 5 })] }));
    assert.deepEqual(result.quantity.map((r) => r.source), ['', '', joined]);
    assert.deepEqual(only(result).field, 'source');
  });

  test('extra scalar fields of a point go to extra; objects stay in the raw payload', () => {
    const result = parse(
      metricsBody(
        { name: 'blood_glucose', units: 'mg/dL', data: [point(98, { mealTime: 'Before Meal', source: 'Dexcom' })] },
        { name: 'insulin_delivery', units: 'IU', data: [point(4, { reason: 'Bolus' })] },
        { name: 'handwashing', units: 's', data: [point(22, { value: 'Complete', nested: { a: 1 }, flag: true })] },
      ),
    );
    assert.deepEqual(result.quantity.map((r) => r.extra), [{ mealTime: 'Before Meal' }, { reason: 'Bolus' }, { value: 'Complete', flag: true }]);
    assert.equal(result.quantity[0]!.source, 'Dexcom');
  });

  test('points without qty and with another shape are not stored (per metric), not rejected', () => {
    const sexual = { date: '2024-05-01 08:00:00 +0200', Unspecified: 1, 'Protection Used': 0, 'Protection Not Used': 0 };
    const result = parse(metricsBody({ name: 'sexual_activity', units: 'count', data: [sexual, sexual] }, { name: 'sexual_activity', units: 'count', data: [sexual] }));
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(result.notStored, [{ type: 'metric:sexual_activity', items: 3, reason: 'unsupported_type' }]);
    assert.equal(result.received.quantity, 0);
  });

  test('heart_rate qty is an instantaneous sample: min = avg = max', () => {
    const result = parse(metricsBody({ name: 'heart_rate', units: 'count/min', data: [{ date: '2024-05-01 08:00:00 +0200', qty: 72, source: 'Watch' }] }));
    assert.deepEqual(result.heartRate.map((r) => [r.min, r.avg, r.max, r.source]), [[72, 72, 72, 'Watch']]);
  });

  test('blood pressure at or below zero is out_of_range; systolic < diastolic is left to later checks', () => {
    const bp = (systolic: number, diastolic: number): Json => ({ date: '2024-05-01 08:00:00 +0200', systolic, diastolic });
    const result = parse(metricsBody({ name: 'blood_pressure', units: 'mmHg', data: [bp(0, 80), bp(120, -5), bp(80, 120)] }));
    assert.deepEqual(
      result.rejections.map((r) => [r.field, r.reason]),
      [
        ['systolic', 'out_of_range'],
        ['diastolic', 'out_of_range'],
      ],
    );
    assert.equal(result.bloodPressure.length, 1);
  });

  test('a negative quantity is allowed in this version (ranges come later)', () => {
    const result = parse(metricsBody({ name: 'body_temperature_delta', units: 'degC', data: [point(-0.4)] }));
    assert.deepEqual(result.quantity.map((r) => r.qty), [-0.4]);
  });

  test('sleep: Q11 segments with date null are not stored; a point with neither shape is invalid', () => {
    const result = parse(
      metricsBody({
        name: 'sleep_analysis',
        units: 'hr',
        data: [
          { startDate: '2024-05-01 23:00:00 +0200', endDate: '2024-05-02 06:00:00 +0200', qty: 7, value: 'InBed', date: null },
          { date: '2024-05-02 06:00:00 +0200', source: 'x' },
          { date: '2024-05-02 06:00:00 +0200', inBed: 0, asleep: 6.5, core: 0, deep: 0, rem: 0, source: 'Sleep++' },
          { date: '2024-05-02 06:00:00 +0200', inBed: 8, sleepStart: 'tomorrow' },
        ],
      }),
    );
    assert.deepEqual(result.notStored, [{ type: 'sleep_segments', items: 1, reason: 'unsupported_type' }]);
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason]),
      [
        ['data.metrics[0].data[1]', undefined, 'invalid_shape'],
        ['data.metrics[0].data[3]', 'sleepStart', 'invalid_date'],
      ],
    );
    // Q8: third-party entry with zero stages and asleep > inBed is valid; inBed 0 → no efficiency.
    assert.deepEqual(result.sleep.map((r) => [r.asleep, r.inBed, r.efficiency, r.source]), [[6.5, 0, null, 'Sleep++']]);
    assert.equal(result.received.sleep, 3);
  });

  test('messages are sentences with the value, truncated', () => {
    const long = 'x'.repeat(500);
    const result = parse(metricsBody({ name: 'step_count', units: 'count', data: [point(long)] }));
    const { message } = only(result);
    assert.ok(message.includes('xxxx'));
    assert.ok(message.includes('\u2026'));
    assert.ok(message.length < 160, message);
  });
});

describe('workouts', () => {
  const base = { id: 'W-1', name: 'Outdoor Walk', start: '2024-05-01 08:00:00 +0200', end: '2024-05-01 08:30:00 +0200', duration: 1800 };

  test('Q18: a v1 workout (no id) is not stored; its v2 neighbour is', () => {
    const v1 = { name: 'Walking', start: '2024-05-01 07:00:00 +0200', end: '2024-05-01 07:20:00 +0200', activeEnergy: { qty: 50, units: 'kcal' }, elevation: { ascent: 3, descent: 2, units: 'm' } };
    const result = parse({ data: { workouts: [v1, base, v1] } });
    assert.deepEqual(result.notStored, [{ type: 'workouts_v1', items: 2, reason: 'unsupported_type' }]);
    assert.equal(result.workouts.length, 1);
    assert.equal(result.received.workouts, 1);
  });

  test('fallbacks: activeEnergy as an object, avgHeartRate/maxHeartRate; a series activeEnergy is ignored', () => {
    const result = parse({
      data: {
        workouts: [
          { ...base, activeEnergy: { qty: 120, units: 'kcal' }, avgHeartRate: { qty: 110, units: 'bpm' }, maxHeartRate: { qty: 140, units: 'bpm' } },
          { ...base, id: 'W-2', activeEnergy: [{ date: '2024-05-01 08:01:00 +0200', qty: 4, units: 'kcal' }] },
        ],
      },
    });
    assert.deepEqual(result.rejections, []);
    const [first, second] = result.workouts;
    assert.deepEqual(first!.activeEnergy, { qty: 120, units: 'kcal' });
    assert.deepEqual([first!.heartRateMin, first!.heartRateAvg, first!.heartRateMax], [null, 110, 140]);
    assert.equal(second!.activeEnergy, null);
    assert.deepEqual(second!.summaries, {});
    assert.equal(second!.metadata, null);
  });

  test('bad workouts are rejected with the field; neighbours survive', () => {
    const result = parse({
      data: {
        workouts: [
          { ...base, distance: { qty: '5', units: 'km' } },
          { ...base, intensity: { qty: 'high', units: 'MET' } },
          { ...base, start: 'yesterday' },
          { ...base, duration: '30 min' },
          { ...base, name: undefined },
          'W-9',
          { ...base, id: 42 },
          base,
        ],
      },
    });
    assert.deepEqual(
      result.rejections.map((r) => [r.type, r.path, r.field, r.reason]),
      [
        ['workouts', 'data.workouts[0]', 'distance.qty', 'not_a_number'],
        ['workouts', 'data.workouts[1]', 'intensity.qty', 'not_a_number'],
        ['workouts', 'data.workouts[2]', 'start', 'invalid_date'],
        ['workouts', 'data.workouts[3]', 'duration', 'not_a_number'],
        ['workouts', 'data.workouts[4]', 'name', 'missing_value'],
        ['workouts', 'data.workouts[5]', undefined, 'invalid_shape'],
        ['workouts', 'data.workouts[6]', 'id', 'invalid_shape'],
      ],
    );
    assert.equal(result.rejections[0]!.name, 'Outdoor Walk');
    assert.equal(result.workouts.length, 1);
    assert.equal(result.received.workouts, 8);
  });
});

describe('never throws', () => {
  const odd: unknown[] = [
    undefined,
    0,
    -1,
    '',
    [[[]]],
    { data: { metrics: [null, [], 1, 'x', { name: 'step_count', data: [null, [], {}, { qty: {} }, { qty: [] }, { date: {}, qty: 1 }] }] } },
    { data: { metrics: [{ name: 'heart_rate', data: [{}, { Min: {}, date: [] }] }, { name: 'sleep_analysis', data: [{}, { asleep: {} }, { sleepStart: 5 }] }, { name: 'blood_pressure', data: [{}] }] } },
    { data: { workouts: [null, [], {}, { id: {} }, { id: 'x', heartRate: 5 }, { id: 'x', heartRate: { min: 5 } }, { id: 'x', metadata: [] }] } },
    { data: { __proto__: [1], constructor: 5, toString: [] } },
    JSON.parse('{"data":{"__proto__":[1,2],"metrics":[{"name":"__proto__","data":[{"date":"2024-05-01 08:00:00 +0200","qty":1}]}]}}') as unknown,
  ];
  for (const [index, input] of odd.entries()) {
    test(`odd input #${index}`, () => {
      const result = parseHaePayload(input);
      for (const rejection of result.rejections) {
        assert.ok(rejection.reason in rejectionCatalogue);
        assert.equal(typeof rejection.message, 'string');
      }
    });
  }

  test('a metric named __proto__ is just a name (folded like any other)', () => {
    const result = parseHaePayload(odd[9]);
    assert.deepEqual(result.quantity.map((r) => [r.metricReceived, r.metric]), [['__proto__', 'proto']]);
    assert.deepEqual(result.notStored, [{ type: '__proto__', items: 2, reason: 'unknown_key' }]);
  });
});
