import type {
  BloodPressureRow,
  HeartRateRow,
  Instant,
  QuantityRow,
  SampleKind,
  SleepRow,
  WorkoutRow,
} from '../hae/types.js';
import type { PartitionedTable } from './partitions.js';

export interface Column<R> {
  name: string;
  /** Array element type for unnest, e.g. 'text', 'float8', 'timestamptz', 'jsonb'. */
  type: string;
  value: (row: R) => unknown;
}

/**
 * How one kind of parsed row maps onto its table. user_id and ingestion_id are added by the
 * writer; `conflict` is the natural key (with user_id first) that makes re-sends idempotent.
 */
export interface SampleTable<R> {
  kind: SampleKind;
  /** Label used in answers and metrics. */
  label: string;
  table: PartitionedTable;
  timeColumn: string;
  columns: Column<R>[];
  conflict: string[];
  time: (row: R) => number;
  key: (row: R) => string;
}

const iso = (i: Instant): string => new Date(i.epochMs).toISOString();
const isoOrNull = (i: Instant | null): string | null => (i ? iso(i) : null);
const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

const timeColumns = <R>(get: (row: R) => Instant): Column<R>[] => [
  { name: 'start_time', type: 'timestamptz', value: (r) => iso(get(r)) },
  { name: 'utc_offset_minutes', type: 'int2', value: (r) => get(r).offsetMinutes },
  { name: 'local_date', type: 'date', value: (r) => get(r).localDate },
];

export const quantityTable: SampleTable<QuantityRow> = {
  kind: 'quantity',
  label: 'quantity',
  table: 'quantity_samples',
  timeColumn: 'start_time',
  columns: [
    { name: 'metric', type: 'text', value: (r) => r.metric },
    ...timeColumns<QuantityRow>((r) => r.time),
    { name: 'source', type: 'text', value: (r) => r.source },
    { name: 'metric_received', type: 'text', value: (r) => r.metricReceived },
    { name: 'qty', type: 'float8', value: (r) => r.qty },
    { name: 'units', type: 'text', value: (r) => r.units },
    { name: 'extra', type: 'jsonb', value: (r) => json(r.extra) },
  ],
  conflict: ['user_id', 'metric', 'start_time', 'source'],
  time: (r) => r.time.epochMs,
  key: (r) => `${r.metric}\u0000${r.time.epochMs}\u0000${r.source}`,
};

export const heartRateTable: SampleTable<HeartRateRow> = {
  kind: 'heartRate',
  label: 'heart_rate',
  table: 'heart_rate_samples',
  timeColumn: 'start_time',
  columns: [
    ...timeColumns<HeartRateRow>((r) => r.time),
    { name: 'source', type: 'text', value: (r) => r.source },
    { name: 'min_bpm', type: 'float8', value: (r) => r.min },
    { name: 'avg_bpm', type: 'float8', value: (r) => r.avg },
    { name: 'max_bpm', type: 'float8', value: (r) => r.max },
    { name: 'units', type: 'text', value: (r) => r.units },
  ],
  conflict: ['user_id', 'start_time', 'source'],
  time: (r) => r.time.epochMs,
  key: (r) => `${r.time.epochMs}\u0000${r.source}`,
};

export const bloodPressureTable: SampleTable<BloodPressureRow> = {
  kind: 'bloodPressure',
  label: 'blood_pressure',
  table: 'blood_pressure_samples',
  timeColumn: 'start_time',
  columns: [
    ...timeColumns<BloodPressureRow>((r) => r.time),
    { name: 'source', type: 'text', value: (r) => r.source },
    { name: 'systolic', type: 'float8', value: (r) => r.systolic },
    { name: 'diastolic', type: 'float8', value: (r) => r.diastolic },
    { name: 'units', type: 'text', value: (r) => r.units },
  ],
  conflict: ['user_id', 'start_time', 'source'],
  time: (r) => r.time.epochMs,
  key: (r) => `${r.time.epochMs}\u0000${r.source}`,
};

export const sleepTable: SampleTable<SleepRow> = {
  kind: 'sleep',
  label: 'sleep',
  table: 'sleep_sessions',
  timeColumn: 'start_time',
  columns: [
    { name: 'start_time', type: 'timestamptz', value: (r) => iso(r.start) },
    { name: 'utc_offset_minutes', type: 'int2', value: (r) => r.start.offsetMinutes },
    // The night belongs to the day the entry is dated (HAE dates it by its end, local time).
    { name: 'local_date', type: 'date', value: (r) => r.date.localDate },
    { name: 'source', type: 'text', value: (r) => r.source },
    { name: 'entry_date', type: 'timestamptz', value: (r) => iso(r.date) },
    { name: 'end_time', type: 'timestamptz', value: (r) => isoOrNull(r.end) },
    { name: 'in_bed_start', type: 'timestamptz', value: (r) => isoOrNull(r.inBedStart) },
    { name: 'in_bed_end', type: 'timestamptz', value: (r) => isoOrNull(r.inBedEnd) },
    { name: 'sleep_source', type: 'text', value: (r) => r.sleepSource },
    { name: 'in_bed_source', type: 'text', value: (r) => r.inBedSource },
    { name: 'total_sleep', type: 'float8', value: (r) => r.totalSleep },
    { name: 'asleep', type: 'float8', value: (r) => r.asleep },
    { name: 'core', type: 'float8', value: (r) => r.core },
    { name: 'deep', type: 'float8', value: (r) => r.deep },
    { name: 'rem', type: 'float8', value: (r) => r.rem },
    { name: 'awake', type: 'float8', value: (r) => r.awake },
    { name: 'in_bed', type: 'float8', value: (r) => r.inBed },
    { name: 'efficiency', type: 'float8', value: (r) => r.efficiency },
    { name: 'units', type: 'text', value: (r) => r.units },
  ],
  conflict: ['user_id', 'start_time', 'source'],
  time: (r) => r.start.epochMs,
  key: (r) => `${r.start.epochMs}\u0000${r.source}`,
};

export const workoutTable: SampleTable<WorkoutRow> = {
  kind: 'workouts',
  label: 'workouts',
  table: 'workouts',
  timeColumn: 'start_time',
  columns: [
    { name: 'workout_id', type: 'text', value: (r) => r.workoutId },
    ...timeColumns<WorkoutRow>((r) => r.start),
    { name: 'end_time', type: 'timestamptz', value: (r) => iso(r.end) },
    { name: 'name', type: 'text', value: (r) => r.name },
    { name: 'duration_seconds', type: 'float8', value: (r) => r.durationSeconds },
    { name: 'location', type: 'text', value: (r) => r.location },
    { name: 'is_indoor', type: 'bool', value: (r) => r.isIndoor },
    { name: 'active_energy', type: 'float8', value: (r) => r.activeEnergy?.qty ?? null },
    { name: 'active_energy_units', type: 'text', value: (r) => r.activeEnergy?.units ?? null },
    { name: 'total_energy', type: 'float8', value: (r) => r.totalEnergy?.qty ?? null },
    { name: 'total_energy_units', type: 'text', value: (r) => r.totalEnergy?.units ?? null },
    { name: 'distance', type: 'float8', value: (r) => r.distance?.qty ?? null },
    { name: 'distance_units', type: 'text', value: (r) => r.distance?.units ?? null },
    { name: 'heart_rate_min', type: 'float8', value: (r) => r.heartRateMin },
    { name: 'heart_rate_avg', type: 'float8', value: (r) => r.heartRateAvg },
    { name: 'heart_rate_max', type: 'float8', value: (r) => r.heartRateMax },
    { name: 'summaries', type: 'jsonb', value: (r) => JSON.stringify(r.summaries) },
    { name: 'metadata', type: 'jsonb', value: (r) => json(r.metadata) },
  ],
  conflict: ['user_id', 'workout_id', 'start_time'],
  time: (r) => r.start.epochMs,
  key: (r) => `${r.workoutId}\u0000${r.start.epochMs}`,
};
