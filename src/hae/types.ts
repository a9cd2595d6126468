import type { ItemRejection } from '../../broker/types.js';

/**
 * A point in time as Health Auto Export wrote it: the instant, the UTC offset the phone had,
 * and the local calendar date in the string (never derived from the server's time zone).
 */
export interface Instant {
  epochMs: number;
  offsetMinutes: number;
  /** YYYY-MM-DD as written in the string. */
  localDate: string;
}

export interface QuantityRow {
  /** Canonical metric name (after the alias table). */
  metric: string;
  /** Name exactly as received. */
  metricReceived: string;
  time: Instant;
  qty: number;
  units: string;
  /** '' when the point has no source. */
  source: string;
  /** Other scalar fields of the point (mealTime, reason, value, …), or null. */
  extra: Record<string, string | number | boolean> | null;
}

export interface HeartRateRow {
  time: Instant;
  source: string;
  min: number | null;
  avg: number | null;
  max: number | null;
  units: string;
}

export interface BloodPressureRow {
  time: Instant;
  source: string;
  systolic: number;
  diastolic: number;
  units: string;
}

/** One aggregated sleep entry ("Summarize Data" on), either shape (before/after app v6.6.2). */
export interface SleepRow {
  /** The entry's `date`; date-only values are local midnight with offset 0. */
  date: Instant;
  /** sleepStart if present, else date: with source, the natural key of the entry. */
  start: Instant;
  end: Instant | null;
  inBedStart: Instant | null;
  inBedEnd: Instant | null;
  source: string;
  sleepSource: string | null;
  inBedSource: string | null;
  totalSleep: number | null;
  asleep: number | null;
  core: number | null;
  deep: number | null;
  rem: number | null;
  awake: number | null;
  inBed: number | null;
  /** asleep (or totalSleep) / inBed when both are known and inBed > 0. */
  efficiency: number | null;
  units: string;
}

export interface QtyWithUnits {
  qty: number;
  units: string;
}

/** A v2 workout's summary (the per-minute series and route come in a later issue). */
export interface WorkoutRow {
  workoutId: string;
  name: string;
  start: Instant;
  end: Instant;
  durationSeconds: number | null;
  location: string | null;
  isIndoor: boolean | null;
  activeEnergy: QtyWithUnits | null;
  totalEnergy: QtyWithUnits | null;
  distance: QtyWithUnits | null;
  heartRateMin: number | null;
  heartRateAvg: number | null;
  heartRateMax: number | null;
  /** Every {qty, units} field of the workout by its key, as received. */
  summaries: Record<string, QtyWithUnits>;
  metadata: Record<string, unknown> | null;
}

export interface ParsedPayload {
  quantity: QuantityRow[];
  heartRate: HeartRateRow[];
  bloodPressure: BloodPressureRow[];
  sleep: SleepRow[];
  workouts: WorkoutRow[];
  /** Items seen per data type key (same keys as the row arrays above), valid or not. */
  received: Record<SampleKind, number>;
  rejections: ItemRejection[];
  /** Parts kept only in the raw payload (not yet modelled, or unknown keys). */
  notStored: Array<{ type: string; items: number; reason: string }>;
}

export type SampleKind = 'quantity' | 'heartRate' | 'bloodPressure' | 'sleep' | 'workouts';
export const sampleKinds: readonly SampleKind[] = ['quantity', 'heartRate', 'bloodPressure', 'sleep', 'workouts'];
