/**
 * Text that tries to escape its field: SQL, control characters, placeholders, escapes, bidi and
 * emoji. Every one of them must come back from the database exactly as sent.
 */
const controlCharacters = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join('');

export const hostileStrings: readonly string[] = [
  "'; DROP TABLE raw_ingestions; --",
  "Robert'); DELETE FROM users WHERE ('1'='1",
  '" OR 1=1; SELECT pg_sleep(10); --',
  `control ${controlCharacters} end`,
  '$1 $2 $$ $tag$ ${user} %s %n {{x}}',
  'back\\slash \\x00 \\u0000 \\N \\. E\'\\\\\'',
  `quotes ' '' " "" \` ’ “”`,
  'right-to-left \u202egnp.exe\u202c and \u200b zero width',
  'emoji 👩‍⚕️ 🫀 🏃🏽‍♀️ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '<script>alert(1)</script> &amp; \r\n Set-Cookie: x=1',
  'unicode escapes \u00e9\u0301 \ufeff \uffff',
  longText(),
];

/** Exactly the 1,024-byte limit of a text field, in characters that do not compress. */
function longText(): string {
  const text = 'L' + Array.from({ length: 341 }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20_000))).join('');
  if (Buffer.byteLength(text) !== 1_024) throw new Error('longText must be 1,024 bytes');
  return text;
}

/** Strings with U+0000, which PostgreSQL cannot store: refused item by item (unstorable_text). */
export const nulStrings: readonly string[] = ['nul \u0000 inside', '\u0000'];

type Item = Record<string, unknown>;

/** One instant per (kind, index), so no two items share a natural key. */
function at(dayOfMonth: number, index: number, minuteOffset = 0): string {
  const minutes = index * 2 + minuteOffset;
  const hh = String(8 + Math.floor(minutes / 60)).padStart(2, '0');
  const mm = String(minutes % 60).padStart(2, '0');
  return `2025-06-${String(dayOfMonth).padStart(2, '0')} ${hh}:${mm}:00 +0200`;
}

/** What one hostile string must read back as, per table and column. */
export interface TextExpectation {
  table: string;
  column: string;
  /** SQL giving the stored value as text, e.g. `labels[1]`; `wanted.hostile` is the string itself. */
  select: string;
  value: string;
}

export interface HostilePayload {
  body: Record<string, unknown>;
  /** Rows each table must gain. */
  rows: Record<string, number>;
  /** Items that must be refused with unstorable_text. */
  nulItems: number;
  /** Items that must be refused with text_too_long. */
  tooLongItems: number;
  expectations: TextExpectation[];
}

/**
 * An export with a hostile string in every text field the data model keeps: metric names,
 * units, sources, workout ids, names and metadata (keys and values), state-of-mind kinds,
 * labels and associations, medication texts and codings, symptom and cycle-tracking names and
 * values, ECG texts. Each string gets its own items (distinct dates), so each must come back
 * alone and exactly.
 */
export function hostilePayload(strings: readonly string[] = hostileStrings): HostilePayload {
  const metrics: Item[] = [];
  const workouts: Item[] = [];
  const stateOfMind: Item[] = [];
  const medications: Item[] = [];
  const symptoms: Item[] = [];
  const cycleTracking: Item[] = [];
  const ecg: Item[] = [];
  const expectations: TextExpectation[] = [];
  const expect = (table: string, column: string, value: string, select = column): void => {
    expectations.push({ table, column, select, value });
  };

  strings.forEach((h, i) => {
    metrics.push({ name: h, units: h, data: [{ date: at(1, i), qty: i + 1, source: h }] });
    for (const column of ['metric_received', 'units', 'source']) expect('quantity_samples', column, h);

    workouts.push({ id: h, name: h, location: h, start: at(2, i), end: at(2, i, 1), duration: 60, metadata: { [h]: h } });
    for (const column of ['workout_id', 'name', 'location']) expect('workouts', column, h);
    expect('workouts', 'metadata value', h, 'metadata->>wanted.hostile');
    expect('workouts', 'metadata key', h, '(SELECT k FROM jsonb_object_keys(metadata) AS k)');

    stateOfMind.push({ id: h, start: at(3, i), end: at(3, i), kind: h, labels: [h], associations: [h], valence: 0.1, metadata: { [h]: h } });
    for (const column of ['entry_id', 'kind']) expect('state_of_mind', column, h);
    expect('state_of_mind', 'labels', h, 'labels[1]');
    expect('state_of_mind', 'associations', h, 'associations[1]');
    expect('state_of_mind', 'metadata value', h, 'metadata->>wanted.hostile');

    medications.push({ displayText: h, nickname: h, start: at(4, i), end: at(4, i), form: h, status: h, isArchived: false, dosage: 1, codings: [{ code: h, system: h }] });
    for (const column of ['display_text', 'nickname', 'form', 'status']) expect('medications', column, h);
    expect('medications', 'codings', h, `codings->0->>'code'`);

    symptoms.push({ name: h, start: at(5, i), end: at(5, i), severity: h, userEntered: true, source: h });
    for (const column of ['name', 'severity', 'source']) expect('symptoms', column, h);

    cycleTracking.push({ name: h, start: at(6, i), end: at(6, i), value: h, isCycleStart: false, source: h });
    for (const column of ['name', 'value', 'source']) expect('cycle_tracking', column, h);

    ecg.push({
      start: at(7, i),
      end: at(7, i, 1),
      classification: h,
      severity: h,
      averageHeartRate: 60,
      numberOfVoltageMeasurements: 1,
      samplingFrequency: 512,
      source: h,
      voltageMeasurements: [{ date: at(7, i), voltage: 0.0001, units: h }],
    });
    for (const column of ['classification', 'severity', 'source', 'voltage_units']) expect('ecg_readings', column, h);
  });

  // One byte over the limit of a text field: refused item by item (text_too_long).
  const tooLong = `${longText()}x`;
  metrics.push({ name: 'step_count', units: 'count', data: [{ date: at(9, 0), qty: 1, source: tooLong }] });
  symptoms.push({ name: tooLong, start: at(9, 0), end: at(9, 0), severity: 'Mild', source: 'Health' });
  // Metadata is not limited: a long value is stored whole.
  const longNote = 'n'.repeat(5_000);
  workouts.push({ id: 'long-metadata', name: 'Walk', start: at(9, 0), end: at(9, 0, 1), metadata: { note: longNote } });
  expectations.push({ table: 'workouts', column: 'metadata note', select: `metadata->>'note'`, value: longNote });

  let nulItems = 0;
  nulStrings.forEach((h, i) => {
    metrics.push({ name: 'step_count', units: 'count', data: [{ date: at(8, i), qty: 1, source: h }] });
    symptoms.push({ name: h, start: at(8, i), end: at(8, i), severity: 'Mild', source: 'Health' });
    workouts.push({ id: `nul-${i}`, name: 'Walk', start: at(8, i), end: at(8, i, 1), metadata: { [h]: 'key with NUL' } });
    nulItems += 3;
  });

  const n = strings.length;
  return {
    body: { data: { metrics, workouts, stateOfMind, medications, symptoms, cycleTracking, ecg } },
    rows: { quantity_samples: n, workouts: n + 1, state_of_mind: n, medications: n, symptoms: n, cycle_tracking: n, ecg_readings: n },
    nulItems,
    tooLongItems: 2,
    expectations,
  };
}
