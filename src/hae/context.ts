import type { ItemRejection } from '../../broker/types.js';
import type { RejectionReason } from '../errors.js';
import type { ValidationLimits } from './limits.js';
import type { ParsedPayload, SampleKind } from './types.js';
import { storableText } from '../storable-text.js';
import { dateBoundsAt, Problem, type DateBounds } from './validate.js';

/** The row type stored for each sample kind (the ParsedPayload array of the same name). */
export type RowOf<K extends SampleKind> = ParsedPayload[K][number];

type NotStoredEntry = ParsedPayload['notStored'][number];

/** Collects rows, counts, rejections and not-stored parts while a payload is walked. */
export class ParseContext {
  readonly bounds: DateBounds;
  readonly limits: ValidationLimits;
  readonly result: ParsedPayload;
  private readonly notStoredByKey = new Map<string, NotStoredEntry>();
  private readonly mayContainNul: boolean;
  /** The caller gives the input up: sections detach what they have read (see ParseOptions). */
  readonly releaseInput: boolean;
  /** Told how many points were detached (see ParseOptions.onInputReleased). */
  readonly onInputReleased: ((points: number) => void) | undefined;

  constructor(
    now: Date,
    limits: ValidationLimits,
    options: { mayContainNul?: boolean; releaseInput?: boolean; onInputReleased?: ((points: number) => void) | undefined } = {},
  ) {
    this.limits = limits;
    this.mayContainNul = options.mayContainNul ?? true;
    this.releaseInput = options.releaseInput ?? false;
    this.onInputReleased = options.onInputReleased;
    // An invalid `now` must not disable the range check (NaN compares false with everything).
    const safeNow = Number.isFinite(now.getTime()) ? now : new Date();
    this.bounds = dateBoundsAt(safeNow);
    // A literal, not a loop over sampleKinds: one object shape for every payload, whose counts are then
    // updated in place (the type lists every kind, so none can be missing).
    const received: Record<SampleKind, number> = {
      quantity: 0,
      heartRate: 0,
      bloodPressure: 0,
      sleep: 0,
      sleepSegments: 0,
      workouts: 0,
      workoutSeries: 0,
      workoutRoute: 0,
      stateOfMind: 0,
      medications: 0,
      symptoms: 0,
      cycleTracking: 0,
      ecg: 0,
      heartRateNotifications: 0,
    };
    this.result = {
      quantity: [],
      heartRate: [],
      bloodPressure: [],
      sleep: [],
      sleepSegments: [],
      workouts: [],
      workoutSeries: [],
      workoutRoute: [],
      stateOfMind: [],
      medications: [],
      symptoms: [],
      cycleTracking: [],
      ecg: [],
      heartRateNotifications: [],
      received,
      rejections: [],
      notStored: [],
    };
  }

  /** A valid item of `kind`: counted as received and kept. */
  accept<K extends SampleKind>(kind: K, row: RowOf<K>): void {
    this.result.received[kind]++;
    (this.result[kind] as Array<RowOf<K>>).push(row);
  }

  /** An invalid item of `kind`: counted as received and rejected. */
  rejectItem(kind: SampleKind, type: string, path: string, name: string | undefined, problem: Problem): void {
    this.result.received[kind]++;
    this.reject(type, path, name, problem);
  }

  /**
   * One item of `kind` (a row or a Problem) at `path` (with `index`: element `index` of the
   * array at `path`): kept, or counted and rejected. Returns whether it was kept. Every row passes
   * here, so this is where text the database cannot hold (U+0000, refused by both text and jsonb)
   * turns the item into a rejection instead of failing the whole payload's transaction.
   */
  settle<K extends SampleKind>(kind: K, outcome: RowOf<K> | Problem, type: string, path: string, name: string | undefined, index?: number): boolean {
    const problem = outcome instanceof Problem ? outcome : ((this.mayContainNul ? nulProblem(outcome) : null) ?? longTextProblem(outcome));
    if (problem) {
      // The item's own path is built only for a rejection: for a kept item it would be garbage at once.
      this.rejectItem(kind, type, index === undefined ? path : `${path}[${index}]`, name, problem);
      return false;
    }
    this.accept(kind, outcome as RowOf<K>);
    return true;
  }

  /**
   * A rejection that belongs to no sample kind (a whole metric object, the envelope). Its texts
   * are saved as jsonb with the payload's status, so a U+0000 copied from a name or key must not
   * reach them: it would fail that transaction and lose every row of the payload.
   */
  reject(type: string, path: string, name: string | undefined, problem: Problem): void {
    const rejection: ItemRejection = { type: storableText(type), path: storableText(path), reason: problem.reason, message: storableText(problem.message) };
    if (name !== undefined) rejection.name = storableText(name);
    if (problem.field !== undefined) rejection.field = storableText(problem.field);
    this.result.rejections.push(rejection);
  }

  /** Items kept only in the raw payload; entries of the same type and reason are summed. */
  notStored(receivedType: string, items: number, reason: RejectionReason): void {
    const type = storableText(receivedType);
    const key = `${reason}\u0000${type}`;
    const existing = this.notStoredByKey.get(key);
    if (existing !== undefined) {
      existing.items += items;
      return;
    }
    const entry: NotStoredEntry = { type, items, reason };
    this.notStoredByKey.set(key, entry);
    this.result.notStored.push(entry);
  }
}

const NUL = '\u0000';

/**
 * Text columns of a row (names, sources, ids, units) are mostly natural keys: a btree entry over
 * ~2.7 kB fails the whole INSERT, and with it every row of the payload. No real name is this long.
 */
export const MAX_TEXT_FIELD_BYTES = 1_024;

/** A Problem when a text field of the row (not its nested metadata) is over MAX_TEXT_FIELD_BYTES. */
function longTextProblem(row: unknown): Problem | null {
  if (row === null || typeof row !== 'object') return null;
  // for…in rather than Object.entries: this runs for every sample, and rows are plain objects.
  for (const field in row) {
    const value = (row as Record<string, unknown>)[field];
    // Three bytes per UTF-16 unit at most: short strings need no byte count.
    if (typeof value !== 'string' || value.length * 3 <= MAX_TEXT_FIELD_BYTES) continue;
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > MAX_TEXT_FIELD_BYTES) {
      return new Problem(field, 'text_too_long', `${field} is ${bytes} bytes long; the limit for a text field is ${MAX_TEXT_FIELD_BYTES} bytes`);
    }
  }
  return null;
}

/** A Problem when any string (value or key) inside the row contains U+0000. */
function nulProblem(row: unknown): Problem | null {
  const found = findNul(row, '', 0);
  return found === null ? null : new Problem(found || undefined, 'unstorable_text', `${found || 'A text'} contains the character U+0000, which the database cannot store`);
}

function findNul(value: unknown, field: string, depth: number): string | null {
  if (typeof value === 'string') return value.includes(NUL) ? field : null;
  if (value === null || typeof value !== 'object' || depth > 80) return null;
  for (const [key, child] of Object.entries(value)) {
    const childField = field ? `${field}.${key}` : key;
    if (key.includes(NUL)) return field || 'a key';
    const hit = findNul(child, childField, depth + 1);
    if (hit !== null) return hit;
  }
  return null;
}
