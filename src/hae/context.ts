import type { ItemRejection } from '../../broker/types.js';
import type { RejectionReason } from '../errors.js';
import { sampleKinds, type ParsedPayload, type SampleKind } from './types.js';
import { dateBoundsAt, type DateBounds, type Problem } from './validate.js';

/** The row type stored for each sample kind (the ParsedPayload array of the same name). */
export type RowOf<K extends SampleKind> = ParsedPayload[K][number];

type NotStoredEntry = ParsedPayload['notStored'][number];

/** Collects rows, counts, rejections and not-stored parts while a payload is walked. */
export class ParseContext {
  readonly bounds: DateBounds;
  readonly result: ParsedPayload;
  private readonly notStoredByKey = new Map<string, NotStoredEntry>();

  constructor(now: Date) {
    // An invalid `now` must not disable the range check (NaN compares false with everything).
    const safeNow = Number.isFinite(now.getTime()) ? now : new Date();
    this.bounds = dateBoundsAt(safeNow);
    const received = {} as Record<SampleKind, number>;
    for (const kind of sampleKinds) received[kind] = 0;
    this.result = { quantity: [], heartRate: [], bloodPressure: [], sleep: [], workouts: [], received, rejections: [], notStored: [] };
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

  /** A rejection that belongs to no sample kind (a whole metric object, the envelope). */
  reject(type: string, path: string, name: string | undefined, problem: Problem): void {
    const rejection: ItemRejection = { type, path, reason: problem.reason, message: problem.message };
    if (name !== undefined) rejection.name = name;
    if (problem.field !== undefined) rejection.field = problem.field;
    this.result.rejections.push(rejection);
  }

  /** Items kept only in the raw payload; entries of the same type and reason are summed. */
  notStored(type: string, items: number, reason: RejectionReason): void {
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
