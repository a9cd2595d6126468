/**
 * Fuzz: thousands of seeded random mutations of the fixtures. For each: parseHaePayload never
 * throws; every row is complete (right types, finite numbers, valid instants, no undefined,
 * JSON-serialisable); every rejection has a catalogued reason and a message; rows + rejections
 * per kind equal `received`. Replay a failure with FUZZ_SEED=<seed printed below>.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { rejectionCatalogue } from '../src/errors.js';
import { canonicalMetricName } from '../src/hae/aliases.js';
import { parseHaePayload } from '../src/hae/parse.js';
import { sampleKinds, type ParsedPayload, type SampleKind } from '../src/hae/types.js';
import { allTypesPayload } from './helpers/all-types-payload.js';
import { fixturePath } from './helpers/fixtures.js';
import { corruptUtf8, prng } from './helpers/mutate.js';

const CASES = 3_000;
const NOW = new Date('2025-06-01T00:00:00Z');
type Json = unknown;
type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/* ------------------------------------------------------------------------------------------ */
/* Bases: every fixture (the real export trimmed to 6 points per metric, for speed) and one payload of every type. */

function readJson(relative: string): Json {
  return JSON.parse(readFileSync(fixturePath(relative), 'utf8')) as Json;
}

function trimmedRealExport(): Json {
  const body = readJson('real/hae-export-daily-2023-06-to-2025-04.json') as { data: { metrics: Array<{ data: unknown[] }> } };
  for (const metric of body.data.metrics) metric.data = metric.data.slice(0, 6);
  return body;
}

const bases: Json[] = [
  readJson('composed/hae-small.json'),
  readJson('composed/hae-sleep-unaggregated.json'),
  readJson('real/hae-workouts-sample.json'),
  trimmedRealExport(),
  allTypesPayload(),
];

/* ------------------------------------------------------------------------------------------ */
/* Mutations. */

function deepNest(levels: number): Json {
  let value: Json = 1;
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { x: value };
  return value;
}

const DEEP = deepNest(10_000);
/** Arrays only: their toString() recurses as deep as JSON.stringify does. */
const DEEP_ARRAYS = Array.from({ length: 10_000 }).reduce<Json>((inner) => [inner], 1);
const LONG = 'x'.repeat(200_000);

const replacements: ReadonlyArray<(r: () => number) => Json> = [
  () => null,
  () => 'not a number',
  () => '12',
  () => 1e308,
  () => -1e308,
  () => -0,
  () => -5,
  () => 0,
  () => true,
  () => [],
  () => ({}),
  () => '',
  () => LONG,
  () => DEEP,
  () => '2024-13-45 25:61:00 +9999',
  () => '2024-02-30 10:00:00 +0000',
  () => '2025-03-11 7:00:00\u202fpm +0100',
  () => '\u0000\u0007\ud800',
  (r) => Math.floor(r() * 1e9),
  (r) => r() * 400 - 50,
];

type Path = Array<string | number>;

/** Container paths of a value, breadth-limited to `maxDepth` (never walks into the 10,000-level nest). */
function paths(root: Json, maxDepth = 8): Path[] {
  const out: Path[] = [];
  const stack: Array<[Json, Path]> = [[root, []]];
  while (stack.length > 0) {
    const [value, at] = stack.pop()!;
    if (at.length >= maxDepth || typeof value !== 'object' || value === null) continue;
    if (value === DEEP) continue;
    for (const key of Object.keys(value)) {
      const p = [...at, Array.isArray(value) ? Number(key) : key];
      out.push(p);
      stack.push([(value as Obj)[key], p]);
    }
  }
  return out;
}

function parentOf(root: Json, path: Path): Obj | unknown[] {
  let parent = root as Obj;
  for (const key of path.slice(0, -1)) parent = parent[key] as Obj;
  return parent;
}

function setOwn(target: Obj, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function nullEverywhere(value: Json): Json {
  if (Array.isArray(value)) return value.map(() => null);
  if (isObj(value)) return Object.fromEntries(Object.keys(value).map((k) => [k, null]));
  return null;
}

/** One mutation, in place. Returns a label for the failure message. */
function mutateOnce(root: Json, r: () => number): string {
  const all = paths(root);
  if (all.length === 0) return 'none';
  const path = all[Math.floor(r() * all.length)]!;
  const parent = parentOf(root, path) as Obj;
  const last = path.at(-1)!;
  const op = Math.floor(r() * 6);
  switch (op) {
    case 0:
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
      return `remove ${path.join('.')}`;
    case 1: {
      const value = parent[last];
      parent[last] = Array.isArray(value) ? Object.fromEntries(value.map((v, i) => [String(i), v])) : isObj(value) ? Object.values(value) : [value];
      return `array<->object ${path.join('.')}`;
    }
    case 2:
      parent[last] = nullEverywhere(parent[last]);
      return `null everywhere ${path.join('.')}`;
    case 3: {
      const target = isObj(parent[last]) ? (parent[last] as Obj) : isObj(parent) ? parent : null;
      if (target === null) return 'no object';
      setOwn(target, r() < 0.5 ? '__proto__' : 'constructor', r() < 0.5 ? { polluted: true } : 5);
      return `__proto__/constructor at ${path.join('.')}`;
    }
    default:
      parent[last] = replacements[Math.floor(r() * replacements.length)]!(r);
      return `replace ${path.join('.')}`;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Row completeness. */

type Check = (v: unknown) => boolean;
const num: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const str: Check = (v) => typeof v === 'string';
const bool: Check = (v) => typeof v === 'boolean';
const obj: Check = (v) => isObj(v);
const arr: Check = (v) => Array.isArray(v);
const instant: Check = (v) =>
  isObj(v) && Object.keys(v).length === 3 && num(v['epochMs']) && Number.isInteger(v['offsetMinutes']) && typeof v['localDate'] === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v['localDate']);
const orNull =
  (check: Check): Check =>
  (v) =>
    v === null || check(v);
const either =
  (...checks: Check[]): Check =>
  (v) =>
    checks.some((c) => c(v));
const qtyUnits: Check = (v) => isObj(v) && num(v['qty']) && str(v['units']);
const arrayOf =
  (check: Check): Check =>
  (v) =>
    Array.isArray(v) && v.every(check);

const rowSpec: Record<SampleKind, Record<string, Check>> = {
  quantity: { metric: str, metricReceived: str, time: instant, qty: num, units: str, source: str, extra: orNull(obj) },
  heartRate: { time: instant, source: str, min: orNull(num), avg: orNull(num), max: orNull(num), units: str },
  bloodPressure: { time: instant, source: str, systolic: num, diastolic: num, units: str },
  sleep: {
    date: instant,
    start: instant,
    end: orNull(instant),
    inBedStart: orNull(instant),
    inBedEnd: orNull(instant),
    source: str,
    sleepSource: orNull(str),
    inBedSource: orNull(str),
    totalSleep: orNull(num),
    asleep: orNull(num),
    core: orNull(num),
    deep: orNull(num),
    rem: orNull(num),
    awake: orNull(num),
    inBed: orNull(num),
    efficiency: orNull(num),
    units: str,
  },
  sleepSegments: { start: instant, end: instant, stage: (v) => ['in_bed', 'asleep', 'core', 'deep', 'rem', 'awake', 'unspecified'].includes(v as string), valueReceived: str, hours: orNull(num), source: str },
  workouts: {
    workoutId: (v) => str(v) && (v as string).length > 0,
    formatVersion: (v) => v === 1 || v === 2,
    name: str,
    start: instant,
    end: instant,
    durationSeconds: orNull(num),
    location: orNull(str),
    isIndoor: orNull(bool),
    activeEnergy: orNull(qtyUnits),
    totalEnergy: orNull(qtyUnits),
    distance: orNull(qtyUnits),
    heartRateMin: orNull(num),
    heartRateAvg: orNull(num),
    heartRateMax: orNull(num),
    summaries: obj,
    metadata: orNull(obj),
  },
  workoutSeries: { workoutId: str, series: str, time: instant, qty: orNull(num), min: orNull(num), avg: orNull(num), max: orNull(num), units: str, source: str },
  workoutRoute: {
    workoutId: str,
    time: instant,
    latitude: num,
    longitude: num,
    altitude: orNull(num),
    course: orNull(num),
    courseAccuracy: orNull(num),
    horizontalAccuracy: orNull(num),
    verticalAccuracy: orNull(num),
    speed: orNull(num),
    speedAccuracy: orNull(num),
  },
  stateOfMind: {
    entryId: str,
    start: instant,
    end: orNull(instant),
    kind: orNull(str),
    labels: arrayOf(str),
    associations: arrayOf(str),
    valence: orNull(num),
    valenceClassification: orNull(either(num, str)),
    metadata: orNull(obj),
  },
  medications: {
    displayText: str,
    nickname: orNull(str),
    start: instant,
    end: orNull(instant),
    scheduledDate: orNull(instant),
    form: orNull(str),
    status: orNull(str),
    isArchived: orNull(bool),
    dosage: orNull(either(num, str)),
    codings: orNull(arr),
  },
  symptoms: { name: str, start: instant, end: orNull(instant), severity: orNull(str), userEntered: orNull(bool), source: str },
  cycleTracking: { name: str, start: instant, end: orNull(instant), value: orNull(either(num, str)), isCycleStart: orNull(bool), source: str },
  ecg: {
    start: instant,
    end: orNull(instant),
    classification: orNull(str),
    severity: orNull(str),
    averageHeartRate: orNull(num),
    numberOfVoltageMeasurements: orNull(num),
    samplingFrequencyHz: orNull(num),
    source: str,
    voltages: arrayOf(num),
    voltageUnits: orNull(str),
  },
  heartRateNotifications: { start: instant, end: orNull(instant), threshold: orNull(num), heartRate: arrayOf(obj), heartRateVariation: arrayOf(obj) },
};

/** No undefined and no non-finite number anywhere inside (iterative: metadata may nest 10,000 levels). */
function findUndefinedOrNonFinite(root: unknown): string | null {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value === undefined) return 'undefined';
    if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
    if (typeof value === 'object' && value !== null) for (const key of Object.keys(value)) stack.push((value as Obj)[key]);
  }
  return null;
}

function checkRow(kind: SampleKind, row: unknown): string | null {
  if (!isObj(row)) return `${kind} row is not an object`;
  const spec = rowSpec[kind];
  const keys = Object.keys(row).sort();
  const expected = Object.keys(spec).sort();
  if (keys.join() !== expected.join()) return `${kind} row has keys ${keys.join()} instead of ${expected.join()}`;
  for (const [field, check] of Object.entries(spec)) if (!check(row[field])) return `${kind}.${field} is ${JSON.stringify(row[field])?.slice(0, 120)}`;
  const bad = findUndefinedOrNonFinite(row);
  if (bad !== null) return `${kind} row contains ${bad}`;
  try {
    JSON.stringify(row);
  } catch (err) {
    return `${kind} row is not JSON-serialisable: ${String(err)}`;
  }
  return null;
}

/* ------------------------------------------------------------------------------------------ */
/* Rejections per kind, attributed from the path and the (mutated) body itself. */

const recordArrays: Record<string, SampleKind> = {
  stateOfMind: 'stateOfMind',
  medications: 'medications',
  symptoms: 'symptoms',
  cycleTracking: 'cycleTracking',
  ecg: 'ecg',
  heartRateNotifications: 'heartRateNotifications',
};
const aggregatedSleepKeys = ['asleep', 'inBed', 'totalSleep', 'core', 'deep', 'rem', 'awake', 'sleepStart'];

function kindOfMetricPoint(body: Json, metricIndex: number, pointIndex: number): SampleKind {
  const metric = ((body as Obj)['data'] as Obj)['metrics'] as Obj[];
  const name = canonicalMetricName(metric[metricIndex]!['name'] as string);
  const point = (metric[metricIndex]!['data'] as unknown[])[pointIndex];
  if (name === 'heart_rate') return 'heartRate';
  if (name === 'blood_pressure') return 'bloodPressure';
  if (name === 'sleep_analysis') {
    const keys = isObj(point) ? Object.keys(point) : [];
    return !keys.some((k) => aggregatedSleepKeys.includes(k)) && (keys.includes('startDate') || keys.includes('endDate')) ? 'sleepSegments' : 'sleep';
  }
  return 'quantity';
}

function kindOfRejection(body: Json, path: string): SampleKind | null {
  const point = /^data\.metrics\[(\d+)\]\.data\[(\d+)\]$/.exec(path);
  if (point !== null) return kindOfMetricPoint(body, Number(point[1]), Number(point[2]));
  if (/^data\.workouts\[\d+\]$/.test(path)) return 'workouts';
  if (/^data\.workouts\[\d+\]\.route\[\d+\]$/.test(path)) return 'workoutRoute';
  if (/^data\.workouts\[\d+\]\.[^.[\]]+\[\d+\]$/.test(path)) return 'workoutSeries';
  const record = /^data\.([^.[\]]+)\[\d+\]$/.exec(path);
  return record !== null && Object.hasOwn(recordArrays, record[1]!) ? recordArrays[record[1]!]! : null;
}

function checkResult(body: Json, result: ParsedPayload): string | null {
  for (const kind of sampleKinds) {
    for (const row of result[kind]) {
      const problem = checkRow(kind, row);
      if (problem !== null) return problem;
    }
  }
  const rejected = Object.fromEntries(sampleKinds.map((k) => [k, 0])) as Record<SampleKind, number>;
  for (const rejection of result.rejections) {
    if (!(rejection.reason in rejectionCatalogue)) return `unknown reason ${rejection.reason}`;
    if (typeof rejection.message !== 'string' || rejection.message.length === 0) return `empty message at ${rejection.path}`;
    if (typeof rejection.path !== 'string' || rejection.path.length === 0) return 'empty path';
    const kind = kindOfRejection(body, rejection.path);
    if (kind !== null) rejected[kind]++;
  }
  for (const kind of sampleKinds) {
    if (result[kind].length + rejected[kind] !== result.received[kind]) {
      return `${kind}: ${result[kind].length} rows + ${rejected[kind]} rejections != received ${result.received[kind]}`;
    }
  }
  for (const entry of result.notStored) if (!(entry.reason in rejectionCatalogue) || !(entry.items >= 0)) return `bad notStored ${JSON.stringify(entry)}`;
  return null;
}

/* ------------------------------------------------------------------------------------------ */

test(`fuzz: ${CASES} seeded mutations of the fixtures never crash and always give complete rows`, () => {
  const seed = Number(process.env['FUZZ_SEED'] ?? Date.now() % 2_147_483_647);
  console.log(`hae-fuzz seed ${seed} (replay: FUZZ_SEED=${seed})`);
  const random = prng(seed);
  let parsed = 0;
  for (let i = 0; i < CASES; i++) {
    const body = structuredClone(bases[i % bases.length]);
    const labels: string[] = [];
    const rounds = 1 + Math.floor(random() * 4);
    for (let m = 0; m < rounds; m++) labels.push(mutateOnce(body, random));
    let input: Json = body;
    if (random() < 0.1) {
      // Invalid UTF-8 inside a string, decoded the way the server decodes (U+FFFD), then parsed.
      try {
        const bytes = corruptUtf8(Buffer.from(JSON.stringify(body)), random);
        input = JSON.parse(bytes.toString('utf8')) as Json;
        labels.push('invalid UTF-8');
      } catch {
        // 10,000 levels overflow JSON.stringify; bytes spliced outside a string are not JSON.
        labels.push('invalid UTF-8 not applicable: parsed unchanged');
      }
    }
    const where = `seed ${seed} case ${i} (${labels.join('; ')})`;
    let result: ParsedPayload;
    try {
      result = parseHaePayload(input, { now: NOW });
    } catch (err) {
      assert.fail(`${where}: threw ${String(err)}`);
    }
    const problem = checkResult(input, result);
    assert.equal(problem, null, `${where}: ${problem}`);
    parsed++;
  }
  assert.equal(parsed, CASES);
});

test('fuzz: odd values at the top never crash', () => {
  const odd: Json[] = [undefined, null, 0, -0, 1e308, '', LONG, DEEP, DEEP_ARRAYS, [], {}, { data: DEEP }, { data: { metrics: DEEP } }, { data: { metrics: DEEP_ARRAYS } }, { data: { metrics: [{ name: 'x', units: 'u', data: DEEP_ARRAYS }] } }, { data: { workouts: [DEEP] } }, { data: { ecg: [{ start: '2025-05-06 10:00:00 +0200', voltageMeasurements: DEEP }] } }];
  for (const input of odd) {
    const result = parseHaePayload(input, { now: NOW });
    assert.equal(checkResult(input, result), null);
  }
});
