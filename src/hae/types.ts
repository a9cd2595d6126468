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

/** A workout's summary, export version 1 (no id: a stable one is derived) or 2 (HealthKit id). */
export interface WorkoutRow {
  /** v2: the HealthKit id. v1: `v1-` + a hash of name, start and end, so re-sends update. */
  workoutId: string;
  formatVersion: 1 | 2;
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
  /** Every {qty, units} field of the workout by its key, as received (v1 `elevation` too). */
  summaries: Record<string, QtyWithUnits | Record<string, unknown>>;
  metadata: Record<string, unknown> | null;
}

/** A point of a workout's series: heartRateData, heartRateRecovery, activeEnergy, stepCount, … */
export interface WorkoutSeriesRow {
  workoutId: string;
  /** The series key as received, e.g. "heartRateData", "activeEnergy". */
  series: string;
  time: Instant;
  qty: number | null;
  min: number | null;
  avg: number | null;
  max: number | null;
  units: string;
  source: string;
}

export interface WorkoutRoutePointRow {
  workoutId: string;
  time: Instant;
  latitude: number;
  longitude: number;
  altitude: number | null;
  course: number | null;
  courseAccuracy: number | null;
  horizontalAccuracy: number | null;
  verticalAccuracy: number | null;
  speed: number | null;
  speedAccuracy: number | null;
}

/** Unaggregated sleep ("Summarize Data" off): one stage segment. */
export interface SleepSegmentRow {
  start: Instant;
  end: Instant;
  /** Normalised stage: in_bed, asleep, core, deep, rem, awake, unspecified. */
  stage: 'in_bed' | 'asleep' | 'core' | 'deep' | 'rem' | 'awake' | 'unspecified';
  /** The value as received ("In Bed", "InBed", "Core", …). */
  valueReceived: string;
  /** Duration in hours as sent (qty). */
  hours: number | null;
  source: string;
}

export interface StateOfMindRow {
  entryId: string;
  start: Instant;
  end: Instant | null;
  kind: string | null;
  labels: string[];
  associations: string[];
  valence: number | null;
  valenceClassification: number | string | null;
  metadata: Record<string, unknown> | null;
}

export interface MedicationRow {
  displayText: string;
  nickname: string | null;
  start: Instant;
  end: Instant | null;
  scheduledDate: Instant | null;
  form: string | null;
  status: string | null;
  isArchived: boolean | null;
  dosage: number | string | null;
  codings: unknown[] | null;
}

export interface SymptomRow {
  name: string;
  start: Instant;
  end: Instant | null;
  severity: string | null;
  userEntered: boolean | null;
  source: string;
}

export interface CycleTrackingRow {
  name: string;
  start: Instant;
  end: Instant | null;
  value: string | number | null;
  isCycleStart: boolean | null;
  source: string;
}

/** One ECG reading; its voltages stay one array (≈15,000 per 30 s), never one row each. */
export interface EcgRow {
  start: Instant;
  end: Instant | null;
  classification: string | null;
  severity: string | null;
  averageHeartRate: number | null;
  numberOfVoltageMeasurements: number | null;
  samplingFrequencyHz: number | null;
  source: string;
  voltages: number[];
  voltageUnits: string | null;
}

export interface HeartRateNotificationRow {
  start: Instant;
  end: Instant | null;
  threshold: number | null;
  /** [{hr, units, start, end}] as numbers and ISO strings. */
  heartRate: unknown[];
  /** [{hrv, units, start, end}] */
  heartRateVariation: unknown[];
}

export interface ParsedPayload {
  quantity: QuantityRow[];
  heartRate: HeartRateRow[];
  bloodPressure: BloodPressureRow[];
  sleep: SleepRow[];
  sleepSegments: SleepSegmentRow[];
  workouts: WorkoutRow[];
  workoutSeries: WorkoutSeriesRow[];
  workoutRoute: WorkoutRoutePointRow[];
  stateOfMind: StateOfMindRow[];
  medications: MedicationRow[];
  symptoms: SymptomRow[];
  cycleTracking: CycleTrackingRow[];
  ecg: EcgRow[];
  heartRateNotifications: HeartRateNotificationRow[];
  /** Items seen per data type key (same keys as the row arrays above), valid or not. */
  received: Record<SampleKind, number>;
  rejections: ItemRejection[];
  /** Parts kept only in the raw payload (unknown keys, unrecognised shapes). */
  notStored: Array<{ type: string; items: number; reason: string }>;
}

export type SampleKind =
  | 'quantity'
  | 'heartRate'
  | 'bloodPressure'
  | 'sleep'
  | 'sleepSegments'
  | 'workouts'
  | 'workoutSeries'
  | 'workoutRoute'
  | 'stateOfMind'
  | 'medications'
  | 'symptoms'
  | 'cycleTracking'
  | 'ecg'
  | 'heartRateNotifications';
export const sampleKinds: readonly SampleKind[] = [
  'quantity',
  'heartRate',
  'bloodPressure',
  'sleep',
  'sleepSegments',
  'workouts',
  'workoutSeries',
  'workoutRoute',
  'stateOfMind',
  'medications',
  'symptoms',
  'cycleTracking',
  'ecg',
  'heartRateNotifications',
];
