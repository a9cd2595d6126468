import { setImmediate } from 'node:timers/promises';
import type pg from 'pg';
import type { ItemRejection, ProcessingResult, TypeCounts } from '../../broker/types.js';
import { metricTimeSpans } from '../hae/metric-time-spans.js';
import { parseHaePayload, parseHaePayloadInSteps } from '../hae/parse.js';
import type { ValidationLimits } from '../hae/limits.js';
import type { ParsedPayload } from '../hae/types.js';
import { inTransactions } from '../store/pool.js';
import { monthsBetween, monthsOf, type PartitionManager } from '../store/partitions.js';
import {
  bloodPressureTable,
  cycleTrackingTable,
  ecgTable,
  heartRateNotificationTable,
  heartRateTable,
  medicationTable,
  quantityTable,
  sleepSegmentTable,
  sleepTable,
  stateOfMindTable,
  symptomTable,
  workoutRouteTable,
  workoutSeriesTable,
  workoutTable,
  type SampleTable,
} from '../store/sample-tables.js';
import { writeSamples } from '../store/sample-writer.js';
import { StreamingWrite, StreamNotWritable } from '../store/streaming-writer.js';
import { errorMessage } from '../errors.js';

// A payload with a million bad points must not produce a million-entry answer or row.
const MAX_REPORTED_REJECTIONS = 1_000;

/** The rejections a payload's answer and its raw_ingestions row list (all of them are counted). */
export function reportedRejections(parsed: ParsedPayload): ItemRejection[] {
  return parsed.rejections.slice(0, MAX_REPORTED_REJECTIONS);
}

/** While rows are written as they are parsed, the parser lets I/O run after this many points (default). */
const POINTS_PER_PARSE_STEP = 8_192;
/** Tables written while the payload is parsed: the ones metrics fill, point by point in time order. */
const tablesWrittenWhileParsing: ReadonlyArray<SampleTable<unknown>> = [quantityTable as SampleTable<unknown>, heartRateTable as SampleTable<unknown>];
/** A metric spanning more months than this (a date far off) is not planned for: its rows then stop the writing while parsing. */
const MAX_PLANNED_MONTHS = 240;

export interface PayloadInput {
  json: unknown;
  mayContainNul: boolean;
  onRowsBuilt?: () => void;
  onInputReleased?: (points: number) => void;
  /**
   * Write rows while the rest of the payload is parsed (worth it for large payloads): the
   * metrics' rows go to the database chunk by chunk as they are read, and PostgreSQL inserts
   * while Node parses.
   */
  writeWhileParsing?: boolean;
}

export interface Job<R> {
  table: SampleTable<R>;
  rows: readonly R[];
}

/** Every sample table, in the order payloads are written (workouts before their series and routes). */
export const tablesInWriteOrder: ReadonlyArray<SampleTable<unknown>> = [
  quantityTable,
  heartRateTable,
  bloodPressureTable,
  sleepTable,
  sleepSegmentTable,
  workoutTable,
  workoutSeriesTable,
  workoutRouteTable,
  stateOfMindTable,
  medicationTable,
  symptomTable,
  cycleTrackingTable,
  ecgTable,
  heartRateNotificationTable,
] as ReadonlyArray<SampleTable<unknown>>;

/** The parsed rows of `table`'s data type. */
export const rowsFor = (parsed: ParsedPayload, table: SampleTable<unknown>): readonly unknown[] => parsed[table.kind];

/** One job per data type, in write order. */
export function jobsOf(parsed: ParsedPayload): Job<unknown>[] {
  return tablesInWriteOrder.map((table) => ({ table, rows: rowsFor(parsed, table) }));
}

/** Rows a parsed payload would write, over all tables. */
export function rowCountOf(parsed: ParsedPayload): number {
  let n = 0;
  for (const table of tablesInWriteOrder) n += rowsFor(parsed, table).length;
  return n;
}

/**
 * The database refused a row the parser accepted (a CHECK or NOT NULL constraint): the parser and
 * migration 0002 disagree. The whole payload's transaction is rolled back; the message names the
 * data type and the constraint, and leaves out PostgreSQL's DETAIL (it can hold a whole ECG).
 */
export class ConstraintViolationError extends Error {
  constructor(
    readonly label: string,
    readonly constraint: string | undefined,
    readonly sqlState: string,
    cause: unknown,
  ) {
    super(
      `${label}: the database refused a row the parser accepted` +
        (constraint ? `: constraint ${constraint} failed` : '') +
        ` (${errorMessage(cause)})`,
      { cause },
    );
    this.name = 'ConstraintViolationError';
  }
}

/** Names the data type (and constraint) in errors caused by a row's values; others pass as they are. */
export function explainWriteError(label: string, err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const { code, constraint } = err as Error & { code?: unknown; constraint?: unknown };
  if (typeof code !== 'string') return err;
  // Class 23: integrity constraint violations. Permanent, so not retried as transient.
  if (code.startsWith('23')) return new ConstraintViolationError(label, typeof constraint === 'string' ? constraint : undefined, code, err);
  // 22021 (text) / 22P05 (jsonb): PostgreSQL cannot store U+0000 in a string.
  if (code === '22021' || code === '22P05') {
    return new Error(`${label}: a text value contains a character PostgreSQL cannot store (U+0000) (${err.message})`, { cause: err });
  }
  return err;
}

export interface RejectionTally {
  type: string;
  reason: string;
  count: number;
}

export interface ProcessedPayload {
  result: ProcessingResult;
  /** Every rejection counted by type and reason (the result lists only the first ones). */
  rejectionTallies: RejectionTally[];
  /**
   * Present when rows were to be written while the payload was parsed: null when they were,
   * else why everything was rolled back and written after the parse instead.
   */
  writtenAfterParseBecause?: string | null;
}

/**
 * Turns one stored raw payload into samples. A payload larger than one chunk is written by
 * `writeConnections` connections at once, each in its own transaction; the transactions commit
 * together at the end (the one holding the status update last), and any error before that rolls
 * all of them back. A crash between those commits leaves the payload 'received' with some rows
 * already in place: it is processed again at the next start, and the upserts make that harmless.
 */
export class PayloadProcessor {
  readonly #pool: pg.Pool;
  readonly #partitions: PartitionManager;
  readonly #chunkRows: number;
  readonly #limits: ValidationLimits;
  readonly #writeConnections: number;
  readonly #pointsPerParseStep: number;

  constructor(deps: {
    pool: pg.Pool;
    partitions: PartitionManager;
    chunkRows: number;
    limits: ValidationLimits;
    writeConnections?: number;
    pointsPerParseStep?: number;
  }) {
    this.#pool = deps.pool;
    this.#partitions = deps.partitions;
    this.#chunkRows = deps.chunkRows;
    this.#limits = deps.limits;
    this.#writeConnections = Math.max(1, deps.writeConnections ?? 2);
    this.#pointsPerParseStep = Math.max(1, deps.pointsPerParseStep ?? POINTS_PER_PARSE_STEP);
  }

  /**
   * `mayContainNul: false` promises that no string in `json` holds U+0000 (its JSON text has no
   * `\u0000` escape), which spares the per-row check.
   */
  async process(ingestionId: string, userId: string, json: unknown, options: { mayContainNul?: boolean } = {}): Promise<ProcessedPayload> {
    const parsed = parseHaePayload(json, { limits: this.#limits, mayContainNul: options.mayContainNul ?? true });
    return this.#write(ingestionId, userId, parsed);
  }

  /**
   * Like process(), but consumes `payload`: the parsed JSON is taken apart while its rows are
   * built and dropped, so that a large tree can be collected while the rows are written.
   */
  async processPayload(ingestionId: string, userId: string, payload: PayloadInput): Promise<ProcessedPayload> {
    const json = payload.json;
    payload.json = undefined;
    const options = { limits: this.#limits, mayContainNul: payload.mayContainNul, releaseInput: true, onInputReleased: payload.onInputReleased };
    if (payload.writeWhileParsing) return this.#processWhileParsing(ingestionId, userId, json, options, payload.onRowsBuilt);
    const parsed = parseHaePayload(json, options);
    payload.onRowsBuilt?.();
    return this.#write(ingestionId, userId, parsed);
  }

  /**
   * Parses in steps and writes the metrics' rows while the rest is parsed (StreamingWrite), in
   * the same transactions as the other tables' rows and the status update. When the rows cannot
   * be written that way (not in key order, a month not planned for), everything written is
   * rolled back and the finished rows are written the usual way: same rows, same counts.
   */
  async #processWhileParsing(
    ingestionId: string,
    userId: string,
    json: unknown,
    options: Parameters<typeof parseHaePayload>[1],
    onRowsBuilt: (() => void) | undefined,
  ): Promise<ProcessedPayload> {
    await this.#planPartitions(json);
    const steps = parseHaePayloadInSteps(json, options, this.#pointsPerParseStep);
    json = undefined;
    let step = steps.next();
    const parsed = step.value;
    try {
      return await inTransactions(this.#pool, this.#writeConnections, async (clients) => {
        const stream = new StreamingWrite(
          clients,
          tablesWrittenWhileParsing.map((table) => ({ table, rows: parsed[table.kind] as readonly unknown[] })),
          { userId, ingestionId, chunkRows: this.#chunkRows },
          { partitions: this.#partitions, explain: explainWriteError },
        );
        stream.start();
        try {
          while (!step.done) {
            stream.offer();
            await setImmediate();
            step = steps.next();
          }
        } catch (err) {
          await stream.abort();
          throw err;
        }
        onRowsBuilt?.();
        const streamed = await stream.finish();
        const rest = jobsOf(parsed).filter((j) => !streamed.has(j.table) && j.rows.length > 0);
        await Promise.all(rest.map(({ table, rows }) => this.#partitions.ensureMonths(table.table, monthsOf(rows, table.time))));
        return { ...(await this.#writeAndMark(clients, ingestionId, userId, parsed, streamed)), writtenAfterParseBecause: null };
      });
    } catch (err) {
      if (!(err instanceof StreamNotWritable)) throw err;
      return { ...(await this.#write(ingestionId, userId, parsed)), writtenAfterParseBecause: err.reason };
    }
  }

  /** Partitions for the months each metric's points span (first to last point), made ready before any row is written. */
  async #planPartitions(json: unknown): Promise<void> {
    const monthsByTable = new Map<SampleTable<unknown>, Set<string>>();
    for (const span of metricTimeSpans(json)) {
      const table = tablesWrittenWhileParsing.find((t) => t.kind === span.kind);
      const months = table && monthsBetween(span.fromMs, span.toMs, MAX_PLANNED_MONTHS);
      if (!table || !months) continue;
      const set = monthsByTable.get(table) ?? new Set<string>();
      for (const month of months) set.add(month);
      monthsByTable.set(table, set);
    }
    await Promise.all([...monthsByTable].map(([table, months]) => this.#partitions.ensureMonths(table.table, months)));
  }

  async #write(ingestionId: string, userId: string, parsed: ParsedPayload): Promise<ProcessedPayload> {
    const jobs = jobsOf(parsed);
    let totalRows = 0;
    const partitionsReady: Array<Promise<void>> = [];
    for (const { table, rows } of jobs) {
      if (rows.length === 0) continue;
      totalRows += rows.length;
      // Tables side by side: a year of new months is a round trip and a CREATE TABLE each.
      partitionsReady.push(this.#partitions.ensureMonths(table.table, monthsOf(rows, table.time)));
    }
    await Promise.all(partitionsReady);
    const lanes = totalRows > this.#chunkRows ? this.#writeConnections : 1;
    return inTransactions(this.#pool, lanes, (clients) => this.#writeAndMark(clients, ingestionId, userId, parsed, new Map()));
  }

  /**
   * Writes every table's rows but those already `written` (with their counts), then marks the
   * payload processed, inside the caller's transactions.
   */
  async #writeAndMark(
    clients: pg.PoolClient[],
    ingestionId: string,
    userId: string,
    parsed: ParsedPayload,
    written: ReadonlyMap<SampleTable<unknown>, { inserted: number; updated: number }>,
  ): Promise<ProcessedPayload> {
    const counts: Record<string, TypeCounts> = {};
    const rejections = reportedRejections(parsed);
    for (const { table, rows } of jobsOf(parsed)) {
      const received = parsed.received[table.kind];
      if (received === 0 && rows.length === 0) continue;
      const done = written.get(table);
      const counted = done
        ? { ...done, unchanged: rows.length - done.inserted - done.updated }
        : await writeSamples(clients, table, rows, { userId, ingestionId, chunkRows: this.#chunkRows }).catch((err: unknown) => {
            throw explainWriteError(table.label, err);
          });
      counts[table.label] = { received, ...counted, rejected: received - rows.length };
    }
    await clients[0]!.query(
      `UPDATE raw_ingestions SET status = 'processed', processed_at = now(), attempts = attempts + 1, counts = $2,
         rejected_count = $3, rejections = $4, not_stored = $5, error = NULL WHERE id = $1`,
      [ingestionId, JSON.stringify(counts), parsed.rejections.length, JSON.stringify(rejections), JSON.stringify(parsed.notStored)],
    );
    return {
      result: { ingestionId, counts, rejections, notStored: parsed.notStored },
      rejectionTallies: tallyRejections(parsed.rejections),
    };
  }
}

export function tallyRejections(rejections: readonly ItemRejection[]): RejectionTally[] {
  // Nearly every payload: no Map for nothing.
  if (rejections.length === 0) return [];
  const byReason = new Map<string, RejectionTally>();
  for (const r of rejections) {
    const key = `${r.type}\u0000${r.reason}`;
    const tally = byReason.get(key) ?? { type: r.type, reason: r.reason, count: 0 };
    tally.count++;
    byReason.set(key, tally);
  }
  return [...byReason.values()];
}
