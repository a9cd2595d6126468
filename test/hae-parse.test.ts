import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ItemRejection } from '../broker/types.js';
import { rejectionCatalogue } from '../src/errors.js';
import { canonicalMetricName } from '../src/hae/aliases.js';
import { defaultLimits } from '../src/hae/limits.js';
import { parseHaePayload } from '../src/hae/parse.js';
import { envelopeSchema, isValidEnvelope, isValidMetricObject, metricObjectSchema } from '../src/hae/schema.js';
import { sampleKinds, type ParsedPayload, type SampleKind } from '../src/hae/types.js';
import { projectRoot } from '../src/paths.js';
import { allTypesPayload } from './helpers/all-types-payload.js';

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
  /** Kind of the points of each `data.metrics[i]`, by point index, to attribute rejections. */
  kindOfPoint: Map<string, SampleKind>;
}

const aggregatedSleepKeys = ['asleep', 'inBed', 'totalSleep', 'core', 'deep', 'rem', 'awake', 'sleepStart'];
/** Every array of §1.5 is one kind, one item each. */
const recordArrays: Record<string, SampleKind> = {
  stateOfMind: 'stateOfMind',
  medications: 'medications',
  symptoms: 'symptoms',
  cycleTracking: 'cycleTracking',
  ecg: 'ecg',
  heartRateNotifications: 'heartRateNotifications',
};
const emptyCounts = (): Record<SampleKind, number> => Object.fromEntries(sampleKinds.map((kind) => [kind, 0])) as Record<SampleKind, number>;

/** The kind a metric point is, from the format note: by name, then (sleep) by its keys. */
function kindOfMetricPoint(name: unknown, point: unknown): SampleKind {
  const keys = typeof point === 'object' && point !== null ? Object.keys(point) : [];
  if (name === 'heart_rate') return 'heartRate';
  if (name === 'blood_pressure') return 'bloodPressure';
  if (name === 'sleep_analysis') {
    const segment = !keys.some((k) => aggregatedSleepKeys.includes(k)) && (keys.includes('startDate') || keys.includes('endDate'));
    return segment ? 'sleepSegments' : 'sleep';
  }
  return 'quantity';
}

function countIndependently(body: unknown): IndependentCounts {
  const perKind = emptyCounts();
  const counts: IndependentCounts = { perKind, kindOfPoint: new Map() };
  const data = asObject(asObject(body)['data']);
  asArray(data['metrics']).forEach((metric, index) => {
    const name = asObject(metric)['name'];
    asArray(asObject(metric)['data']).forEach((point, j) => {
      const kind = kindOfMetricPoint(name, point);
      perKind[kind]++;
      counts.kindOfPoint.set(`data.metrics[${index}].data[${j}]`, kind);
    });
  });
  for (const workout of asArray(data['workouts'])) {
    perKind.workouts++;
    for (const [key, value] of Object.entries(asObject(workout))) {
      if (key === 'route') perKind.workoutRoute += asArray(value).length;
      else perKind.workoutSeries += asArray(value).length; // every fixture array of a workout is a series
    }
  }
  for (const [key, kind] of Object.entries(recordArrays)) perKind[kind] += asArray(data[key]).length;
  return counts;
}

function rejectionsPerKind(result: ParsedPayload, counts: IndependentCounts): Record<SampleKind, number> {
  const perKind = emptyCounts();
  for (const rejection of result.rejections) {
    const kind =
      counts.kindOfPoint.get(rejection.path) ??
      (/^data\.workouts\[\d+\]$/.test(rejection.path) ? 'workouts' : undefined) ??
      (/^data\.workouts\[\d+\]\.route\[\d+\]$/.test(rejection.path) ? 'workoutRoute' : undefined) ??
      (/^data\.workouts\[\d+\]\.\w+\[\d+\]$/.test(rejection.path) ? 'workoutSeries' : undefined) ??
      recordArrays[/^data\.(\w+)\[\d+\]$/.exec(rejection.path)?.[1] ?? ''];
    assert.ok(kind !== undefined, `rejection at ${rejection.path} belongs to no counted kind`);
    perKind[kind]++;
  }
  return perKind;
}

/** `received` with every kind 0 except those given. */
function receivedWith(counts: Partial<Record<SampleKind, number>>): Record<SampleKind, number> {
  return { ...emptyCounts(), ...counts };
}

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
      assert.equal(result.notStored.length, 0, JSON.stringify(result.notStored));
      for (const rejection of result.rejections) assert.ok(rejection.reason in rejectionCatalogue, rejection.reason);
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
    assert.deepEqual(result.received, receivedWith({ quantity: 8, heartRate: 3, bloodPressure: 1, sleep: 1, workouts: 1, workoutSeries: 11, workoutRoute: 4 }));
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
  test('13 segments become SleepSegmentRows with normalised stages; the other metrics are stored', () => {
    const body = readJson(join(fixturesDir, 'composed', 'hae-sleep-unaggregated.json'));
    const result = parse(body);
    assert.deepEqual(result.notStored, []);
    assert.deepEqual(result.rejections, []);
    assert.equal(result.sleep.length, 0);
    assert.equal(result.sleepSegments.length, 13);
    const points = asArray(asObject(asArray(asObject(asObject(body)['data'])['metrics'])[0])['data']).map(asObject);
    assert.deepEqual(
      result.sleepSegments.map((r) => r.valueReceived),
      points.map((p) => p['value']),
    );
    assert.deepEqual(
      [...new Set(result.sleepSegments.map((r) => r.stage))].sort(),
      ['asleep', 'awake', 'core', 'deep', 'in_bed', 'rem'],
    );
    const first = result.sleepSegments[0]!;
    assert.deepEqual(first, {
      start: { epochMs: Date.UTC(2025, 2, 10, 21, 47), offsetMinutes: 60, localDate: '2025-03-10' },
      end: { epochMs: Date.UTC(2025, 2, 11, 5, 52, 10), offsetMinutes: 60, localDate: '2025-03-11' },
      stage: 'in_bed',
      valueReceived: 'In Bed',
      hours: 8.0861111111111104,
      source: 'Anna\u2019s iPhone',
    });
    assert.equal(result.sleepSegments.at(-1)!.source, 'AutoSleep'); // the overlapping third-party segment is kept
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
      assert.deepEqual(result.received, receivedWith({}));
    }
  });

  test('data.metrics that is not an array is rejected at data.metrics; workouts still parse', () => {
    const result = parse({ data: { metrics: 5, workouts: [{ id: 'W1', name: 'Walk', start: '2024-05-01 08:00:00 +0200', end: '2024-05-01 08:30:00 +0200', duration: 1800 }] } });
    const rejection = only(result);
    assert.equal(rejection.reason, 'invalid_shape');
    assert.equal(rejection.path, 'data.metrics');
    assert.equal(result.workouts.length, 1);
  });

  test('every §1.5 array is read; unknown keys go to notStored with their item count', () => {
    const result = parse({ data: { symptoms: [], ecg: [], breathing: [1, 2], metrics: [], stateOfMind: null }, meta: 'x' });
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(
      [...result.notStored].sort((a, b) => a.type.localeCompare(b.type)),
      [
        { type: 'breathing', items: 2, reason: 'unknown_key' },
        { type: 'meta', items: 1, reason: 'unknown_key' },
      ],
    );
  });

  test('a §1.5 array that is not an array is rejected at its key; items that are not objects are invalid_shape', () => {
    const result = parse({ data: { medications: { displayText: 'x' }, symptoms: ['x', null] } });
    assert.deepEqual(
      result.rejections.map((r) => [r.type, r.path, r.reason]),
      [
        ['medications', 'data.medications', 'invalid_shape'],
        ['symptoms', 'data.symptoms[0]', 'invalid_shape'],
        ['symptoms', 'data.symptoms[1]', 'invalid_shape'],
      ],
    );
    assert.equal(result.received.symptoms, 2);
    assert.equal(result.received.medications, 0);
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
    const result = parse(metricsBody(...names.map(([name], i) => ({ name, units: 'u', data: [point(60 + i)] })))); // 60+: heart-rate names are range-checked
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
    assert.deepEqual(result.received, receivedWith({ quantity: 4, heartRate: 2, bloodPressure: 2, sleep: 2 }));
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

  test('sexual_activity: qty is the sum of the counts, each count kept in extra under its key', () => {
    const sexual = { date: '2024-05-01 08:00:00 +0200', Unspecified: 1, 'Protection Used': 2, 'Protection Not Used': 0 };
    const result = parse(metricsBody({ name: 'sexual_activity', units: 'count', data: [sexual, { ...sexual, Unspecified: 'one' }, { ...sexual, Unspecified: -1 }, { date: sexual.date }, { date: sexual.date, qty: 4 }] }));
    assert.deepEqual(
      result.quantity.map((r) => [r.qty, r.extra, r.source]),
      [
        [3, { Unspecified: 1, 'Protection Used': 2, 'Protection Not Used': 0 }, ''],
        [4, null, ''],
      ],
    );
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason]),
      [
        ['data.metrics[0].data[1]', 'Unspecified', 'not_a_number'],
        ['data.metrics[0].data[2]', 'Unspecified', 'out_of_range'],
        ['data.metrics[0].data[3]', 'qty', 'missing_value'],
      ],
    );
    assert.equal(result.received.quantity, 5);
  });

  test('a point of a quantity metric with no qty but other fields is invalid_shape', () => {
    const result = parse(metricsBody({ name: 'handwashing', units: 's', data: [{ date: '2024-05-01 08:00:00 +0200', value: 'Complete' }] }));
    assert.deepEqual([only(result).field, only(result).reason], ['qty', 'invalid_shape']);
  });

  test('heart_rate qty is an instantaneous sample: min = avg = max', () => {
    const result = parse(metricsBody({ name: 'heart_rate', units: 'count/min', data: [{ date: '2024-05-01 08:00:00 +0200', qty: 72, source: 'Watch' }] }));
    assert.deepEqual(result.heartRate.map((r) => [r.min, r.avg, r.max, r.source]), [[72, 72, 72, 'Watch']]);
  });

  test('blood pressure inside its limits and systolic above diastolic (Q16)', () => {
    const bp = (systolic: number, diastolic: number): Json => ({ date: '2024-05-01 08:00:00 +0200', systolic, diastolic });
    const result = parse(metricsBody({ name: 'blood_pressure', units: 'mmHg', data: [bp(0, 80), bp(120, -5), bp(80, 120), bp(90, 90), bp(260, 90), bp(120, 151), bp(50, 30), bp(250, 150)] }));
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason, r.message]),
      [
        ['data.metrics[0].data[0]', 'systolic', 'out_of_range', 'systolic is 0 mmHg, outside 50–250 mmHg'],
        ['data.metrics[0].data[1]', 'diastolic', 'out_of_range', 'diastolic is -5 mmHg, outside 30–150 mmHg'],
        ['data.metrics[0].data[2]', 'systolic', 'out_of_range', 'systolic is 80 mmHg, not above diastolic 120 mmHg (a data-entry error)'],
        ['data.metrics[0].data[3]', 'systolic', 'out_of_range', 'systolic is 90 mmHg, not above diastolic 90 mmHg (a data-entry error)'],
        ['data.metrics[0].data[4]', 'systolic', 'out_of_range', 'systolic is 260 mmHg, outside 50–250 mmHg'],
        ['data.metrics[0].data[5]', 'diastolic', 'out_of_range', 'diastolic is 151 mmHg, outside 30–150 mmHg'],
      ],
    );
    assert.deepEqual(result.bloodPressure.map((r) => [r.systolic, r.diastolic]), [
      [50, 30],
      [250, 150],
    ]);
  });

  test('negative quantities are out_of_range except for the allow-list (under_water_temperature)', () => {
    const result = parse(
      metricsBody(
        { name: 'step_count', units: 'count', data: [point(-1), point(-0), point(0)] },
        { name: 'under_water_temperature', units: 'degC', data: [point(-1.5)] },
        { name: 'body_temperature_delta', units: 'degC', data: [point(-0.4)] },
      ),
    );
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason, r.message]),
      [
        ['data.metrics[0].data[0]', 'qty', 'out_of_range', 'qty is -1 count, but step_count cannot be negative'],
        ['data.metrics[2].data[0]', 'qty', 'out_of_range', 'qty is -0.4 degC, but body_temperature_delta cannot be negative'],
      ],
    );
    assert.deepEqual(result.quantity.map((r) => [r.metric, r.qty]), [
      ['step_count', -0],
      ['step_count', 0],
      ['under_water_temperature', -1.5],
    ]);
  });

  test('sleep: Q11 segments with date null are segments; a point with neither shape is invalid', () => {
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
    assert.deepEqual(result.notStored, []);
    assert.deepEqual(result.sleepSegments.map((r) => [r.stage, r.valueReceived, r.hours]), [['in_bed', 'InBed', 7]]);
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

  test('Q18: a v1 workout (no id) is stored with a derived id beside its v2 neighbour', () => {
    const v1 = { name: 'Walking', start: '2024-05-01 07:00:00 +0200', end: '2024-05-01 07:20:00 +0200', activeEnergy: { qty: 50, units: 'kcal' }, elevation: { ascent: 3, descent: 2, units: 'm' } };
    const result = parse({ data: { workouts: [v1, base, v1] } });
    assert.deepEqual(result.notStored, []);
    assert.deepEqual(result.workouts.map((w) => w.formatVersion), [1, 2, 1]);
    assert.equal(result.workouts[0]!.workoutId, result.workouts[2]!.workoutId);
    assert.deepEqual(result.workouts[0]!.summaries, { activeEnergy: { qty: 50, units: 'kcal' }, elevation: { ascent: 3, descent: 2, units: 'm' } });
    assert.deepEqual(result.workouts[0]!.activeEnergy, { qty: 50, units: 'kcal' });
    assert.equal(result.workouts[0]!.durationSeconds, null);
    assert.equal(result.received.workouts, 3);
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

/* ------------------------------------------------------------------------------------------ */
/* Validation ranges (validate.ts) and the data types added with them. */

const hrPoint = (minute: number, min: number, avg = 62, max = 75): Json => {
  const d = new Date(Date.UTC(2025, 2, 1) + minute * 60_000).toISOString();
  return { date: `${d.slice(0, 10)} ${d.slice(11, 19)} +0000`, Min: min, Avg: avg, Max: max, source: 'Watch' };
};

describe('validation ranges', () => {
  test('1,000 valid heart-rate points and one with Min 12: 1,000 rows, one rejection with index, field and range', () => {
    const points = Array.from({ length: 1001 }, (_, i) => hrPoint(i, i === 537 ? 12 : 55));
    const result = parse(metricsBody({ name: 'heart_rate', units: 'count/min', data: points }));
    assert.equal(result.heartRate.length, 1000);
    assert.deepEqual(result.rejections, [
      { type: 'metrics', path: 'data.metrics[0].data[537]', name: 'heart_rate', field: 'Min', reason: 'out_of_range', message: 'Min is 12 bpm, outside 15–300 bpm' },
    ]);
    assert.equal(result.received.heartRate, 1001);
  });

  test('narrower limits reject what the defaults accept', () => {
    const body = {
      data: {
        metrics: [
          { name: 'heart_rate', units: 'count/min', data: [hrPoint(0, 40, 60, 190)] },
          { name: 'blood_pressure', units: 'mmHg', data: [{ date: '2025-03-01 08:00:00 +0000', systolic: 180, diastolic: 95 }] },
          { name: 'blood_oxygen_saturation', units: '%', data: [point(85)] },
          { name: 'body_temperature', units: 'degC', data: [point(39.5)] },
        ],
        workouts: [{ id: 'W', name: 'Run', start: '2025-03-01 08:00:00 +0000', end: '2025-03-01 09:00:00 +0000', route: [{ latitude: 60, longitude: 10, timestamp: '2025-03-01 08:00:00 +0000' }] }],
      },
    };
    assert.deepEqual(parse(body).rejections, []);
    const limits = {
      ...defaultLimits,
      heartRate: { min: 30, max: 180 },
      systolic: { min: 70, max: 160 },
      bloodOxygen: { min: 90, max: 100 },
      bodyTemperatureC: { min: 34, max: 39 },
      latitude: { min: -50, max: 50 },
    };
    const narrowed = parseHaePayload(body, { now: NOW, limits });
    assert.deepEqual(
      narrowed.rejections.map((r) => [r.path, r.field, r.message]),
      [
        ['data.metrics[0].data[0]', 'Max', 'Max is 190 bpm, outside 30–180 bpm'],
        ['data.metrics[1].data[0]', 'systolic', 'systolic is 180 mmHg, outside 70–160 mmHg'],
        ['data.metrics[2].data[0]', 'qty', 'qty is 85%, outside 90–100%'],
        ['data.metrics[3].data[0]', 'qty', 'qty is 39.5 °C, outside 34–39 °C'],
        ['data.workouts[0].route[0]', 'latitude', 'latitude is 60°, outside -50° to 50°'],
      ],
    );
    assert.equal(narrowed.workouts.length, 1);
  });

  test('heart-rate quantity metrics (resting, walking average under any alias) are range-checked', () => {
    const result = parse(
      metricsBody(
        { name: 'resting_heart_rate', units: 'count/min', data: [point(56), point(301)] },
        { name: 'walking_heart_rate', units: 'count/min', data: [point(14)] },
        { name: 'heart_rate_variability', units: 'ms', data: [point(400)] },
      ),
    );
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.message]),
      [
        ['data.metrics[0].data[1]', 'qty is 301 bpm, outside 15–300 bpm'],
        ['data.metrics[1].data[0]', 'qty is 14 bpm, outside 15–300 bpm'],
      ],
    );
    assert.deepEqual(result.quantity.map((r) => r.qty), [56, 400]);
  });

  test('blood oxygen: a 0–1 fraction is stored as percent; 0–100 stays; above 100 is refused (Q13, Q16)', () => {
    const result = parse(metricsBody({ name: 'blood_oxygen_saturation', units: '%', data: [point(0.973), point(97.78), point(1), point(100.4), point(100)] }));
    assert.deepEqual(result.quantity.map((r) => r.qty), [97.3, 97.78, 100, 100]);
    assert.deepEqual(result.rejections.map((r) => [r.path, r.message]), [['data.metrics[0].data[3]', 'qty is 100.4%, outside 0–100%']]);
  });

  test('body temperatures: degF converted for the check only; stored as received', () => {
    const result = parse(
      metricsBody(
        { name: 'body_temperature', units: 'degF', data: [point(98.6), point(120)] },
        { name: 'basal_body_temperature', units: 'degC', data: [point(36.4), point(98.6)] },
        { name: 'apple_sleeping_wrist_temperature', units: 'degF', data: [point(96.87, { end: '2024-05-01 09:00:00 +0200' }), point(50)] },
      ),
    );
    assert.deepEqual(result.quantity.map((r) => [r.metric, r.qty, r.units]), [
      ['body_temperature', 98.6, 'degF'],
      ['basal_body_temperature', 36.4, 'degC'],
      ['apple_sleeping_wrist_temperature', 96.87, 'degF'],
    ]);
    assert.deepEqual(result.quantity[2]!.extra, { end: '2024-05-01 09:00:00 +0200' });
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.message]),
      [
        ['data.metrics[0].data[1]', 'qty is 120 degF (48.9 °C), outside 25–45 °C'],
        ['data.metrics[1].data[1]', 'qty is 98.6 °C, outside 25–45 °C'],
        ['data.metrics[2].data[1]', 'qty is 50 degF (10 °C), outside 25–45 °C'],
      ],
    );
  });

  test('aggregated sleep: stages must fit in bed within the tolerance, except third-party entries and inBed 0', () => {
    const entry = (extra: Json): Json => ({ date: '2024-05-02 06:00:00 +0200', source: 'Watch', asleep: 0, ...extra });
    const result = parse(
      metricsBody({
        name: 'sleep_analysis',
        units: 'hr',
        data: [
          entry({ inBed: 6.85, core: 5, deep: 1.5, rem: 1.5, awake: 0.67 }), // 8.67 vs 6.85: the real maximum, kept
          entry({ inBed: 6, core: 6, deep: 2, rem: 1, awake: 0.5 }), // 9.5 > 6 + 3: refused
          entry({ inBed: 0, core: 6, deep: 2, rem: 1, awake: 0.5 }), // no inBed: nothing to compare
          entry({ inBed: 2, asleep: 7, core: 0, deep: 0, rem: 0, awake: 0 }), // Q8 third party
          entry({ inBed: 8, core: -1 }), // negative hours
        ],
      }),
    );
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason, r.message]),
      [
        ['data.metrics[0].data[1]', 'inBed', 'out_of_range', 'core + deep + rem + awake is 9.5 hr, more than inBed 6 hr plus the 3 hr tolerance'],
        ['data.metrics[0].data[4]', 'core', 'out_of_range', 'core is -1 hr, but cannot be negative'],
      ],
    );
    assert.equal(result.sleep.length, 3);
  });

  test('sleep segments: end after start, stage names case- and space-insensitive, unknown stage refused', () => {
    const seg = (value: unknown, startDate = '2024-05-01 23:00:00 +0200', endDate = '2024-05-02 01:00:00 +0200'): Json => ({ startDate, endDate, qty: 2, value, source: 'Watch' });
    const result = parse(metricsBody({ name: 'sleep_analysis', units: 'hr', data: [seg('in bed'), seg('REM'), seg('asleepCore'), seg('Nap'), seg(5), seg('Core', '2024-05-02 01:00:00 +0200', '2024-05-02 01:00:00 +0200'), seg(undefined)] }));
    assert.deepEqual(result.sleepSegments.map((r) => [r.stage, r.valueReceived]), [
      ['in_bed', 'in bed'],
      ['rem', 'REM'],
      ['core', 'asleepCore'],
    ]);
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason]),
      [
        ['data.metrics[0].data[3]', 'value', 'invalid_shape'],
        ['data.metrics[0].data[4]', 'value', 'invalid_shape'],
        ['data.metrics[0].data[5]', 'endDate', 'out_of_range'],
        ['data.metrics[0].data[6]', 'value', 'missing_value'],
      ],
    );
    assert.equal(result.received.sleepSegments, 7);
  });
});

describe('workout series, route and checks', () => {
  const base = { id: 'W-1', name: 'Outdoor Walk', start: '2024-05-01 08:00:00 +0200', end: '2024-05-01 08:30:00 +0200', duration: 1800 };
  const at = (minute: number): string => `2024-05-01 08:${String(minute).padStart(2, '0')}:00 +0200`;

  test('hae-small.json: heart-rate series, recovery and per-minute series; route with every field', () => {
    const result = parse(readJson(join(fixturesDir, 'composed', 'hae-small.json')));
    const bySeries = new Map<string, number>();
    for (const row of result.workoutSeries) bySeries.set(row.series, (bySeries.get(row.series) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(bySeries), { heartRateData: 3, heartRateRecovery: 2, stepCount: 2, activeEnergy: 2, walkingAndRunningDistance: 2 });
    const first = result.workoutSeries[0]!;
    assert.deepEqual(first, {
      workoutId: '5F1C2E3A-8B7D-4E6F-9A0B-1C2D3E4F5A6B',
      series: 'heartRateData',
      time: { epochMs: Date.UTC(2025, 2, 11, 17, 2), offsetMinutes: 60, localDate: '2025-03-11' },
      qty: null,
      min: 98,
      avg: 112.5,
      max: 124,
      units: 'bpm',
      source: 'Anna\u2019s Apple Watch',
    });
    assert.equal(result.workoutRoute.length, 4);
    assert.deepEqual(result.workoutRoute[0], {
      workoutId: '5F1C2E3A-8B7D-4E6F-9A0B-1C2D3E4F5A6B',
      time: { epochMs: Date.UTC(2025, 2, 11, 17, 2, 14), offsetMinutes: 60, localDate: '2025-03-11' },
      latitude: 52.520184999999998,
      longitude: 13.404953999999999,
      altitude: 41.283,
      course: 87.539062999999999,
      courseAccuracy: 12.8,
      horizontalAccuracy: 4.6127,
      verticalAccuracy: 3.1,
      speed: 2.6093,
      speedAccuracy: 0.48,
    });
    assert.equal(result.workouts[0]!.formatVersion, 2);
  });

  test('workout summary heart rates out of range reject the workout with the field named', () => {
    const result = parse({
      data: {
        workouts: [
          { ...base, heartRate: { min: { qty: 10, units: 'bpm' }, avg: { qty: 100, units: 'bpm' }, max: { qty: 150, units: 'bpm' } }, heartRateData: [{ date: at(1), Min: 90, Avg: 95, Max: 99 }] },
          { ...base, id: 'W-2', maxHeartRate: { qty: 320, units: 'bpm' } },
          { name: 'Walking', start: at(0), end: at(20), avgHeartRate: { qty: 400, units: 'bpm' } },
          { ...base, id: 'W-4', end: base.start },
          { ...base, id: 'W-5' },
        ],
      },
    });
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.name, r.field, r.reason, r.message]),
      [
        ['data.workouts[0]', 'Outdoor Walk', 'heartRate.min.qty', 'out_of_range', 'heartRate.min.qty is 10 bpm, outside 15–300 bpm'],
        ['data.workouts[1]', 'Outdoor Walk', 'maxHeartRate.qty', 'out_of_range', 'maxHeartRate.qty is 320 bpm, outside 15–300 bpm'],
        ['data.workouts[2]', 'Walking', 'avgHeartRate.qty', 'out_of_range', 'avgHeartRate.qty is 400 bpm, outside 15–300 bpm'],
        ['data.workouts[3]', 'Outdoor Walk', 'end', 'out_of_range', 'end (2024-05-01T06:00:00.000Z) is not after start (2024-05-01T06:00:00.000Z)'],
      ],
    );
    assert.deepEqual(result.workouts.map((w) => w.workoutId), ['W-5']);
    // The series of a rejected workout are neither rows nor rejections.
    assert.equal(result.received.workoutSeries, 0);
  });

  test('a heart-rate series point out of range rejects the point only; other series are not range-checked', () => {
    const result = parse({
      data: {
        workouts: [
          {
            ...base,
            heartRateData: [{ date: at(1), Min: 90, Avg: 95, Max: 99 }, { date: at(2), Min: 90, Avg: 95, Max: 350 }, { date: at(3), qty: 10, units: 'bpm' }],
            cyclingPower: [{ date: at(1), qty: 900, units: 'W' }, { date: at(2), qty: '5', units: 'W' }, { date: 'soon', qty: 5 }],
            laps: [{ index: 1 }],
            notes: [],
          },
        ],
      },
    });
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason]),
      [
        ['data.workouts[0].heartRateData[1]', 'Max', 'out_of_range'],
        ['data.workouts[0].heartRateData[2]', 'qty', 'out_of_range'],
        ['data.workouts[0].cyclingPower[1]', 'qty', 'not_a_number'],
        ['data.workouts[0].cyclingPower[2]', 'date', 'invalid_date'],
      ],
    );
    assert.deepEqual(result.workoutSeries.map((r) => [r.series, r.qty ?? r.max]), [
      ['heartRateData', 99],
      ['cyclingPower', 900],
    ]);
    assert.deepEqual(result.notStored, [{ type: 'workouts.laps', items: 1, reason: 'unsupported_type' }]);
    assert.equal(result.workouts.length, 1);
    assert.equal(result.received.workoutSeries, 6);
  });

  test('route: v2 and v1 points sniffed per point, -1 is null, bounds checked, bad points alone rejected', () => {
    const v2 = { latitude: 48.1, longitude: 11.5, altitude: -3, course: -1, courseAccuracy: -1, horizontalAccuracy: -1, verticalAccuracy: 3, timestamp: at(1), speed: -1, speedAccuracy: -1 };
    const result = parse({
      data: {
        workouts: [{ ...base, route: [v2, { lat: 52.5, lon: 13.4, altitude: 34, timestamp: at(2) }, { ...v2, latitude: 91 }, { lat: 1, lon: 181, timestamp: at(3) }, { x: 1 }, { ...v2, timestamp: null }] }, { ...base, id: 'W-2', route: 'none' }],
      },
    });
    assert.deepEqual(result.workoutRoute.map((r) => [r.latitude, r.longitude, r.altitude, r.course, r.courseAccuracy, r.horizontalAccuracy, r.verticalAccuracy, r.speed, r.speedAccuracy]), [
      [48.1, 11.5, -3, null, null, null, 3, null, null],
      [52.5, 13.4, 34, null, null, null, null, null, null],
    ]);
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.field, r.reason, r.message]),
      [
        ['data.workouts[0].route[2]', 'latitude', 'out_of_range', 'latitude is 91°, outside -90° to 90°'],
        ['data.workouts[0].route[3]', 'lon', 'out_of_range', 'lon is 181°, outside -180° to 180°'],
        ['data.workouts[0].route[4]', undefined, 'invalid_shape', 'A route point has neither latitude/longitude nor lat/lon'],
        ['data.workouts[0].route[5]', 'timestamp', 'invalid_date', 'timestamp is missing'],
        ['data.workouts[1].route', 'route', 'invalid_shape', 'route must be an array but is the string "none"'],
      ],
    );
    assert.equal(result.workouts.length, 2);
    assert.equal(result.received.workoutRoute, 6);
  });
});

describe('the §1.5 arrays', () => {
  test('allTypesPayload: one row per documented item of every data type, nothing rejected', () => {
    const result = parse(allTypesPayload());
    assert.deepEqual(result.rejections, []);
    assert.deepEqual(result.notStored, []);
    assert.deepEqual(
      result.received,
      receivedWith({ quantity: 5, sleepSegments: 3, workouts: 2, workoutSeries: 4, workoutRoute: 3, stateOfMind: 1, medications: 1, symptoms: 1, cycleTracking: 1, ecg: 1, heartRateNotifications: 1 }),
    );
    assert.deepEqual(result.stateOfMind[0], {
      entryId: 'som-1',
      start: { epochMs: Date.UTC(2025, 4, 5, 18), offsetMinutes: 120, localDate: '2025-05-05' },
      end: { epochMs: Date.UTC(2025, 4, 5, 18), offsetMinutes: 120, localDate: '2025-05-05' },
      kind: 'dailyMood',
      labels: ['calm', 'content'],
      associations: ['family'],
      valence: 0.45,
      valenceClassification: 5,
      metadata: {},
    });
    assert.deepEqual(result.medications[0], {
      displayText: 'Ibuprofen 200 mg',
      nickname: null,
      start: { epochMs: Date.UTC(2025, 4, 5, 6), offsetMinutes: 120, localDate: '2025-05-05' },
      end: { epochMs: Date.UTC(2025, 4, 5, 6), offsetMinutes: 120, localDate: '2025-05-05' },
      scheduledDate: null,
      form: 'Tablet',
      status: 'Taken',
      isArchived: false,
      dosage: 1,
      codings: [{ code: '5640', system: 'RxNorm' }],
    });
    assert.deepEqual(
      result.symptoms.map((r) => [r.name, r.severity, r.userEntered, r.source, r.start.epochMs === r.end?.epochMs]),
      [['Headache', 'Mild', true, 'Health', true]],
    );
    assert.deepEqual(result.cycleTracking.map((r) => [r.name, r.value, r.isCycleStart, r.source, r.end?.localDate]), [['Menstrual Flow', 'Medium', true, '', '2025-05-06']]);
    const ecg = result.ecg[0]!;
    assert.deepEqual([ecg.voltages, ecg.voltageUnits, ecg.samplingFrequencyHz, ecg.classification, ecg.numberOfVoltageMeasurements], [[0.000012, -0.0000305, 0.000201], 'V', 512, 'Sinus Rhythm', 3]);
    assert.deepEqual(result.heartRateNotifications[0]!.heartRate, [{ hr: 125, units: 'bpm', start: '2025-05-07T12:00:00.000Z', end: '2025-05-07T12:05:00.000Z', interval: { duration: 300, units: 's' } }]);
    assert.deepEqual(result.heartRateNotifications[0]!.heartRateVariation, [{ hrv: 31, units: 'ms', start: '2025-05-07T12:00:00.000Z', end: '2025-05-07T12:05:00.000Z', interval: { duration: 300, units: 's' } }]);
    assert.equal(result.heartRateNotifications[0]!.threshold, 120);
  });

  test('stateOfMind: ISO-8601 Z dates, valence outside −1…1 refused, missing id refused', () => {
    const mood = { id: 'm', start: '2025-05-05T18:00:00Z', end: '2025-05-05T18:00:00Z', kind: 'momentaryEmotion', labels: ['happy'], associations: [], valence: -0.2, valenceClassification: 'slightlyUnpleasant' };
    const result = parse({ data: { stateOfMind: [mood, { ...mood, valence: 1.5 }, { ...mood, id: undefined }, { ...mood, labels: 'happy' }, { ...mood, end: undefined, metadata: null }] } });
    assert.deepEqual(
      result.rejections.map((r) => [r.type, r.path, r.field, r.reason]),
      [
        ['stateOfMind', 'data.stateOfMind[1]', 'valence', 'out_of_range'],
        ['stateOfMind', 'data.stateOfMind[2]', 'id', 'missing_value'],
        ['stateOfMind', 'data.stateOfMind[3]', 'labels', 'invalid_shape'],
      ],
    );
    assert.deepEqual(result.stateOfMind.map((r) => [r.start.offsetMinutes, r.end?.epochMs ?? null, r.valence, r.valenceClassification, r.metadata]), [
      [0, Date.UTC(2025, 4, 5, 18), -0.2, 'slightlyUnpleasant', null],
      [0, null, -0.2, 'slightlyUnpleasant', null],
    ]);
  });

  test('ecg: a non-numeric voltage rejects the reading; a reading without measurements has none', () => {
    const reading = allTypesPayload() as { data: { ecg: Json[] } };
    const good = reading.data.ecg[0]!;
    const measurements = good['voltageMeasurements'] as Json[];
    const bad = { ...good, voltageMeasurements: [measurements[0], { ...measurements[1], voltage: 'x' }] };
    const result = parse({ data: { ecg: [bad, { start: '2025-05-06 10:00:00 +0200' }, good] } });
    assert.deepEqual(result.rejections.map((r) => [r.path, r.field, r.reason]), [['data.ecg[0]', 'voltageMeasurements[1].voltage', 'not_a_number']]);
    assert.deepEqual(result.ecg.map((r) => r.voltages.length), [0, 3]);
  });

  test('symptoms, medications, cycle tracking, notifications: end before start refused; lenient optional fields', () => {
    const result = parse({
      data: {
        symptoms: [{ name: 'Cough', start: '2025-05-05 07:00:00 +0200', end: '2025-05-05 06:00:00 +0200' }, { name: 'Cough', start: '2025-05-05 07:00:00 +0200', severity: 2 }],
        medications: [{ start: '2025-05-05 08:00:00 +0200' }, { displayText: 'Vitamin D', start: '2025-05-05 08:00:00 +0200', dosage: '1000 IU' }],
        cycleTracking: [{ name: 'Basal', start: '2025-05-06 00:00:00 +0200', value: 1 }, { name: 'Flow', start: '2025-05-06 00:00:00 +0200', value: { a: 1 } }],
        heartRateNotifications: [{ start: '2025-05-07 14:00:00 +0200', heartRateVariation: [{ hrv: 30, units: 'ms', timestamp: [{ start: '2025-05-07 14:00:00 +0200' }] }] }, { start: '2025-05-07 14:00:00 +0200', heartRate: [{ hr: 'fast' }] }],
      },
    });
    assert.deepEqual(
      result.rejections.map((r) => [r.path, r.name, r.field, r.reason]),
      [
        ['data.symptoms[0]', 'Cough', 'end', 'out_of_range'],
        ['data.medications[0]', undefined, 'displayText', 'missing_value'],
        ['data.cycleTracking[1]', 'Flow', 'value', 'invalid_shape'],
        ['data.heartRateNotifications[1]', undefined, 'heartRate[0].hr', 'not_a_number'],
      ],
    );
    assert.deepEqual(result.symptoms.map((r) => [r.severity, r.end, r.source]), [['2', null, '']]);
    assert.deepEqual(result.medications.map((r) => r.dosage), ['1000 IU']);
    assert.deepEqual(result.cycleTracking.map((r) => r.value), [1]);
    // The wiki's `timestamp: [ {…} ]` typo is read as its one element.
    assert.deepEqual(result.heartRateNotifications[0]!.heartRateVariation, [{ hrv: 30, units: 'ms', start: '2025-05-07T12:00:00.000Z', end: null, interval: null }]);
    assert.equal(result.heartRateNotifications[0]!.threshold, null);
  });
});

describe('text PostgreSQL cannot store', () => {
  test('a U+0000 anywhere in an item rejects that item alone, naming the field', () => {
    const result = parse({
      data: {
        metrics: [
          {
            name: 'step_count',
            units: 'count',
            data: [
              { date: '2025-01-01 10:00:00 +0000', qty: 1, source: 'ok' },
              { date: '2025-01-01 11:00:00 +0000', qty: 2, source: 'bad\u0000source' },
            ],
          },
        ],
        workouts: [{ id: 'w1', name: 'Run', start: '2025-01-01 10:00:00 +0000', end: '2025-01-01 11:00:00 +0000', metadata: { 'k\u0000': 1 } }],
      },
    });
    assert.equal(result.quantity.length, 1);
    assert.equal(result.workouts.length, 0);
    const reasons = result.rejections.map((r) => [r.path, r.reason, r.field]);
    assert.deepEqual(reasons, [
      ['data.metrics[0].data[1]', 'unstorable_text', 'source'],
      ['data.workouts[0]', 'unstorable_text', 'metadata'],
    ]);
  });

  test('a U+0000 in a name or an unknown key never reaches the rejections and not-stored lists', () => {
    const result = parse({
      'odd\u0000key': [1],
      data: {
        metrics: [{ name: 'step\u0000count', units: 'count', data: [{ date: '2025-01-01 10:00:00 +0000', qty: 1 }] }],
        symptoms: [{ name: 'Head\u0000ache', start: '2025-01-01 10:00:00 +0000', end: '2025-01-01 10:00:00 +0000' }],
        workouts: [{ id: 'w1', name: 'R\u0000un', start: '2025-01-01 10:00:00 +0000', end: '2025-01-01 11:00:00 +0000' }],
      },
    });
    assert.deepEqual(result.rejections.map((r) => [r.reason, r.name]), [
      ['unstorable_text', 'step\\u0000count'],
      ['unstorable_text', 'Head\\u0000ache'],
      ['unstorable_text', 'R\\u0000un'],
    ]);
    assert.deepEqual(result.notStored, [{ type: 'odd\\u0000key', items: 1, reason: 'unknown_key' }]);
    const texts = [...result.rejections.flatMap((r) => Object.values(r)), ...result.notStored.map((n) => n.type)];
    assert.ok(texts.every((v) => typeof v !== 'string' || !v.includes('\u0000')));
  });

  test('a text field over 1,024 bytes rejects that item alone; long metadata is kept', () => {
    const atLimit = 'é'.repeat(512); // 1,024 bytes
    const result = parse({
      data: {
        metrics: [
          {
            name: 'step_count',
            units: 'count',
            data: [
              { date: '2025-01-01 10:00:00 +0000', qty: 1, source: atLimit },
              { date: '2025-01-01 11:00:00 +0000', qty: 2, source: `${atLimit}x` },
            ],
          },
        ],
        symptoms: [{ name: '漢'.repeat(342), start: '2025-01-01 10:00:00 +0000', end: '2025-01-01 10:00:00 +0000' }],
        workouts: [{ id: 'w1', name: 'Run', start: '2025-01-01 10:00:00 +0000', end: '2025-01-01 11:00:00 +0000', metadata: { note: 'x'.repeat(5_000) } }],
      },
    });
    assert.deepEqual(result.quantity.map((r) => r.source), [atLimit]);
    assert.equal(result.workouts.length, 1);
    assert.deepEqual(result.rejections.map((r) => [r.path, r.reason, r.field]), [
      ['data.metrics[0].data[1]', 'text_too_long', 'source'],
      ['data.symptoms[0]', 'text_too_long', 'name'],
    ]);
  });
});

describe('releasing the input while it is read', () => {
  const input = () => ({
    data: {
      metrics: [
        { name: 'step_count', units: 'count', data: [1, 2, 3].map((m) => ({ date: `2025-03-01 10:0${m}:00 +0100`, qty: m, source: 'Watch' })) },
        { name: 'not a metric object' },
        { name: 'heart_rate', units: 'count/min', data: [{ date: '2025-03-01 10:00:00 +0100', Min: 50, Avg: 60, Max: 70, source: 'Watch' }] },
        'no object at all',
      ],
    },
  });

  test('each metric is detached once read, and the caller is told how many points, metric by metric', () => {
    const json = input();
    const seen: Array<{ points: number; detached: unknown[] }> = [];
    const parsed = parseHaePayload(json, {
      releaseInput: true,
      onInputReleased: (points) => seen.push({ points, detached: json.data.metrics.map((m) => (typeof m === 'object' ? (m as { data?: unknown }).data : m)) }),
    });
    assert.equal(parsed.quantity.length, 3);
    assert.equal(parsed.heartRate.length, 1);
    // Told after each metric with points, when that metric's points are already detached (null).
    assert.deepEqual(
      seen.map((s) => s.points),
      [3, 1],
    );
    assert.equal(seen[0]!.detached[0], null);
    assert.ok(Array.isArray(seen[0]!.detached[2]), 'the next metric is not detached before it is read');
    assert.equal(seen[1]!.detached[2], null);
  });

  test('without releaseInput nothing is detached and nobody is told', () => {
    const json = input();
    const seen: number[] = [];
    const parsed = parseHaePayload(json, { onInputReleased: (points) => seen.push(points) });
    assert.equal(parsed.quantity.length, 3);
    assert.deepEqual(seen, []);
    assert.equal(json.data.metrics[0] && typeof json.data.metrics[0] === 'object' ? (json.data.metrics[0] as { data: unknown[] }).data.length : -1, 3);
  });
});

test('the envelope guard accepts exactly what its schema accepts', () => {
  const bodies: unknown[] = [
    { data: {} },
    { data: { metrics: [] }, extra: 1 },
    { data: Object.create(null) as object },
    { data: [] },
    { data: null },
    { data: 'metrics' },
    { metrics: [] },
    {},
    [],
    [{ data: {} }],
    null,
    'data',
    7,
  ];
  for (const body of bodies) assert.equal(isValidEnvelope(body), envelopeSchema.safeParse(body).success, JSON.stringify(body));
});

test('the metric object guard accepts exactly what its schema accepts unchanged', () => {
  const data = [{ date: '2025-01-01 00:00:00 +0000', qty: 1 }];
  const objects: Array<Record<string, unknown>> = [
    { name: 'step_count', units: 'count', data },
    { name: 'step_count', data },
    { name: 'step_count', units: null, data: null },
    { name: 'step_count', units: 'count' },
    { name: 'step_count', units: 'count', data, extra: { a: 1 } },
    { name: '', units: '', data: [] },
    { name: 7, units: 'count', data },
    { units: 'count', data },
    { name: 'step_count', units: 5, data },
    { name: 'step_count', units: 'count', data: {} },
    { name: 'step_count', units: 'count', data: 'points' },
    { name: null, data },
  ];
  for (const object of objects) {
    const parsed = metricObjectSchema.safeParse(object);
    assert.equal(isValidMetricObject(object), parsed.success, JSON.stringify(object));
    if (parsed.success) assert.deepEqual(parsed.data, object);
  }
});
