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

export interface ExpectedCounts {
  quantity: number;
  heart_rate: number;
  blood_pressure: number;
  sleep: number;
  workouts: number;
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
  const keys = { quantity: new Set<string>(), heart_rate: new Set<string>(), blood_pressure: new Set<string>(), sleep: new Set<string>(), workouts: new Set<string>() };
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
      } else if (isNum(p.qty)) {
        keys.quantity.add(`${name}|${p.date}|${source}`);
        quantityByMetric.set(name, (quantityByMetric.get(name) ?? 0) + 1);
      }
    }
  }
  for (const w of (data.workouts ?? []) as Json[]) if (typeof w.id === 'string') keys.workouts.add(`${w.id}|${w.start}`);
  return {
    quantity: keys.quantity.size,
    heart_rate: keys.heart_rate.size,
    blood_pressure: keys.blood_pressure.size,
    sleep: keys.sleep.size,
    workouts: keys.workouts.size,
    quantityByMetric,
  };
}
