import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/paths.js';

/** ../shared/fixtures beside the checkout (read-only; never edited). */
export const fixturesDir = path.resolve(projectRoot, '..', 'shared', 'fixtures');

export function fixturePath(relative: string): string {
  return path.join(fixturesDir, relative);
}

export function readFixture(relative: string): Buffer {
  return readFileSync(fixturePath(relative));
}

export function allFixtures(): string[] {
  const out: string[] = [];
  for (const dir of ['real', 'composed']) {
    for (const f of readdirSync(path.join(fixturesDir, dir))) if (f.endsWith('.json')) out.push(`${dir}/${f}`);
  }
  return out.sort();
}

type Json = Record<string, unknown>;

/** The table behind each count label of the ingest answer that fixtures exercise. */
export const sampleTableByLabel = {
  quantity: 'quantity_samples',
  heart_rate: 'heart_rate_samples',
  blood_pressure: 'blood_pressure_samples',
  sleep: 'sleep_sessions',
  sleep_segments: 'sleep_segments',
  workouts: 'workouts',
  workout_series: 'workout_series',
  workout_route: 'workout_route_points',
} as const;

export interface ExpectedCounts {
  quantity: number;
  heart_rate: number;
  blood_pressure: number;
  sleep: number;
  sleep_segments: number;
  workouts: number;
  workout_series: number;
  workout_route: number;
  /** Quantity points per metric name as received. */
  quantityByMetric: Map<string, number>;
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const aggregatedSleepKeys = ['asleep', 'inBed', 'totalSleep', 'core', 'deep', 'rem', 'awake', 'sleepStart'];

/**
 * What a fixture should put in each table, computed from the file on its own terms (not with the
 * parser): one row per point, after collapsing points with the same natural key.
 */
export function expectedCounts(payload: Json): ExpectedCounts {
  const data = (payload.data ?? {}) as Json;
  const keys = {
    quantity: new Set<string>(),
    heart_rate: new Set<string>(),
    blood_pressure: new Set<string>(),
    sleep: new Set<string>(),
    sleep_segments: new Set<string>(),
    workouts: new Set<string>(),
    workout_series: new Set<string>(),
    workout_route: new Set<string>(),
  };
  const quantityByMetric = new Map<string, number>();
  for (const metric of (data.metrics ?? []) as Json[]) {
    const name = String(metric.name);
    for (const p of (metric.data ?? []) as Json[]) {
      const source = typeof p.source === 'string' ? p.source : '';
      if (name === 'heart_rate') {
        if ([p.Min, p.Avg, p.Max, p.qty].some(isNum)) keys.heart_rate.add(`${p.date}|${source}`);
      } else if (name === 'blood_pressure') {
        if (isNum(p.systolic) && isNum(p.diastolic)) keys.blood_pressure.add(`${p.date}|${source}`);
      } else if (name === 'sleep_analysis') {
        if (aggregatedSleepKeys.some((k) => k in p)) keys.sleep.add(`${p.sleepStart ?? p.date}|${source}`);
        else if (typeof p.startDate === 'string') keys.sleep_segments.add(`${p.startDate}|${String(p.value).replace(/\s/g, '').toLowerCase()}|${source}`);
      } else if (isNum(p.qty)) {
        keys.quantity.add(`${name}|${p.date}|${source}`);
        quantityByMetric.set(name, (quantityByMetric.get(name) ?? 0) + 1);
      }
    }
  }
  for (const w of (data.workouts ?? []) as Json[]) {
    keys.workouts.add(`${w.id ?? `${w.name}|${w.end}`}|${w.start}`);
    for (const [series, points] of Object.entries(w)) {
      if (!Array.isArray(points)) continue;
      for (const p of points as Json[]) {
        if (series === 'route') keys.workout_route.add(`${w.id}|${p.timestamp}`);
        else if (typeof p.date === 'string') keys.workout_series.add(`${w.id}|${series}|${p.date}`);
      }
    }
  }
  return {
    quantity: keys.quantity.size,
    heart_rate: keys.heart_rate.size,
    blood_pressure: keys.blood_pressure.size,
    sleep: keys.sleep.size,
    sleep_segments: keys.sleep_segments.size,
    workouts: keys.workouts.size,
    workout_series: keys.workout_series.size,
    workout_route: keys.workout_route.size,
    quantityByMetric,
  };
}
