import type pg from 'pg';
import type { IngestRequest } from '../../broker/types.js';
import type { ParsedPayload } from '../hae/types.js';
import { storableText } from '../storable-text.js';
import { BinaryArrayWriter, type ElementType } from '../store/binary-array.js';
import { encodePayload } from '../store/payload-encoding.js';
import { inTransactions } from '../store/pool.js';
import { queryWithoutCopy, type ZeroCopyParam } from '../store/zero-copy-query.js';
import { SMALL_PAYLOAD_BYTES } from './batch-processor.js';
import type { InCommitOutcome, InCommitProcessor } from './process-in-commit.js';

export type RawStatus = 'received' | 'processed' | 'failed';

/**
 * A payload's parsed JSON as handed to RawIngestionStore.store(). The store empties `value` once
 * it has turned the tree into the payload's rows, to be processed in the commit.
 */
export interface ParsedJson {
  value: unknown;
  /** False when the JSON text has no `\u0000` escape. */
  mayContainNul: boolean;
}

export interface StoredRaw {
  id: string;
  /** False when the same user had already sent these exact bytes. */
  inserted: boolean;
  status: RawStatus;
  counts: Record<string, { received: number; rejected: number }> | null;
  rejections: unknown[] | null;
  notStored: unknown[] | null;
}

interface Pending {
  request: IngestRequest;
  sha256: Buffer;
  /** The payload's HAE content, when it may be processed in the commit that stores it. */
  parsed: ParsedPayload | undefined;
  /** Sample rows of `parsed`. */
  rows: number;
  resolve: (stored: InCommitOutcome) => void;
  reject: (err: unknown) => void;
}

// 13 bind parameters per row (large rows): 1,000 rows stay far below PostgreSQL's 65,535 limit.
const MAX_ROWS_PER_COMMIT = 1_000;
const COLUMNS = 13;
// Sample rows of payloads processed in one group commit; past it, the rest waits for the next group.
const MAX_IN_COMMIT_ROWS = 50_000;
// From this size a body is written to the socket as it is instead of being copied into pg's Bind
// message; below it pg's own path is as fast and the copy costs little memory.
export const ZERO_COPY_BODY_BYTES = 1024 * 1024;

export const RAW_COLUMNS = ['user_id', 'api_key_id', 'transport', 'topic', 'client_id', 'remote_address', 'payload', 'sha256', 'size_bytes', 'received_at'] as const;
const INSERTED_COLUMNS = RAW_COLUMNS.join(', ');
const ON_CONFLICT = `ON CONFLICT (user_id, sha256) DO UPDATE
     SET last_received_at = excluded.last_received_at, receive_count = r.receive_count + 1
   RETURNING id, user_id, sha256, (xmax = 0) AS inserted, status, counts, rejections, not_stored`;

/**
 * Batches without a large body: one statement whose text never changes, whatever the number of
 * rows (each column one binary array), so the server parses and plans it once per connection,
 * not at every group commit. Rows are inserted, and so numbered, in the order of the arrays.
 */
const UNNEST_INSERT = {
  name: 'ss_raw_insert',
  text: `INSERT INTO raw_ingestions AS r (${INSERTED_COLUMNS}, last_received_at, status)
   SELECT ${INSERTED_COLUMNS}, received_at, 'received'
     FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::bytea[], $9::int4[], $10::timestamptz[])
       AS u(${INSERTED_COLUMNS})
   ${ON_CONFLICT}`,
};
export const RAW_ELEMENT_TYPES: readonly ElementType[] = ['int8', 'uuid', 'text', 'text', 'text', 'text', 'bytea', 'bytea', 'int4', 'timestamptz'];

interface ReturnedRow {
  id: string;
  user_id: string;
  sha256: Buffer;
  inserted: boolean;
  status: RawStatus;
  counts: StoredRaw['counts'];
  rejections: unknown[] | null;
  not_stored: unknown[] | null;
}

/**
 * Stores raw payloads with group commit: payloads that arrive while a commit is in flight share
 * the next one, and each waiter is released by the COMMIT that made its payload durable. This is
 * what lets a QoS 1 PUBACK wait for the database without one round trip per message.
 */
export class RawIngestionStore {
  readonly #pool: pg.Pool;
  readonly #maxBatchBytes: number;
  readonly #inCommit: InCommitProcessor | null;
  #queue: Pending[] = [];
  #flushing = false;

  /** With `inCommit`, payloads handed over parsed are processed by the statement that stores them (process-in-commit.ts). */
  constructor(pool: pg.Pool, options: { maxBatchBytes: number; inCommit?: InCommitProcessor }) {
    this.#pool = pool;
    this.#maxBatchBytes = options.maxBatchBytes;
    this.#inCommit = options.inCommit ?? null;
  }

  /**
   * Stores the payload with the next group commit. With its parsed JSON (and processing in the
   * commit enabled), a small payload's samples are written by the same statement, and the outcome
   * holds the processing result; `content.value` is then emptied (see ParsedJson).
   */
  store(request: IngestRequest, sha256: Buffer, content?: ParsedJson): Promise<InCommitOutcome> {
    return new Promise((resolve, reject) => {
      // Larger payloads are processed alone, after their commit (the largest while they are parsed).
      const parsed = content?.value !== undefined && this.#inCommit && request.body.length < SMALL_PAYLOAD_BYTES ? this.#inCommit.parse(content.value, content.mayContainNul) : undefined;
      // The tree is not needed any more: kept until the commit, a hundred payloads' trees would be
      // copied by every young-generation collection meanwhile (a fallback reads the bytes back).
      if (parsed) content!.value = undefined;
      this.#queue.push({ request, sha256, parsed: parsed?.payload, rows: parsed?.rows ?? 0, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      let running = this.#queue.length > 0 ? this.#storeGroup(this.#takeBatch()) : null;
      while (running) {
        const done = await running;
        // The next group goes to the database before this one's waiters are released: writing
        // their acknowledgements takes a while, and the server works on the next group meanwhile.
        // One statement at a time still, so ingestion ids keep the order of arrival.
        running = this.#queue.length > 0 ? this.#storeGroup(this.#takeBatch()) : null;
        done();
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** Stores one group; resolves to the function that releases its waiters. */
  async #storeGroup(batch: Pending[]): Promise<() => void> {
    const inCommit = batch.filter((p) => p.parsed);
    const plain = inCommit.length === batch.length ? [] : batch.filter((p) => !p.parsed);
    const settled: Array<() => void> = [];
    if (inCommit.length > 0) settled.push(await this.#settle(inCommit, () => this.#insertProcessed(inCommit)));
    if (plain.length > 0) settled.push(await this.#settle(plain, () => this.#insert(plain)));
    return () => settled.forEach((release) => release());
  }

  /** Runs `insert`; resolves to the function that hands each waiter its outcome (or the error). */
  async #settle(batch: Pending[], insert: () => Promise<InCommitOutcome[]>): Promise<() => void> {
    try {
      const stored = await insert();
      return () => batch.forEach((p, i) => p.resolve(stored[i]!));
    } catch (err) {
      return () => batch.forEach((p) => p.reject(err));
    }
  }

  /** Processed in the commit; if the group cannot be, stored the plain way (processed in the background then). */
  async #insertProcessed(batch: Pending[]): Promise<InCommitOutcome[]> {
    // The same bytes twice in one statement would make ON CONFLICT touch a row twice.
    const unique = uniqueByKey(batch);
    try {
      const outcomes = await this.#inCommit!.store(unique.map((p) => ({ row: rowOf(p), parsed: p.parsed! })));
      return reReceiptsOf(batch, unique, outcomes);
    } catch (err) {
      // Counted and logged once the group is stored: if the database is away, the caller hears of that instead.
      const stored = await this.#insert(batch);
      this.#inCommit!.fellBack(unique.length, err);
      return stored;
    }
  }

  #takeBatch(): Pending[] {
    let bytes = 0;
    let rows = 0;
    let n = 0;
    while (n < this.#queue.length && n < MAX_ROWS_PER_COMMIT) {
      const next = this.#queue[n]!;
      if (n > 0 && rows + next.rows > MAX_IN_COMMIT_ROWS) break;
      bytes += next.request.body.length;
      rows += next.rows;
      n++;
      if (bytes >= this.#maxBatchBytes) break;
    }
    return this.#queue.splice(0, n);
  }

  async #insertSmall(rows: RawRow[]): Promise<ReturnedRow[]> {
    const writers = rawColumnWriters(rows);
    const { rows: returned } = await this.#pool.query<ReturnedRow>({ ...UNNEST_INSERT, values: writers.map((w) => w.finish()) });
    return returned;
  }

  /**
   * Stores one large payload while its JSON is still being checked: the INSERT runs in a
   * transaction of its own, so the server receives, compresses and writes the bytes meanwhile,
   * and it commits only once `valid` resolves true. On false nothing is stored (rolled back) and
   * the answer is null. Not part of a group commit: at these sizes one COMMIT per payload costs
   * nothing, and the others' acknowledgements do not wait for this one's parse.
   */
  async storeWhileChecked(request: IngestRequest, sha256: Buffer, valid: Promise<boolean>): Promise<StoredRaw | null> {
    try {
      return await inTransactions(this.#pool, 1, async ([client]) => {
        const [row] = await this.#insertLarge([rowOf({ request, sha256 })], client);
        if (!(await valid)) throw new NotValid();
        return storedOf(row!);
      });
    } catch (err) {
      if (err instanceof NotValid) return null;
      throw err;
    }
  }

  /**
   * A large body goes to the socket as it is (zero-copy-query.ts), compressed from
   * COMPRESSED_FROM_BYTES on (payload-encoding.ts); these batches are few, so planning each costs nothing.
   */
  async #insertLarge(rows: RawRow[], db: pg.Pool | pg.ClientBase = this.#pool): Promise<ReturnedRow[]> {
    const encoded = await Promise.all(rows.map((row) => encodePayload(row[6])));
    const values: ZeroCopyParam[] = [];
    const tuples = rows.map((row, i) => {
      values.push(...row.slice(0, 6), encoded[i]!.bytes, ...row.slice(7, 10), row[9], 'received', encoded[i]!.encoding);
      return `(${Array.from({ length: COLUMNS }, (_, c) => `$${i * COLUMNS + c + 1}`).join(', ')})`;
    });
    const sql = `INSERT INTO raw_ingestions AS r (${INSERTED_COLUMNS}, last_received_at, status, payload_encoding)
       VALUES ${tuples.join(', ')}
       ${ON_CONFLICT}`;
    const { rows: returned } = await queryWithoutCopy<ReturnedRow>(db, sql, values);
    return returned;
  }

  async #insert(batch: Pending[]): Promise<StoredRaw[]> {
    // The same bytes twice in one statement would make ON CONFLICT touch a row twice.
    const unique = uniqueByKey(batch);
    const rows = unique.map((p) => rowOf(p));
    const large = batch.some((p) => p.request.body.length >= ZERO_COPY_BODY_BYTES);
    const returned = large ? await this.#insertLarge(rows) : await this.#insertSmall(rows);
    const byKey = new Map<string, StoredRaw>();
    for (const row of returned) byKey.set(`${row.user_id}:${row.sha256.toString('hex')}`, storedOf(row));
    return reReceiptsOf(batch, unique, unique.map((p) => byKey.get(keyOf(p))!));
  }
}

export type RawRow = [
  userId: string,
  keyId: string,
  transport: string,
  topic: string | null,
  clientId: string | null,
  remoteAddress: string | null,
  payload: Buffer,
  sha256: Buffer,
  sizeBytes: number,
  receivedAt: Date,
];

/** Rolls back the transaction of a payload whose JSON turned out invalid. */
class NotValid extends Error {}

function storedOf(row: ReturnedRow): StoredRaw {
  return { id: String(row.id), inserted: row.inserted, status: row.status, counts: row.counts, rejections: row.rejections, notStored: row.not_stored };
}

function rowOf(p: { request: IngestRequest; sha256: Buffer }): RawRow {
  const r = p.request;
  return [
    r.identity.userId,
    r.identity.keyId,
    r.transport,
    // One U+0000 in a topic or client id would fail the whole group commit, other clients' payloads included.
    r.topic == null ? null : storableText(r.topic),
    r.clientId == null ? null : storableText(r.clientId),
    r.remoteAddress ?? null,
    r.body,
    p.sha256,
    r.body.length,
    r.receivedAt,
  ];
}

/**
 * One binary array writer per raw column (RAW_COLUMNS) holding `rows`, then an empty one per
 * element type of `extra` for the caller's own columns.
 */
export function rawColumnWriters(rows: readonly RawRow[], extra: readonly ElementType[] = []): BinaryArrayWriter[] {
  const bytes = rows.reduce((n, row) => n + row[6].length + 128, 0);
  const writers = [...RAW_ELEMENT_TYPES, ...extra].map((type, c) => new BinaryArrayWriter(type, c === 6 ? bytes : 64 * rows.length));
  for (const row of rows) {
    for (let c = 0; c < row.length; c++) {
      const value = row[c];
      writers[c]!.push(value instanceof Date ? value.getTime() : value);
    }
  }
  return writers;
}

/** The first copy of each user's bytes, in order. */
function uniqueByKey(batch: Pending[]): Pending[] {
  // Nearly every group holds distinct bytes: 48 bits of each digest prove it without a key string per payload.
  const prefixes = new Set<number>();
  for (const p of batch) prefixes.add(p.sha256.readUIntBE(0, 6));
  if (prefixes.size === batch.length) return batch;
  const unique = new Map<string, Pending>();
  for (const p of batch) {
    const key = keyOf(p);
    if (!unique.has(key)) unique.set(key, p);
  }
  return [...unique.values()];
}

/** One outcome per payload of `batch`, given those of its `unique` payloads: later copies are re-receipts of the first. */
function reReceiptsOf<S extends StoredRaw>(batch: Pending[], unique: Pending[], outcomes: S[]): S[] {
  if (unique.length === batch.length) return outcomes;
  const byKey = new Map<string, S>();
  unique.forEach((p, i) => byKey.set(keyOf(p), outcomes[i]!));
  const seen = new Set<string>();
  return batch.map((p) => {
    const key = keyOf(p);
    const stored = byKey.get(key)!;
    // A copy shares the first one's processing (and its answer), as a plain re-receipt shares its queued job.
    if (seen.has(key)) return { ...stored, inserted: false };
    seen.add(key);
    return stored;
  });
}

function keyOf(p: Pending): string {
  return `${p.request.identity.userId}:${p.sha256.toString('hex')}`;
}
