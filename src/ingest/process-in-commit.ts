import type pg from 'pg';
import type { TypeCounts } from '../../broker/types.js';
import type { ValidationLimits } from '../hae/limits.js';
import { parseHaePayload } from '../hae/parse.js';
import type { ParsedPayload } from '../hae/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ElementType } from '../store/binary-array.js';
import type { PartitionManager } from '../store/partitions.js';
import type { SampleTable } from '../store/sample-tables.js';
import { MAX_CHUNK_BYTES } from '../store/sample-writer.js';
import { queryWithoutCopy } from '../store/zero-copy-query.js';
import { errorMessage } from '../errors.js';
import { reportedRejections, rowCountOf, type ProcessedPayload } from './processor.js';
import { RAW_COLUMNS, RAW_ELEMENT_TYPES, rawColumnWriters, type RawRow, type StoredRaw } from './raw-store.js';
import { countsJson, payloadRowsInsertSql, payloadRowsUpsertSql, processedResults, SampleBatch, typeCountsOf } from './sample-batch.js';

/** A small payload ready to be stored: its raw row, and its HAE content parsed when it arrived. */
export interface InCommitPayload {
  row: RawRow;
  parsed: ParsedPayload;
}

/** What the statement did with one payload: stored as for any group commit, and processed when it was new. */
export type InCommitOutcome = StoredRaw & { processed?: ProcessedPayload; processingSeconds?: number };

/** A group cannot be written this way; the caller stores it the plain way (the payloads are then processed in the background). */
export class NotProcessableInCommit extends Error {
  constructor(reason: string, options?: ErrorOptions) {
    super(reason, options);
    this.name = 'NotProcessableInCommit';
  }
}

// The statement's own refusal (see CHECK below): a payload it cannot handle in the group.
const REFUSAL = 'self-sensored: payload';
// lock_timeout expired.
const LOCK_NOT_AVAILABLE = '55P03';
const UNIQUE_VIOLATION = '23505';
/**
 * After a user's group met a stored key (or stored bytes), that user's groups are upserted for
 * this long: an app that re-sends overlapping windows would otherwise pay a failed statement per group.
 */
export const UPSERT_AFTER_CONFLICT_MS = 10 * 60_000;

const sqlStateOf = (err: unknown): unknown => (err instanceof Error ? (err as Error & { code?: unknown }).code : undefined);

/**
 * Stores a group of small payloads and writes their samples in ONE statement, so the group's
 * single COMMIT (the one that releases its acknowledgements) also makes the samples durable:
 * no second transaction per group, no UPDATE of each raw row to mark it processed, no queue.
 *
 * Most groups hold only new data (the app sends what was recorded since its last export), so a
 * group is first written by an insert-only statement: the raw rows and every sample row, each
 * payload's counts computed here (every row kept in the group is inserted). That skips the
 * conflict checks, the speculative insertions and the counting of what the upserts returned,
 * about 40 % of the statement's work. A key or payload the database already holds fails it with a
 * unique violation, which rolls all of it back; the group is then written by the careful
 * statement below, and so are the groups of its users for UPSERT_AFTER_CONFLICT_MS.
 *
 * The careful statement assigns each payload an ingestion id (nextval, in arrival order), skips
 * the payloads whose bytes the user had already sent (they are re-receipts, as in the plain group
 * commit: only receive_count moves), upserts every table's rows with the batch writer's rules
 * (latest export wins, unchanged rows untouched), and inserts each new raw row already
 * 'processed', its counts built from what the upserts returned.
 *
 * Any surprise aborts the whole statement, and the caller falls back to the plain group commit:
 * - bytes stored by another session between the statement's snapshot and its insert;
 * - a re-sent payload whose rows displaced another payload's rows in the group (those rows
 *   would be lost with the re-receipt, which writes nothing);
 * - a row the database refuses, or a group too large to encode in one statement;
 * - a month with no partition yet (creating one locks the table: the background path does it);
 * - a lock on a sample table held longer than the connection's lock_timeout.
 */
export class InCommitProcessor {
  readonly #pool: pg.Pool;
  readonly #partitions: PartitionManager;
  readonly #limits: ValidationLimits;
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  readonly #statements = new Map<string, { name: string; text: string }>();
  /** Per user, until when its groups are upserted (see UPSERT_AFTER_CONFLICT_MS). */
  readonly #upsertUntil = new Map<string, number>();
  readonly #now: () => number;

  /** `pool`: best a connection of its own with a short lock_timeout (Database.groupCommitPool). */
  constructor(deps: { pool: pg.Pool; partitions: PartitionManager; limits: ValidationLimits; metrics: Metrics; logger: Logger; now?: () => number }) {
    this.#pool = deps.pool;
    this.#now = deps.now ?? Date.now;
    this.#partitions = deps.partitions;
    this.#limits = deps.limits;
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
  }

  /**
   * The payload's HAE content and its number of sample rows; undefined when the parser throws
   * (the payload is then stored the plain way, and its processing in the background records why).
   * The parsed JSON is left as it is, for that path.
   */
  parse(json: unknown, mayContainNul: boolean): { payload: ParsedPayload; rows: number } | undefined {
    let payload: ParsedPayload;
    try {
      payload = parseHaePayload(json, { limits: this.#limits, mayContainNul });
    } catch {
      return undefined;
    }
    return { payload, rows: rowCountOf(payload) };
  }

  /** One outcome per payload, in order. Payloads must be unique per user and sha256. */
  async store(payloads: readonly InCommitPayload[]): Promise<InCommitOutcome[]> {
    const started = performance.now();
    const parsed = payloads.map((p) => p.parsed);
    const batch = new SampleBatch(
      parsed,
      payloads.map((p) => p.row[0]),
      payloads.map((_, i) => i),
    );
    // Creating a partition takes a lock on the whole table: left to processing in the background.
    if (!batch.partitionsReady(this.#partitions)) throw new NotProcessableInCommit('a month of the group has no partition yet');
    const tables = batch.encodedTables(MAX_CHUNK_BYTES);
    if (!tables) throw new NotProcessableInCommit('a table of the group is over one chunk');
    const tableArrays = tables.flatMap((t) => t.arrays);
    const sampleTables = tables.map((t) => t.table);
    let outcomes: InCommitOutcome[] | null = null;
    if (this.#mayInsertOnly(payloads)) outcomes = await this.#insertAllNew(payloads, batch, sampleTables, tableArrays, started);
    outcomes ??= await this.#upsert(payloads, batch, sampleTables, tableArrays, started);
    const processed = outcomes.filter((o) => o.processed).length;
    if (processed > 0) this.#metrics.batchPayloads.observe({}, processed);
    return outcomes;
  }

  #mayInsertOnly(payloads: readonly InCommitPayload[]): boolean {
    if (this.#upsertUntil.size === 0) return true;
    const now = this.#now();
    for (const [user, until] of this.#upsertUntil) if (until <= now) this.#upsertUntil.delete(user);
    return payloads.every((p) => !this.#upsertUntil.has(p.row[0]));
  }

  /** The insert-only statement; null when the database already held a key or payload of the group (nothing is written then). */
  async #insertAllNew(
    payloads: readonly InCommitPayload[],
    batch: SampleBatch,
    tables: ReadonlyArray<SampleTable<unknown>>,
    tableArrays: readonly Buffer[],
    started: number,
  ): Promise<InCommitOutcome[] | null> {
    const counts = batch.countsIfAllNew();
    // Stored with the raw row and returned in the answer: one slice per payload serves both.
    const reported = payloads.map((p) => reportedRejections(p.parsed));
    const values = [...rawColumns(payloads, INSERT_EXTRA_TYPES, (parsed, i) => [countsJson(counts[i]!), parsed.rejections.length, reported[i], parsed.notStored]), ...tableArrays];
    let ids: string[];
    try {
      const { name, text } = this.#statementFor('insert', tables);
      const { rows } = await queryWithoutCopy<{ ids: string | null }>(this.#pool, text, values, name);
      ids = rows[0]?.ids?.split(',') ?? [];
    } catch (err) {
      if (sqlStateOf(err) !== UNIQUE_VIOLATION) throw err;
      const until = this.#now() + UPSERT_AFTER_CONFLICT_MS;
      for (const p of payloads) this.#upsertUntil.set(p.row[0], until);
      this.#metrics.inCommitConflicts.inc();
      this.#logger.debug({ payloads: payloads.length, error: errorMessage(err) }, 'group holds data already stored; upserting it');
      return null;
    }
    if (ids.length !== payloads.length) throw new Error(`the group statement returned ${ids.length} ids for ${payloads.length} payloads`);
    const seconds = (performance.now() - started) / 1000;
    const processed = processedResults(
      payloads.map((p) => p.parsed),
      ids,
      counts,
      reported,
    );
    return processed.map((done) => {
      const { ingestionId, counts, rejections, notStored } = done.result;
      return { id: ingestionId, inserted: true, status: 'processed', counts, rejections, notStored, processed: done, processingSeconds: seconds };
    });
  }

  /** The careful statement: re-sent payloads, stored keys, latest export wins. */
  async #upsert(
    payloads: readonly InCommitPayload[],
    batch: SampleBatch,
    tables: ReadonlyArray<SampleTable<unknown>>,
    tableArrays: readonly Buffer[],
    started: number,
  ): Promise<InCommitOutcome[]> {
    const bases = batch.countBases();
    const values = [...rawColumns(payloads, UPSERT_EXTRA_TYPES, (parsed, i) => [bases[i], parsed.rejections.length, reportedRejections(parsed), parsed.notStored, batch.displacesOthers(i)]), ...tableArrays];
    let rows: ReturnedRow[];
    try {
      const { name, text } = this.#statementFor('upsert', tables);
      ({ rows } = await queryWithoutCopy<ReturnedRow>(this.#pool, text, values, name));
    } catch (err) {
      if (err instanceof Error && err.message.includes(REFUSAL)) throw new NotProcessableInCommit(err.message, { cause: err });
      throw err;
    }
    if (rows.length !== payloads.length) throw new Error(`the group statement returned ${rows.length} rows for ${payloads.length} payloads`);
    const seconds = (performance.now() - started) / 1000;
    return rows.map((row, i) => {
      const stored: StoredRaw = { id: String(row.id), inserted: row.inserted, status: row.status, counts: row.counts, rejections: row.rejections, notStored: row.not_stored };
      if (!row.inserted) return stored;
      const counts = typeCountsOf(bases[i]!, (label) => (row.counts as Record<string, TypeCounts> | null)?.[label]);
      const [processed] = processedResults([payloads[i]!.parsed], [stored.id], [counts]);
      return { ...stored, processed, processingSeconds: seconds };
    });
  }

  /** Logs and counts a group stored the plain way instead. */
  fellBack(payloads: number, err: unknown): void {
    this.#metrics.inCommitFallbacks.inc();
    const fields = { payloads, reason: errorMessage(err) };
    // A refusal by design (a re-sent payload in a crowded group) or a sample table held by
    // someone else for longer than the lock timeout is routine; anything else is worth a look.
    if (err instanceof NotProcessableInCommit || sqlStateOf(err) === LOCK_NOT_AVAILABLE) this.#logger.debug(fields, 'group of payloads stored without its samples; they are processed in the background');
    else this.#logger.warn(fields, 'group of payloads stored without its samples; they are processed in the background');
  }

  /**
   * Prepared once per kind and set of tables (and connection): groups of the same data types
   * share it. Sent without pg's Query (zero-copy-query.ts): its Bind message is built in one
   * allocation of the right size instead of a buffer grown and copied on the way, and the group's
   * arrays are not copied into it from 16 kB on.
   */
  #statementFor(kind: 'insert' | 'upsert', tables: ReadonlyArray<SampleTable<unknown>>): { name: string; text: string } {
    const key = `${kind}:${tables.map((t) => t.table).join(',')}`;
    let statement = this.#statements.get(key);
    if (!statement) {
      statement = { name: `ss_in_commit_${this.#statements.size}`, text: kind === 'insert' ? insertGroupSql(tables) : upsertGroupSql(tables) };
      this.#statements.set(key, statement);
    }
    return statement;
  }
}

interface ReturnedRow {
  id: string;
  inserted: boolean;
  status: StoredRaw['status'];
  counts: StoredRaw['counts'];
  rejections: unknown[] | null;
  not_stored: unknown[] | null;
}

/** Per payload after the raw columns, in the insert-only statement: its counts, then what it rejected and did not store. */
const INSERT_EXTRA_TYPES: readonly ElementType[] = ['jsonb', 'int4', 'jsonb', 'jsonb'];
const INSERT_EXTRA_COLUMNS = ['counts', 'rejected_count', 'rejections', 'not_stored'];
/** In the careful statement: what its counts are built from instead, and whether its rows displaced others. */
const UPSERT_EXTRA_TYPES: readonly ElementType[] = ['jsonb', 'int4', 'jsonb', 'jsonb', 'bool'];
const UPSERT_EXTRA_COLUMNS = ['count_base', 'rejected_count', 'rejections', 'not_stored', 'displaces_others'];

function rawColumns(payloads: readonly InCommitPayload[], extraTypes: readonly ElementType[], extra: (parsed: ParsedPayload, i: number) => unknown[]): Buffer[] {
  const writers = rawColumnWriters(payloads.map((p) => p.row), extraTypes);
  payloads.forEach(({ parsed }, i) => extra(parsed, i).forEach((value, e) => writers[RAW_ELEMENT_TYPES.length + e]!.push(value)));
  return writers.map((w) => w.finish());
}

/** The group's payloads, one row each, numbered in arrival order (`ord`). */
function inputCte(extraColumns: readonly string[], extraTypes: readonly ElementType[]): string {
  const columns = [...RAW_COLUMNS, ...extraColumns];
  const unnest = [...RAW_ELEMENT_TYPES, ...extraTypes].map((type, i) => `$${i + 1}::${type}[]`).join(', ');
  return `input AS MATERIALIZED (
      SELECT * FROM unnest(${unnest}) WITH ORDINALITY AS u(${columns.join(', ')}, ord)
    )`;
}

/**
 * The insert-only statement: ingestion ids drawn in arrival order, every table's rows, and the
 * raw rows with the counts computed by the caller. Data-modifying WITH queries run to completion
 * whether or not the query reads them.
 */
function insertGroupSql(tables: ReadonlyArray<SampleTable<unknown>>): string {
  let next = RAW_ELEMENT_TYPES.length + INSERT_EXTRA_TYPES.length + 1;
  const inserts = tables.map((table, t) => {
    const sql = payloadRowsInsertSql(table, { firstParam: next, userId: 'd.user_id', ingestionId: 'd.id', join: 'ids d', where: 'd.ord = u.payload_index' });
    next += table.columns.length + 1;
    return `w${t} AS (${sql})`;
  });
  return `WITH ${inputCte(INSERT_EXTRA_COLUMNS, INSERT_EXTRA_TYPES)},
    -- The user rides along with the id: a sample row then joins one CTE, not two.
    ids AS MATERIALIZED (
      SELECT i.ord, i.user_id, nextval('raw_ingestions_id_seq') AS id FROM input i
    ),
    ${inserts.map((u) => `${u},\n    `).join('')}raw AS (
      INSERT INTO raw_ingestions (id, ${RAW_COLUMNS.join(', ')}, last_received_at, status, attempts, processed_at, counts, rejected_count, rejections, not_stored)
      OVERRIDING SYSTEM VALUE
      SELECT d.id, ${RAW_COLUMNS.map((c) => `i.${c}`).join(', ')}, i.received_at, 'processed', 1, now(), i.counts, i.rejected_count, i.rejections, i.not_stored
      FROM input i JOIN ids d ON d.ord = i.ord
    )
    -- One row: a row per payload costs the client more to read than the ids themselves.
    SELECT string_agg(d.id::text, ',' ORDER BY d.ord) AS ids FROM ids d`;
}

/**
 * The careful statement. Data-modifying WITH queries all see the snapshot the statement started
 * with and all run to completion; the raw rows' counts read what the upserts returned.
 */
function upsertGroupSql(tables: ReadonlyArray<SampleTable<unknown>>): string {
  let next = RAW_ELEMENT_TYPES.length + UPSERT_EXTRA_TYPES.length + 1;
  const upserts = tables.map((table, t) => {
    const sql = payloadRowsUpsertSql(table, {
      firstParam: next,
      userId: 'd.user_id',
      ingestionId: 'd.id',
      join: 'ids d',
      // Rows of re-sent payloads are not written: those payloads were processed when first stored.
      where: 'd.ord = u.payload_index AND NOT d.stored',
    });
    next += table.columns.length + 1;
    return `w${t} AS (${sql})`;
  });
  const written =
    tables.length === 0
      ? `SELECT NULL::text AS label, NULL::int8 AS ingestion_id, 0::int8 AS inserted, 0::int8 AS updated WHERE false`
      : tables
          .map((table, t) => `SELECT '${table.label}'::text AS label, ingestion_id, count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM w${t} GROUP BY ingestion_id`)
          .join('\n      UNION ALL ');
  const inserted = RAW_COLUMNS.map((c) => `i.${c}`).join(', ');
  return `WITH ${inputCte(UPSERT_EXTRA_COLUMNS, UPSERT_EXTRA_TYPES)},
    ids AS MATERIALIZED (
      -- A scalar subquery, not EXISTS: the planner may turn EXISTS into one scan of the whole table.
      SELECT i.ord, i.user_id, nextval('raw_ingestions_id_seq') AS id,
             (SELECT r.id FROM raw_ingestions r WHERE r.user_id = i.user_id AND r.sha256 = i.sha256) IS NOT NULL AS stored
      FROM input i
    ),
    ${upserts.map((u) => `${u},\n    `).join('')}written AS MATERIALIZED (
      ${written}
    ),
    counted AS (
      SELECT d.ord, coalesce(jsonb_object_agg(b.key, jsonb_build_object(
               'received', (b.value->>0)::int,
               'inserted', coalesce(w.inserted, 0),
               'updated', coalesce(w.updated, 0),
               'unchanged', (b.value->>1)::int - coalesce(w.inserted, 0) - coalesce(w.updated, 0),
               'rejected', (b.value->>0)::int - (b.value->>1)::int)) FILTER (WHERE b.key IS NOT NULL), '{}'::jsonb) AS counts
      FROM ids d JOIN input i ON i.ord = d.ord
        LEFT JOIN LATERAL jsonb_each(i.count_base) AS b ON true
        LEFT JOIN written w ON w.label = b.key AND w.ingestion_id = d.id
      GROUP BY d.ord
    ),
    raw AS (
      INSERT INTO raw_ingestions AS r (id, ${RAW_COLUMNS.join(', ')}, last_received_at, status, attempts, processed_at, counts, rejected_count, rejections, not_stored)
      OVERRIDING SYSTEM VALUE
      SELECT d.id, ${inserted}, i.received_at, 'processed', 1, now(), c.counts, i.rejected_count, i.rejections, i.not_stored
      FROM input i JOIN ids d ON d.ord = i.ord JOIN counted c ON c.ord = i.ord
      ON CONFLICT (user_id, sha256) DO UPDATE
        SET last_received_at = excluded.last_received_at, receive_count = r.receive_count + 1
      RETURNING r.id, r.user_id, r.sha256, (xmax = 0) AS inserted, r.status, r.counts, r.rejections, r.not_stored
    )
    SELECT raw.id, raw.inserted, raw.status, raw.counts, raw.rejections, raw.not_stored,
      -- CHECK: aborts the statement (and so everything it wrote) when a payload was not what the snapshot said.
      CASE WHEN raw.inserted = d.stored OR (d.stored AND i.displaces_others)
        THEN ('${REFUSAL} ' || d.ord || ' was stored meanwhile, or is a re-sent payload whose rows displaced others in its group')::int END AS refused
    FROM input i JOIN ids d ON d.ord = i.ord JOIN raw ON raw.user_id = i.user_id AND raw.sha256 = i.sha256
    ORDER BY i.ord`;
}
