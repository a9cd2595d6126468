import type {
  BloodPressureRow,
  CycleTrackingRow,
  EcgRow,
  HeartRateNotificationRow,
  HeartRateRow,
  Instant,
  MedicationRow,
  QuantityRow,
  SampleKind,
  SleepRow,
  SleepSegmentRow,
  StateOfMindRow,
  SymptomRow,
  WorkoutRoutePointRow,
  WorkoutRow,
  WorkoutSeriesRow,
} from '../hae/types.js';
import type { PartitionedTable } from './partitions.js';

export interface Column<R> {
  name: string;
  /**
   * Array element type for unnest, one of binary-array.ts's ElementType. A 'timestamptz'
   * column's value is epoch milliseconds, a 'date' column's a `YYYY-MM-DD` string.
   */
  type: string;
  value: (row: R) => unknown;
  /**
   * SQL turning the unnested value (`ref`, e.g. `u.labels`) into the column's value. For array
   * columns: unnest() of a 2-D array would yield scalars, not one array per row, so an array
   * travels as one jsonb or text value per row and is converted back here.
   */
  select?: (ref: string) => string;
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
  /** Epoch milliseconds of the row's time column: part of every natural key. */
  time: (row: R) => number;
  /**
   * The natural key's other parts (besides the user and `time`) as one string (`''` when there
   * are none). Kept apart from the time so that finding duplicates needs no number turned into text.
   */
  keyRest: (row: R) => string;
  /**
   * A part of `keyRest` (`''` when none is needed) such that rows of one group whose times
   * strictly increase cannot share a key. Payloads list each metric's points in time order, so
   * the writer can then skip building a million key strings.
   */
  keyGroup?: (row: R) => string;
  /** Caps the writer's chunk size for tables with large rows (one ECG reading is ~250 kB of text). */
  maxChunkRows?: number;
}

/**
 * Rows by natural key (user, `time`, `keyRest`), found through nested maps rather than one key
 * string per row: turning a 13-digit time into text and joining it cost ~0.25 µs per row, and
 * the strings were garbage at once.
 */
export class NaturalKeyIndex<R> {
  readonly #table: SampleTable<R>;
  readonly #byUser = new Map<string, Map<string, Map<number, number>>>();

  constructor(table: SampleTable<R>) {
    this.#table = table;
  }

  /** The position recorded for this row's key of `user`; when there is none, records `position` and returns it. */
  positionOf(user: string, row: R, position: number): number {
    let byRest = this.#byUser.get(user);
    if (byRest === undefined) this.#byUser.set(user, (byRest = new Map()));
    const rest = this.#table.keyRest(row);
    let byTime = byRest.get(rest);
    if (byTime === undefined) byRest.set(rest, (byTime = new Map()));
    const time = this.#table.time(row);
    const recorded = byTime.get(time);
    if (recorded !== undefined) return recorded;
    byTime.set(time, position);
    return position;
  }
}

// Instants travel as epoch milliseconds, encoded exactly as binary timestamptz by the writer.
const instantMs = (i: Instant): number => i.epochMs;
const instantMsOrNull = (i: Instant | null): number | null => (i ? i.epochMs : null);
const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

const textOrNull = (v: string | number | null): string | null => (v === null ? null : String(v));

/** text[] from a jsonb array of strings, in order. */
const textArrayFromJson = (ref: string): string =>
  `ARRAY(SELECT e FROM jsonb_array_elements_text(${ref}) WITH ORDINALITY AS a(e, i) ORDER BY i)::text[]`;

/**
 * A float8[] literal: JavaScript writes the shortest text that reads back as the same double,
 * and PostgreSQL's float8 input reads it exactly, so values round-trip bit for bit. Parsing one
 * literal is far cheaper than a jsonb array of 15,000 numbers.
 */
const float8ArrayLiteral = (values: readonly number[]): string => `{${values.map(String).join(',')}}`;

const timeColumns = <R>(get: (row: R) => Instant): Column<R>[] => [
  { name: 'start_time', type: 'timestamptz', value: (r) => instantMs(get(r)) },
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
  keyRest: (r) => `${r.metric}\u0000${r.source}`,
  keyGroup: (r) => r.metric,
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
  keyRest: (r) => r.source,
  keyGroup: () => '',
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
  keyRest: (r) => r.source,
  keyGroup: () => '',
};

export const sleepTable: SampleTable<SleepRow> = {
  kind: 'sleep',
  label: 'sleep',
  table: 'sleep_sessions',
  timeColumn: 'start_time',
  columns: [
    { name: 'start_time', type: 'timestamptz', value: (r) => instantMs(r.start) },
    { name: 'utc_offset_minutes', type: 'int2', value: (r) => r.start.offsetMinutes },
    // The night belongs to the day the entry is dated (HAE dates it by its end, local time).
    { name: 'local_date', type: 'date', value: (r) => r.date.localDate },
    { name: 'source', type: 'text', value: (r) => r.source },
    { name: 'entry_date', type: 'timestamptz', value: (r) => instantMs(r.date) },
    { name: 'end_time', type: 'timestamptz', value: (r) => instantMsOrNull(r.end) },
    { name: 'in_bed_start', type: 'timestamptz', value: (r) => instantMsOrNull(r.inBedStart) },
    { name: 'in_bed_end', type: 'timestamptz', value: (r) => instantMsOrNull(r.inBedEnd) },
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
  keyRest: (r) => r.source,
};

export const workoutTable: SampleTable<WorkoutRow> = {
  kind: 'workouts',
  label: 'workouts',
  table: 'workouts',
  timeColumn: 'start_time',
  columns: [
    { name: 'workout_id', type: 'text', value: (r) => r.workoutId },
    ...timeColumns<WorkoutRow>((r) => r.start),
    { name: 'end_time', type: 'timestamptz', value: (r) => instantMs(r.end) },
    { name: 'name', type: 'text', value: (r) => r.name },
    { name: 'format_version', type: 'int2', value: (r) => r.formatVersion },
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
  keyRest: (r) => r.workoutId,
};

export const sleepSegmentTable: SampleTable<SleepSegmentRow> = {
  kind: 'sleepSegments',
  label: 'sleep_segments',
  table: 'sleep_segments',
  timeColumn: 'start_time',
  columns: [
    { name: 'source', type: 'text', value: (r) => r.source },
    ...timeColumns<SleepSegmentRow>((r) => r.start),
    { name: 'stage', type: 'text', value: (r) => r.stage },
    { name: 'end_time', type: 'timestamptz', value: (r) => instantMs(r.end) },
    { name: 'value_received', type: 'text', value: (r) => r.valueReceived },
    { name: 'hours', type: 'float8', value: (r) => r.hours },
  ],
  conflict: ['user_id', 'source', 'start_time', 'stage'],
  time: (r) => r.start.epochMs,
  keyRest: (r) => `${r.source}\u0000${r.stage}`,
};

export const workoutSeriesTable: SampleTable<WorkoutSeriesRow> = {
  kind: 'workoutSeries',
  label: 'workout_series',
  table: 'workout_series',
  timeColumn: 'start_time',
  columns: [
    { name: 'workout_id', type: 'text', value: (r) => r.workoutId },
    { name: 'series', type: 'text', value: (r) => r.series },
    ...timeColumns<WorkoutSeriesRow>((r) => r.time),
    { name: 'qty', type: 'float8', value: (r) => r.qty },
    { name: 'min', type: 'float8', value: (r) => r.min },
    { name: 'avg', type: 'float8', value: (r) => r.avg },
    { name: 'max', type: 'float8', value: (r) => r.max },
    { name: 'units', type: 'text', value: (r) => r.units },
    { name: 'source', type: 'text', value: (r) => r.source },
  ],
  conflict: ['user_id', 'workout_id', 'series', 'start_time'],
  time: (r) => r.time.epochMs,
  keyRest: (r) => `${r.workoutId}\u0000${r.series}`,
};

export const workoutRouteTable: SampleTable<WorkoutRoutePointRow> = {
  kind: 'workoutRoute',
  label: 'workout_route',
  table: 'workout_route_points',
  timeColumn: 'start_time',
  columns: [
    { name: 'workout_id', type: 'text', value: (r) => r.workoutId },
    ...timeColumns<WorkoutRoutePointRow>((r) => r.time),
    { name: 'latitude', type: 'float8', value: (r) => r.latitude },
    { name: 'longitude', type: 'float8', value: (r) => r.longitude },
    { name: 'altitude', type: 'float8', value: (r) => r.altitude },
    { name: 'course', type: 'float8', value: (r) => r.course },
    { name: 'course_accuracy', type: 'float8', value: (r) => r.courseAccuracy },
    { name: 'horizontal_accuracy', type: 'float8', value: (r) => r.horizontalAccuracy },
    { name: 'vertical_accuracy', type: 'float8', value: (r) => r.verticalAccuracy },
    { name: 'speed', type: 'float8', value: (r) => r.speed },
    { name: 'speed_accuracy', type: 'float8', value: (r) => r.speedAccuracy },
  ],
  conflict: ['user_id', 'workout_id', 'start_time'],
  time: (r) => r.time.epochMs,
  keyRest: (r) => r.workoutId,
};

export const stateOfMindTable: SampleTable<StateOfMindRow> = {
  kind: 'stateOfMind',
  label: 'state_of_mind',
  table: 'state_of_mind',
  timeColumn: 'start_time',
  columns: [
    { name: 'entry_id', type: 'text', value: (r) => r.entryId },
    ...timeColumns<StateOfMindRow>((r) => r.start),
    { name: 'end_time', type: 'timestamptz', value: (r) => instantMsOrNull(r.end) },
    { name: 'kind', type: 'text', value: (r) => r.kind },
    { name: 'labels', type: 'jsonb', value: (r) => JSON.stringify(r.labels), select: textArrayFromJson },
    { name: 'associations', type: 'jsonb', value: (r) => JSON.stringify(r.associations), select: textArrayFromJson },
    { name: 'valence', type: 'float8', value: (r) => r.valence },
    { name: 'valence_classification', type: 'text', value: (r) => textOrNull(r.valenceClassification) },
    { name: 'metadata', type: 'jsonb', value: (r) => json(r.metadata) },
  ],
  conflict: ['user_id', 'entry_id', 'start_time'],
  time: (r) => r.start.epochMs,
  keyRest: (r) => r.entryId,
};

export const medicationTable: SampleTable<MedicationRow> = {
  kind: 'medications',
  label: 'medications',
  table: 'medications',
  timeColumn: 'start_time',
  columns: [
    { name: 'display_text', type: 'text', value: (r) => r.displayText },
    ...timeColumns<MedicationRow>((r) => r.start),
    { name: 'nickname', type: 'text', value: (r) => r.nickname },
    { name: 'end_time', type: 'timestamptz', value: (r) => instantMsOrNull(r.end) },
    { name: 'scheduled_date', type: 'timestamptz', value: (r) => instantMsOrNull(r.scheduledDate) },
    { name: 'form', type: 'text', value: (r) => r.form },
    { name: 'status', type: 'text', value: (r) => r.status },
    { name: 'is_archived', type: 'bool', value: (r) => r.isArchived },
    { name: 'dosage', type: 'text', value: (r) => textOrNull(r.dosage) },
    { name: 'codings', type: 'jsonb', value: (r) => json(r.codings) },
  ],
  conflict: ['user_id', 'display_text', 'start_time'],
  time: (r) => r.start.epochMs,
  keyRest: (r) => r.displayText,
};

export const symptomTable: SampleTable<SymptomRow> = {
  kind: 'symptoms',
  label: 'symptoms',
  table: 'symptoms',
  timeColumn: 'start_time',
  columns: [
    { name: 'name', type: 'text', value: (r) => r.name },
    ...timeColumns<SymptomRow>((r) => r.start),
    { name: 'source', type: 'text', value: (r) => r.source },
    { name: 'end_time', type: 'timestamptz', value: (r) => instantMsOrNull(r.end) },
    { name: 'severity', type: 'text', value: (r) => r.severity },
    { name: 'user_entered', type: 'bool', value: (r) => r.userEntered },
  ],
  conflict: ['user_id', 'name', 'start_time', 'source'],
  time: (r) => r.start.epochMs,
  keyRest: (r) => `${r.name}\u0000${r.source}`,
};

export const cycleTrackingTable: SampleTable<CycleTrackingRow> = {
  kind: 'cycleTracking',
  label: 'cycle_tracking',
  table: 'cycle_tracking',
  timeColumn: 'start_time',
  columns: [
    { name: 'name', type: 'text', value: (r) => r.name },
    ...timeColumns<CycleTrackingRow>((r) => r.start),
    { name: 'source', type: 'text', value: (r) => r.source },
    { name: 'end_time', type: 'timestamptz', value: (r) => instantMsOrNull(r.end) },
    { name: 'value', type: 'text', value: (r) => textOrNull(r.value) },
    { name: 'is_cycle_start', type: 'bool', value: (r) => r.isCycleStart },
  ],
  conflict: ['user_id', 'name', 'start_time', 'source'],
  time: (r) => r.start.epochMs,
  keyRest: (r) => `${r.name}\u0000${r.source}`,
};

export const ecgTable: SampleTable<EcgRow> = {
  kind: 'ecg',
  label: 'ecg',
  table: 'ecg_readings',
  timeColumn: 'start_time',
  columns: [
    ...timeColumns<EcgRow>((r) => r.start),
    { name: 'source', type: 'text', value: (r) => r.source },
    { name: 'end_time', type: 'timestamptz', value: (r) => instantMsOrNull(r.end) },
    { name: 'classification', type: 'text', value: (r) => r.classification },
    { name: 'severity', type: 'text', value: (r) => r.severity },
    { name: 'average_heart_rate', type: 'float8', value: (r) => r.averageHeartRate },
    { name: 'number_of_voltage_measurements', type: 'int4', value: (r) => r.numberOfVoltageMeasurements },
    { name: 'sampling_frequency_hz', type: 'float8', value: (r) => r.samplingFrequencyHz },
    { name: 'voltages', type: 'text', value: (r) => float8ArrayLiteral(r.voltages), select: (ref) => `${ref}::float8[]` },
    { name: 'voltage_units', type: 'text', value: (r) => r.voltageUnits },
  ],
  conflict: ['user_id', 'start_time', 'source'],
  time: (r) => r.start.epochMs,
  keyRest: (r) => r.source,
  maxChunkRows: 100,
};

export const heartRateNotificationTable: SampleTable<HeartRateNotificationRow> = {
  kind: 'heartRateNotifications',
  label: 'heart_rate_notifications',
  table: 'heart_rate_notifications',
  timeColumn: 'start_time',
  columns: [
    ...timeColumns<HeartRateNotificationRow>((r) => r.start),
    { name: 'end_time', type: 'timestamptz', value: (r) => instantMsOrNull(r.end) },
    { name: 'threshold', type: 'float8', value: (r) => r.threshold },
    { name: 'heart_rate', type: 'jsonb', value: (r) => JSON.stringify(r.heartRate) },
    { name: 'heart_rate_variation', type: 'jsonb', value: (r) => JSON.stringify(r.heartRateVariation) },
  ],
  conflict: ['user_id', 'start_time'],
  time: (r) => r.start.epochMs,
  keyRest: () => '',
};
