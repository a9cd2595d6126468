import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { defaultLimits, type ValidationLimits } from '../src/hae/limits.js';
import type { Instant } from '../src/hae/types.js';
import { ConstraintViolationError, PayloadProcessor } from '../src/ingest/processor.js';
import { createLogger } from '../src/log.js';
import { migrationsDir } from '../src/paths.js';
import { loadMigrations, migrate } from '../src/store/migrator.js';
import { monthOf, PartitionManager } from '../src/store/partitions.js';
import { enablePostgisIfAvailable } from '../src/store/postgis.js';
import { routeBoxQuery, routePointsInBox, routeQueryPlan, type RouteBox } from '../src/store/route-queries.js';
import {
  bloodPressureTable,
  cycleTrackingTable,
  ecgTable,
  heartRateNotificationTable,
  heartRateTable,
  medicationTable,
  quantityTable,
  sleepSegmentTable,
  sleepTable,
  stateOfMindTable,
  symptomTable,
  workoutRouteTable,
  workoutSeriesTable,
  workoutTable,
  type SampleTable,
} from '../src/store/sample-tables.js';
import { writeSamples } from '../src/store/sample-writer.js';
import { adminUrl, createTestDatabase, type TestDatabase } from './helpers/database.js';

const log = createLogger('silent');
let db: TestDatabase;
let pool: pg.Pool;
let partitions: PartitionManager;
let applied: number[] = [];

// Decided before the tests are declared, so that the route test's name says which path it covers.
const postgisOnServer = await (async () => {
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    return (await c.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'`)).rowCount === 1;
  } finally {
    await c.end();
  }
})();

before(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  applied = (await migrate(pool, await loadMigrations(migrationsDir), log)).applied;
  partitions = new PartitionManager(pool, log);
});
after(async () => {
  await pool?.end();
  await db?.drop();
});

/** An Instant from an ISO string with an explicit offset, as the parser would make it. */
function at(iso: string): Instant {
  const m = /([+-])(\d\d):(\d\d)$/.exec(iso);
  assert.ok(m, iso);
  const offset = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
  return { epochMs: Date.parse(iso), offsetMinutes: offset, localDate: iso.slice(0, 10) };
}

async function write<R>(table: SampleTable<R>, rows: readonly R[], userId: string, chunkRows = 20_000) {
  const months = new Set(rows.map((r) => monthOf(table.time(r))));
  await partitions.ensureMonths(table.table, months);
  const client = await pool.connect();
  try {
    return await writeSamples(client, table, rows, { userId, ingestionId: '1', chunkRows });
  } finally {
    client.release();
  }
}

async function countRows(table: string, where = 'true', params: unknown[] = []): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, params);
  return rows[0]!.n;
}

test('every migration applies on a fresh database', async () => {
  const onDisk = (await loadMigrations(migrationsDir)).map((m) => m.version);
  assert.deepEqual(onDisk.slice(0, 3), [1, 2, 3]);
  assert.deepEqual(applied, onDisk);
  const { rows } = await pool.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  assert.deepEqual(rows.map((r) => r.version), onDisk);
  for (const table of ['sleep_segments', 'workout_series', 'workout_route_points', 'state_of_mind', 'medications', 'symptoms', 'cycle_tracking', 'ecg_readings', 'heart_rate_notifications']) {
    const { rows: r } = await pool.query(`SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass($1)`, [table]);
    assert.equal(r[0]?.relkind, 'p', `${table} is a partitioned table`);
    const brin = await pool.query(`SELECT 1 FROM pg_indexes WHERE tablename = $1 AND indexdef ILIKE '%USING brin (start_time)%'`, [table]);
    assert.equal(brin.rowCount, 1, `${table} has BRIN on start_time`);
  }
});

test('every data type has its snake_case label', () => {
  const labels = [
    quantityTable, heartRateTable, bloodPressureTable, sleepTable, sleepSegmentTable, workoutTable, workoutSeriesTable, workoutRouteTable,
    stateOfMindTable, medicationTable, symptomTable, cycleTrackingTable, ecgTable, heartRateNotificationTable,
  ].map((t) => t.label);
  assert.deepEqual(labels, [
    'quantity', 'heart_rate', 'blood_pressure', 'sleep', 'sleep_segments', 'workouts', 'workout_series', 'workout_route',
    'state_of_mind', 'medications', 'symptoms', 'cycle_tracking', 'ecg', 'heart_rate_notifications',
  ]);
});

interface Case<R> {
  table: SampleTable<R>;
  rows: R[];
  /** The first row with a value (not its natural key) changed. */
  change: (row: R) => R;
}

const t0 = '2025-05-03T09:00:00+02:00';
const t1 = '2025-05-03T09:00:30+02:00';
const t2 = '2025-06-01T01:30:00+02:00'; // another month: two partitions per table

/** A case of one table; NoInfer: the rows are checked against the table's row type. */
function caseOf<R>(table: SampleTable<R>, rows: NoInfer<R>[], change: (row: NoInfer<R>) => NoInfer<R>): Case<unknown> {
  return { table, rows, change } as unknown as Case<unknown>;
}

const cases: Array<Case<unknown>> = [
  caseOf(
    sleepSegmentTable,
    [
      { start: at(t0), end: at(t1), stage: 'in_bed', valueReceived: 'In Bed', hours: 0.01, source: 'iPhone' },
      { start: at(t0), end: at(t1), stage: 'core', valueReceived: 'Core', hours: 0.01, source: 'iPhone' },
      { start: at(t2), end: at('2025-06-01T02:00:00+02:00'), stage: 'deep', valueReceived: 'Deep', hours: 0.5, source: 'Watch' },
    ],
    (r) => ({ ...r, hours: 9 }),
  ),
  caseOf(
    workoutSeriesTable,
    [
      { workoutId: 'W1', series: 'heartRateData', time: at(t0), qty: null, min: 95, avg: 120, max: 130, units: 'bpm', source: 'Watch' },
      { workoutId: 'W1', series: 'activeEnergy', time: at(t0), qty: 4.2, min: null, avg: null, max: null, units: 'kcal', source: '' },
      { workoutId: 'W1', series: 'heartRateData', time: at(t2), qty: 101, min: null, avg: null, max: null, units: 'bpm', source: '' },
    ],
    (r) => ({ ...r, avg: 121 }),
  ),
  caseOf(
    workoutRouteTable,
    [
      { workoutId: 'W1', time: at(t0), latitude: 52.52, longitude: 13.405, altitude: 34, course: -1, courseAccuracy: -1, horizontalAccuracy: 4, verticalAccuracy: 3, speed: 6.2, speedAccuracy: 0.5 },
      { workoutId: 'W1', time: at(t1), latitude: 52.521, longitude: 13.406, altitude: null, course: null, courseAccuracy: null, horizontalAccuracy: null, verticalAccuracy: null, speed: null, speedAccuracy: null },
      { workoutId: 'W2', time: at(t2), latitude: -33.86, longitude: 151.21, altitude: 5, course: 90, courseAccuracy: 2, horizontalAccuracy: 5, verticalAccuracy: 4, speed: 3, speedAccuracy: 0.4 },
    ],
    (r) => ({ ...r, altitude: 35 }),
  ),
  caseOf(
    stateOfMindTable,
    [
      { entryId: 'som-1', start: at(t0), end: at(t0), kind: 'dailyMood', labels: ['calm', 'content'], associations: ['family'], valence: 0.45, valenceClassification: 5, metadata: {} },
      { entryId: 'som-2', start: at(t2), end: null, kind: 'momentaryEmotion', labels: [], associations: [], valence: -0.2, valenceClassification: 'slightlyUnpleasant', metadata: null },
    ],
    (r) => ({ ...r, labels: ['calm', 'content', 'grateful'] }),
  ),
  caseOf(
    medicationTable,
    [
      { displayText: 'Ibuprofen 200 mg', nickname: null, start: at(t0), end: at(t0), scheduledDate: at(t0), form: 'Tablet', status: 'Taken', isArchived: false, dosage: 1, codings: [{ code: '5640', system: 'RxNorm' }] },
      { displayText: 'Vitamin D', nickname: 'D3', start: at(t2), end: null, scheduledDate: null, form: 'Capsule', status: 'Skipped', isArchived: null, dosage: '1 capsule', codings: null },
    ],
    (r) => ({ ...r, status: 'Skipped' }),
  ),
  caseOf(
    symptomTable,
    [
      { name: 'Headache', start: at(t0), end: at(t0), severity: 'Mild', userEntered: true, source: 'Health' },
      { name: 'Headache', start: at(t0), end: at(t0), severity: 'Moderate', userEntered: false, source: 'Other app' },
      { name: 'Fatigue', start: at(t2), end: null, severity: null, userEntered: null, source: '' },
    ],
    (r) => ({ ...r, severity: 'Severe' }),
  ),
  caseOf(
    cycleTrackingTable,
    [
      { name: 'Menstrual Flow', start: at(t0), end: at(t0), value: 'Medium', isCycleStart: true, source: '' },
      { name: 'Basal Body Temperature', start: at(t2), end: null, value: 36.6, isCycleStart: null, source: 'Thermometer' },
    ],
    (r) => ({ ...r, value: 'Heavy' }),
  ),
  caseOf(
    ecgTable,
    [
      { start: at(t0), end: at(t1), classification: 'Sinus Rhythm', severity: 'None', averageHeartRate: 64, numberOfVoltageMeasurements: 3, samplingFrequencyHz: 512, source: 'Watch', voltages: [0.000012, -0.0000305, 0.000201], voltageUnits: 'V' },
      { start: at(t2), end: null, classification: null, severity: null, averageHeartRate: null, numberOfVoltageMeasurements: null, samplingFrequencyHz: null, source: '', voltages: [], voltageUnits: null },
    ],
    (r) => ({ ...r, voltages: [0.000012, -0.0000305, 0.000202] }),
  ),
  caseOf(
    heartRateNotificationTable,
    [
      { start: at(t0), end: at(t1), threshold: 120, heartRate: [{ hr: 125, units: 'bpm', start: '2025-05-03T07:00:00Z', end: '2025-05-03T07:05:00Z' }], heartRateVariation: [{ hrv: 31, units: 'ms' }] },
      { start: at(t2), end: null, threshold: null, heartRate: [], heartRateVariation: [] },
    ],
    (r) => ({ ...r, threshold: 130 }),
  ),
];

describe('every new table: idempotent writes on the natural key', () => {
  for (const c of cases) {
    test(c.table.table, async () => {
      const n = c.rows.length;
      assert.deepEqual(await write(c.table, c.rows, '1'), { inserted: n, updated: 0, unchanged: 0 }, 'first write');
      assert.equal(await countRows(c.table.table, 'user_id = 1'), n);
      assert.deepEqual(await write(c.table, c.rows, '1'), { inserted: 0, updated: 0, unchanged: n }, 'same rows again');
      assert.equal(await countRows(c.table.table, 'user_id = 1'), n);

      const changed = c.change(c.rows[0]);
      assert.deepEqual(await write(c.table, [changed], '1'), { inserted: 0, updated: 1, unchanged: 0 }, 'a changed value');
      assert.equal(await countRows(c.table.table, 'user_id = 1 AND revision = 2'), 1);
      assert.equal(await countRows(c.table.table, 'user_id = 1'), n);

      // Same natural key twice in one batch: one row, the last one wins.
      assert.deepEqual(await write(c.table, [c.rows[0], changed], '2'), { inserted: 1, updated: 0, unchanged: 1 }, 'duplicates in one batch');
      assert.equal(await countRows(c.table.table, 'user_id = 2 AND revision = 1'), 1);
      assert.deepEqual(await write(c.table, [changed], '2'), { inserted: 0, updated: 0, unchanged: 1 }, 'the last duplicate was kept');
    });
  }
});

test('arrays keep their order and values: labels, associations, ECG voltages', async () => {
  const mood = (await pool.query(`SELECT labels, associations, valence_classification FROM state_of_mind WHERE user_id = 1 ORDER BY start_time`)).rows;
  assert.deepEqual(mood[0], { labels: ['calm', 'content', 'grateful'], associations: ['family'], valence_classification: '5' });
  assert.deepEqual(mood[1], { labels: [], associations: [], valence_classification: 'slightlyUnpleasant' });
  const dosage = (await pool.query(`SELECT dosage FROM medications WHERE user_id = 1 ORDER BY start_time`)).rows.map((r) => r.dosage);
  assert.deepEqual(dosage, ['1', '1 capsule']);
});

test('an ECG reading of 15,360 voltages is one row with one array that round-trips exactly', async (t) => {
  const voltages = Array.from({ length: 15_360 }, (_, i) => Math.sin(i / 40) * 0.0005 + (i % 7) * 1e-7 - 0.0000305);
  const row = { start: at('2025-07-06T10:00:00+02:00'), end: at('2025-07-06T10:00:30+02:00'), classification: 'Sinus Rhythm', severity: 'None', averageHeartRate: 64, numberOfVoltageMeasurements: voltages.length, samplingFrequencyHz: 512, source: 'Watch', voltages, voltageUnits: 'V' };
  const started = performance.now();
  assert.deepEqual(await write(ecgTable, [row], '3'), { inserted: 1, updated: 0, unchanged: 0 });
  const ms = performance.now() - started;
  t.diagnostic(`ECG 15,360 voltages: written in ${ms.toFixed(0)} ms`);
  const { rows } = await pool.query<{ voltages: number[]; n: number }>(`SELECT voltages, cardinality(voltages) AS n FROM ecg_readings WHERE user_id = 3`);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.n, 15_360);
  assert.deepEqual(rows[0]!.voltages, voltages);
  assert.deepEqual(await write(ecgTable, [row], '3'), { inserted: 0, updated: 0, unchanged: 1 });
});

test('100,000 workout series points write and re-write', async (t) => {
  const start = Date.parse('2025-03-31T20:00:00Z'); // crosses a month boundary
  const rows = Array.from({ length: 100_000 }, (_, i) => {
    const d = new Date(start + i * 1_000);
    return { workoutId: 'LONG', series: i % 2 ? 'heartRateData' : 'cyclingPower', time: { epochMs: d.getTime(), offsetMinutes: 0, localDate: d.toISOString().slice(0, 10) }, qty: i % 2 ? 100 + (i % 50) : 150 + (i % 90), min: null, avg: null, max: null, units: i % 2 ? 'bpm' : 'W', source: 'Watch' };
  });
  let started = performance.now();
  assert.deepEqual(await write(workoutSeriesTable, rows, '4'), { inserted: 100_000, updated: 0, unchanged: 0 });
  t.diagnostic(`100,000 workout series points: first write ${(performance.now() - started).toFixed(0)} ms`);
  started = performance.now();
  assert.deepEqual(await write(workoutSeriesTable, rows, '4'), { inserted: 0, updated: 0, unchanged: 100_000 });
  t.diagnostic(`100,000 workout series points: unchanged re-write ${(performance.now() - started).toFixed(0)} ms`);
  assert.equal(await countRows('workout_series', 'user_id = 4'), 100_000);
});

describe('CHECK constraints reject what the parser must reject, by name', () => {
  let second = 0;
  const ins = {
    hr: (min: string, avg: string, max: string) =>
      `INSERT INTO heart_rate_samples (user_id, start_time, utc_offset_minutes, local_date, min_bpm, avg_bpm, max_bpm, units, ingestion_id) VALUES (9, '2025-05-03T07:00Z', 0, '2025-05-03', ${min}, ${avg}, ${max}, 'count/min', 1)`,
    workout: (hrMin: string, hrAvg: string, hrMax: string, end = '2025-05-03T08:00Z') =>
      `INSERT INTO workouts (user_id, workout_id, start_time, end_time, utc_offset_minutes, local_date, name, heart_rate_min, heart_rate_avg, heart_rate_max, ingestion_id) VALUES (9, gen_random_uuid()::text, '2025-05-03T07:00Z', '${end}', 0, '2025-05-03', 'Run', ${hrMin}, ${hrAvg}, ${hrMax}, 1)`,
    series: (series: string, qty: string, min = 'NULL', max = 'NULL') =>
      `INSERT INTO workout_series (user_id, workout_id, series, start_time, utc_offset_minutes, local_date, qty, min, max, units, ingestion_id) VALUES (9, gen_random_uuid()::text, '${series}', '2025-05-03T07:00Z', 0, '2025-05-03', ${qty}, ${min}, ${max}, 'bpm', 1)`,
    quantity: (metric: string, qty: string) =>
      `INSERT INTO quantity_samples (user_id, metric, start_time, utc_offset_minutes, local_date, metric_received, qty, units, ingestion_id) VALUES (9, '${metric}', '2025-05-03T07:00Z', 0, '2025-05-03', '${metric}', ${qty}, 'x', 1)`,
    bp: (sys: string, dia: string) =>
      `INSERT INTO blood_pressure_samples (user_id, start_time, utc_offset_minutes, local_date, systolic, diastolic, units, ingestion_id) VALUES (9, '2025-05-03T07:00Z'::timestamptz + ${++second} * interval '1 second', 0, '2025-05-03', ${sys}, ${dia}, 'mmHg', 1)`,
    route: (lat: string, lon: string) =>
      `INSERT INTO workout_route_points (user_id, workout_id, start_time, utc_offset_minutes, local_date, latitude, longitude, ingestion_id) VALUES (9, gen_random_uuid()::text, '2025-05-03T07:00Z', 0, '2025-05-03', ${lat}, ${lon}, 1)`,
    segment: (end: string, stage = 'core') =>
      `INSERT INTO sleep_segments (user_id, source, start_time, stage, utc_offset_minutes, local_date, end_time, value_received, ingestion_id) VALUES (9, gen_random_uuid()::text, '2025-05-03T07:00Z', '${stage}', 0, '2025-05-03', '${end}', 'x', 1)`,
  };
  const violations: Array<[string, string]> = [
    ['ss_chk_heart_rate_samples_min_bpm', ins.hr('12', '60', '80')],
    ['ss_chk_heart_rate_samples_avg_bpm', ins.hr('NULL', '301', 'NULL')],
    ['ss_chk_heart_rate_samples_max_bpm', ins.hr('50', '60', '400')],
    ['ss_chk_workouts_heart_rate_min', ins.workout('14', 'NULL', 'NULL')],
    ['ss_chk_workouts_heart_rate_avg', ins.workout('NULL', '0', 'NULL')],
    ['ss_chk_workouts_heart_rate_max', ins.workout('NULL', 'NULL', '300.5')],
    ['ss_chk_workouts_end_after_start', ins.workout('NULL', 'NULL', 'NULL', '2025-05-03T07:00Z')],
    ['ss_chk_workouts_end_after_start', ins.workout('NULL', 'NULL', 'NULL', '2025-05-03T06:00Z')],
    ['ss_chk_workout_series_heart_rate', ins.series('heartRateData', '12')],
    ['ss_chk_workout_series_heart_rate', ins.series('heartRateRecovery', 'NULL', '90', '320')],
    ['ss_chk_quantity_samples_heart_rate', ins.quantity('resting_heart_rate', '12')],
    ['ss_chk_quantity_samples_heart_rate', ins.quantity('walking_heart_rate_average', '301')],
    ['ss_chk_quantity_samples_blood_oxygen', ins.quantity('blood_oxygen_saturation', '100.1')],
    ['ss_chk_quantity_samples_blood_oxygen', ins.quantity('blood_oxygen_saturation', '-1')],
    ['ss_chk_blood_pressure_samples_systolic', ins.bp('260', '80')],
    ['ss_chk_blood_pressure_samples_systolic', ins.bp('49', '40')],
    ['ss_chk_blood_pressure_samples_diastolic', ins.bp('120', '29')],
    ['ss_chk_blood_pressure_samples_diastolic', ins.bp('200', '151')],
    ['ss_chk_blood_pressure_samples_systolic_above_diastolic', ins.bp('100', '110')],
    ['ss_chk_blood_pressure_samples_systolic_above_diastolic', ins.bp('90', '90')],
    ['ss_chk_workout_route_points_latitude', ins.route('90.0001', '0')],
    ['ss_chk_workout_route_points_longitude', ins.route('0', '-180.5')],
    ['ss_chk_sleep_segments_end_after_start', ins.segment('2025-05-03T07:00Z')],
    ['ss_chk_sleep_segments_stage', ins.segment('2025-05-03T08:00Z', 'napping')],
  ];
  const allowed = [
    ins.hr('15', 'NULL', '300'),
    ins.workout('15', '120', '300'),
    ins.series('cyclingPower', '500'),
    ins.series('heartRateData', '15', 'NULL', '300'),
    ins.quantity('step_count', '12'),
    ins.quantity('resting_heart_rate', '15'),
    ins.quantity('blood_oxygen_saturation', '0.97'),
    ins.bp('250', '149'),
    ins.bp('51', '50'),
    ins.route('-90', '180'),
    ins.segment('2025-05-03T07:00:01Z', 'unspecified'),
  ];

  before(async () => {
    for (const table of ['heart_rate_samples', 'workouts', 'workout_series', 'quantity_samples', 'blood_pressure_samples', 'workout_route_points', 'sleep_segments'] as const) {
      await partitions.ensureMonths(table, ['2025-05-01']);
    }
  });

  test('every ss_chk_ constraint on the parents is covered here', async () => {
    const { rows } = await pool.query<{ name: string }>(
      `SELECT DISTINCT conname AS name FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
        WHERE c.contype = 'c' AND conname LIKE 'ss\\_chk\\_%' AND r.relkind = 'p' ORDER BY 1`,
    );
    assert.deepEqual(rows.map((r) => r.name), [...new Set(violations.map(([name]) => name))].sort());
  });

  for (const [constraint, sql] of violations) {
    test(`${constraint} rejects: ${sql.match(/VALUES \((.*)\)/)?.[1]?.slice(0, 90) ?? sql}`, async () => {
      await assert.rejects(pool.query(sql), (err: Error & { code?: string; constraint?: string }) => {
        assert.equal(err.code, '23514');
        assert.equal(err.constraint, constraint);
        assert.match(err.message, new RegExp(constraint));
        return true;
      });
    });
  }

  test('the limits themselves, NULLs and other metrics and series pass', async () => {
    for (const sql of allowed) await pool.query(sql);
  });
});

describe('the processor', () => {
  const wide: ValidationLimits = { ...structuredClone(defaultLimits), heartRate: { min: 0, max: 1_000 } };

  test('a CHECK violation that reaches the database fails the whole payload and names the constraint', async () => {
    // Limits wider than the database's (configuration cannot do this) let a bad value through.
    const processor = new PayloadProcessor({ pool, partitions, chunkRows: 1_000, limits: wide });
    const payload = {
      data: {
        metrics: [
          { name: 'step_count', units: 'count', data: [{ date: '2025-05-03 09:00:00 +0200', qty: 10, source: 'Phone' }] },
          { name: 'heart_rate', units: 'count/min', data: [{ date: '2025-05-03 09:00:00 +0200', Min: 12, Avg: 60, Max: 80, source: 'Watch' }] },
        ],
      },
    };
    await assert.rejects(processor.process('1', '20', payload), (err: unknown) => {
      assert.ok(err instanceof ConstraintViolationError, String(err));
      assert.equal(err.constraint, 'ss_chk_heart_rate_samples_min_bpm');
      assert.equal(err.label, 'heart_rate');
      assert.match(err.message, /^heart_rate: .*constraint ss_chk_heart_rate_samples_min_bpm/);
      return true;
    });
    // One transaction: the valid step count written before it is gone too.
    assert.equal(await countRows('quantity_samples', 'user_id = 20'), 0);
    assert.equal(await countRows('heart_rate_samples', 'user_id = 20'), 0);
  });

  test('500,000 points of one metric are all stored (one bind parameter per column)', { timeout: 300_000 }, async (t) => {
    const processor = new PayloadProcessor({ pool, partitions, chunkRows: 20_000, limits: defaultLimits });
    const start = Date.UTC(2024, 0, 1);
    const data = Array.from({ length: 500_000 }, (_, i) => {
      const d = new Date(start + i * 60_000).toISOString();
      return { date: `${d.slice(0, 10)} ${d.slice(11, 19)} +0000`, qty: (i % 97) + 1, source: 'Phone' };
    });
    const started = performance.now();
    const { result } = await processor.process('2', '21', { data: { metrics: [{ name: 'step_count', units: 'count', data }] } });
    t.diagnostic(`500,000 step_count points through the processor (parse + write): ${(performance.now() - started).toFixed(0)} ms`);
    assert.equal(result.counts.quantity?.inserted, 500_000);
    assert.equal(await countRows('quantity_samples', `user_id = 21 AND metric = 'step_count'`), 500_000);
  });
});

describe('route points in a box', () => {
  // A grid of points around Berlin (user 30), the same grid for another user (31), and points
  // on the equator-side edge of a wide box, where a naive geography envelope would miss them.
  const grid: Array<{ lat: number; lon: number }> = [];
  for (let i = 0; i < 40; i++) for (let j = 0; j < 40; j++) grid.push({ lat: 52.4 + i * 0.005, lon: 13.2 + j * 0.005 });
  const edge = [{ lat: 50, lon: 20 }, { lat: 50, lon: 0 }, { lat: 50, lon: 40 }, { lat: 49.9999, lon: 20 }, { lat: 60, lon: 20 }, { lat: -50, lon: 20 }];
  const points = [...grid, ...edge];
  const boxes: RouteBox[] = [
    { userId: '30', minLat: 52.45, maxLat: 52.5, minLon: 13.25, maxLon: 13.3 },
    { userId: '30', minLat: 52.4 + 10 * 0.005, maxLat: 52.4 + 12 * 0.005, minLon: 13.2 + 3 * 0.005, maxLon: 13.2 + 3 * 0.005 },
    { userId: '30', minLat: 52.45, maxLat: 52.5, minLon: 13.25, maxLon: 13.3, from: new Date('2025-05-03T07:10:00Z'), to: new Date('2025-05-03T07:20:00Z') },
    { userId: '30', minLat: 50, maxLat: 60, minLon: 0, maxLon: 40 },
    { userId: '30', minLat: -60, maxLat: -50, minLon: 0, maxLon: 40 },
    { userId: '30', minLat: -90, maxLat: 90, minLon: -180, maxLon: 180 },
  ];
  const expected = (box: RouteBox) =>
    points
      .map((p, i) => ({ ...p, time: new Date(Date.parse('2025-05-03T07:00:00Z') + i * 1_000) }))
      .filter((p) => p.lat >= box.minLat && p.lat <= box.maxLat && p.lon >= box.minLon && p.lon <= box.maxLon)
      .filter((p) => (!box.from || p.time >= box.from) && (!box.to || p.time < box.to))
      .map((p) => `${p.time.toISOString()} ${p.lat} ${p.lon}`);
  const found = async (box: RouteBox) => (await routePointsInBox(pool, box)).map((p) => `${p.time.toISOString()} ${p.latitude} ${p.longitude}`);

  before(async () => {
    for (const user of ['30', '31']) {
      const rows = points.map((p, i) => {
        const time = new Date(Date.parse('2025-05-03T07:00:00Z') + i * 1_000);
        return { workoutId: 'R', time: { epochMs: time.getTime(), offsetMinutes: 0, localDate: '2025-05-03' }, latitude: p.lat, longitude: p.lon, altitude: null, course: null, courseAccuracy: null, horizontalAccuracy: null, verticalAccuracy: null, speed: null, speedAccuracy: null };
      });
      await write(workoutRouteTable, rows, user);
    }
    await pool.query('ANALYZE workout_route_points');
  });

  const name = postgisOnServer
    ? 'PostGIS is installed on the server: the geography/GiST path and the latitude/longitude path return the same points'
    : 'PostGIS is NOT installed on the server (no postgis in pg_available_extensions): only the latitude/longitude path is tested';
  test(name, async (t) => {
    const lists = await Promise.all(boxes.map(found));
    boxes.forEach((box, i) => assert.deepEqual(lists[i], expected(box), `box ${i}`));
    assert.ok(lists[0]!.length > 50 && lists[1]!.length === 3 && lists[3]!.length === grid.length + 4, `sizes ${lists.map((l) => l.length).join(',')}`);
    if (!postgisOnServer) {
      t.diagnostic('PostGIS not available on the server: run .ci/run (it installs postgresql-N-postgis-3) to test the geography path');
      assert.deepEqual(await routeQueryPlan(pool), { method: 'lat_lon' });
      return;
    }
    // Migration 0003 created the extension in this test's database and added the column.
    const plan = await routeQueryPlan(pool);
    assert.equal(plan.method, 'geography');
    const client = await pool.connect();
    try {
      await client.query('SET enable_seqscan = off');
      await client.query('SET enable_indexscan = off'); // leaves bitmap scans: the btree and the GiST compete on cost
      const q = routeBoxQuery(boxes[0]!, plan);
      const explain = (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${q.text}`, q.values)).rows.map((r) => r['QUERY PLAN']).join('\n');
      // The GiST index of a partition answers the geography pre-filter.
      assert.match(explain, /Index Scan on workout_route_points_\d{4}_\d{2}_geog_idx\s+\(cost[^\n]*\n\s*Index Cond: \(geog && /, explain);
      t.diagnostic(`plan of the geography query:\n${explain}`);
    } finally {
      await client.query('RESET ALL');
      client.release();
    }

    // Without the column the same boxes give the same points through latitude/longitude.
    await pool.query('ALTER TABLE workout_route_points DROP COLUMN geog');
    assert.deepEqual(await routeQueryPlan(pool), { method: 'lat_lon' });
    assert.deepEqual(await Promise.all(boxes.map(found)), lists);

    // And the daemon's start-up call puts it back (PostGIS installed after the first start).
    assert.equal(await enablePostgisIfAvailable(pool, log), 'enabled');
    assert.equal(await enablePostgisIfAvailable(pool, log), 'enabled');
    assert.equal((await routeQueryPlan(pool)).method, 'geography');
    assert.deepEqual(await Promise.all(boxes.map(found)), lists);
    const geog = await pool.query(`SELECT count(*)::int AS n FROM workout_route_points WHERE user_id = 30 AND geog IS NOT NULL`);
    assert.equal(geog.rows[0].n, points.length);
  });
});
