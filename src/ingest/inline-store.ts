import type pg from 'pg';
import type { IngestRequest } from '../../broker/types.js';
import { isTransientDatabaseError } from '../errors.js';
import type { ValidationLimits } from '../hae/limits.js';
import type { Metrics } from '../metrics.js';
import { parseHaePayload } from '../hae/parse.js';
import type { ParsedPayload } from '../hae/types.js';
import { storableText } from '../storable-text.js';
import type { PartitionManager } from '../store/partitions.js';
import { MAX_BATCH_BYTES, MAX_BATCH_PAYLOADS, MAX_BATCH_ROWS, rowsOf } from './batch-processor.js';
import type { ProcessedPayload } from './processor.js';
import type { StoredRaw } from './raw-store.js';
import { outcomeColumns, partitionsKnown, processedResults, SampleBatch } from './sample-batch.js';

export type InlineOutcome =
  /** Committed. `processed` is set when this request brought the bytes first and its rows are written. */
  | { kind: 'stored'; stored: StoredRaw; processed: ProcessedPayload | null }
  /**
   * Nothing was stored: store it the usual way. `new_partition`: the payload needs a partition
   * not known to exist (creating one locks its table, which no acknowledgement should wait for);
   * `contention`: a lock or statement timeout, a deadlock; `refused`: any other database error.
   */
  | { kind: 'store_usual_way'; reason: 'new_partition' | 'contention' | 'refused'; error?: unknown };

interface Pending {
  request: IngestRequest;
  sha256: Buffer;
  key: string;
  parsed: ParsedPayload;
  rows: number;
  resolve: (outcome: InlineOutcome) => void;
  reject: (err: unknown) => void;
}

/** The INSERT's parameters per payload (status, attempts and processed_at are literals). */
const COLUMNS = 17;

/**
 * Bounds on how long an acknowledgement may wait for the sample tables: a lock held elsewhere (a
 * long query, a migration, a large export's rows being written) or a slow statement sends the
 * batch the usual way instead, which stores the bytes without touching the sample tables.
 */
const LOCK_TIMEOUT_MS = 500;
const STATEMENT_TIMEOUT_MS = 10_000;

/**
 * Errors of this transaction that are not an outage: a lock or statement timeout, a deadlock or
 * serialization failure with another writer of the same keys. The payloads are stored the usual way.
 */
const CONTENTION = new Set(['55P03', '57014', '40P01', '40001']);

/** A new payload's id was taken by a concurrent insert of the same bytes between lookup and insert. */
class LostInsertRace extends Error {
  constructor() {
    super('the same payload was stored concurrently; storing it the usual way');
  }
}

/**
 * Stores small payloads together with their samples: payloads that arrive while a commit is in
 * flight share the next transaction, which writes their rows and their raw_ingestions rows
 * (already `processed`, with their counts) and is released by one COMMIT. The acknowledgement
 * still waits for that COMMIT, so nothing is acknowledged before its raw bytes are durable; it
 * now also means the rows are in.
 *
 * Compared with storing the bytes and processing them afterwards (raw-store.ts, then
 * batch-processor.ts), a payload costs one transaction instead of two, no second parse, and no
 * UPDATE that rewrites its raw_ingestions row (and its index entries) with the outcome.
 *
 * Ingestion ids are drawn from the table's sequence before the rows are written (rows carry
 * them), in arrival order, so the latest export still wins a key. Bytes the user already sent
 * are not processed again here: they are counted as a re-receipt and returned as stored, for the
 * caller to handle as the raw store's duplicates.
 */
export class InlineIngestStore {
  readonly #pool: pg.Pool;
  readonly #partitions: PartitionManager;
  readonly #chunkRows: number;
  readonly #limits: ValidationLimits;
  readonly #metrics: Metrics;
  #queue: Pending[] = [];
  #flushing = false;

  constructor(deps: { pool: pg.Pool; partitions: PartitionManager; chunkRows: number; limits: ValidationLimits; metrics: Metrics }) {
    this.#pool = deps.pool;
    this.#metrics = deps.metrics;
    this.#partitions = deps.partitions;
    this.#chunkRows = deps.chunkRows;
    this.#limits = deps.limits;
  }

  /**
   * Parses `json` (consumed: its points are detached while read) and stores the payload with its
   * rows. Rejects only when the database is unreachable (transient errors).
   */
  store(request: IngestRequest, sha256: Buffer, json: unknown, mayContainNul: boolean): Promise<InlineOutcome> {
    const parsed = parseHaePayload(json, { limits: this.#limits, mayContainNul, releaseInput: true });
    return new Promise((resolve, reject) => {
      const key = `${request.identity.userId}:${sha256.toString('hex')}`;
      this.#queue.push({ request, sha256, key, parsed, rows: rowsOf(parsed), resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#takeBatch();
        try {
          const outcomes = await this.#write(batch);
          batch.forEach((p, i) => p.resolve(outcomes[i]!));
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          const contention = typeof code === 'string' && CONTENTION.has(code);
          if (isTransientDatabaseError(err) && !contention) for (const p of batch) p.reject(err);
          else for (const p of batch) p.resolve({ kind: 'store_usual_way', reason: contention ? 'contention' : 'refused', error: err });
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  #takeBatch(): Pending[] {
    let bytes = 0;
    let rows = 0;
    let n = 0;
    while (n < this.#queue.length && n < MAX_BATCH_PAYLOADS) {
      const next = this.#queue[n]!;
      if (n > 0 && (bytes + next.request.body.length > MAX_BATCH_BYTES || rows + next.rows > MAX_BATCH_ROWS)) break;
      bytes += next.request.body.length;
      rows += next.rows;
      n++;
    }
    return this.#queue.splice(0, n);
  }

  async #write(batch: Pending[]): Promise<InlineOutcome[]> {
    // The same bytes twice in one batch: the later copies are re-receipts of the first.
    const firstOf = new Map<string, Pending>();
    const copies = new Map<Pending, Pending[]>();
    for (const p of batch) {
      const first = firstOf.get(p.key);
      if (!first) {
        firstOf.set(p.key, p);
        copies.set(p, []);
      } else copies.get(first)!.push(p);
    }
    const firsts = [...firstOf.values()];
    const known = await this.#lookUp(firsts);
    const usualWay = new Set<Pending>();
    const fresh: Pending[] = [];
    for (const p of firsts) {
      if (known.existing.has(p)) continue;
      if (partitionsKnown(p.parsed, this.#partitions)) fresh.push(p);
      else usualWay.add(p);
    }
    // Ids were drawn for every new payload; those stored the usual way leave a gap, which is harmless.
    const freshIds = known.newIds.filter((_, i) => !usualWay.has(known.newOrder[i]!));

    const samples = new SampleBatch(
      fresh.map((p) => p.parsed),
      fresh.map((p) => p.request.identity.userId),
      fresh.map((_, i) => i),
    );
    const counts = await this.#inTransaction(async (client) => {
      const counts = await samples.write(client, freshIds, this.#chunkRows);
      await this.#insertProcessed(client, fresh, freshIds, counts, copies);
      await this.#countReceipts(client, firsts, known.existing, copies);
      return counts;
    });
    if (fresh.length > 0) this.#metrics.batchPayloads.observe(fresh.length);

    const results = processedResults(
      fresh.map((p) => p.parsed),
      freshIds,
      counts,
    );
    const outcomes = new Map<Pending, InlineOutcome>();
    fresh.forEach((p, i) => {
      const { result } = results[i]!;
      const stored: StoredRaw = { id: freshIds[i]!, inserted: true, status: 'processed', counts: result.counts, rejections: result.rejections, notStored: result.notStored };
      outcomes.set(p, { kind: 'stored', stored, processed: results[i]! });
      for (const copy of copies.get(p)!) outcomes.set(copy, { kind: 'stored', stored: { ...stored, inserted: false }, processed: null });
    });
    for (const [p, stored] of known.existing) {
      outcomes.set(p, { kind: 'stored', stored, processed: null });
      for (const copy of copies.get(p)!) outcomes.set(copy, { kind: 'stored', stored, processed: null });
    }
    for (const p of usualWay) for (const q of [p, ...copies.get(p)!]) outcomes.set(q, { kind: 'store_usual_way', reason: 'new_partition' });
    return batch.map((p) => outcomes.get(p)!);
  }

  /** Which payloads are already stored (with their state), and an ingestion id for each of the others, ascending in arrival order. */
  async #lookUp(firsts: Pending[]): Promise<{ existing: Map<Pending, StoredRaw>; newIds: string[]; newOrder: Pending[] }> {
    const { rows } = await this.#pool.query<{
      i: string;
      id: string | null;
      status: StoredRaw['status'] | null;
      counts: StoredRaw['counts'];
      rejections: unknown[] | null;
      not_stored: unknown[] | null;
      new_id: string | null;
    }>(
      `SELECT u.i, r.id, r.status, r.counts, r.rejections, r.not_stored,
         CASE WHEN r.id IS NULL THEN nextval(pg_get_serial_sequence('raw_ingestions', 'id')) END AS new_id
       FROM unnest($1::int8[], $2::bytea[]) WITH ORDINALITY AS u(user_id, sha256, i)
       LEFT JOIN raw_ingestions r ON r.user_id = u.user_id AND r.sha256 = u.sha256`,
      [firsts.map((p) => p.request.identity.userId), firsts.map((p) => p.sha256)],
    );
    const existing = new Map<Pending, StoredRaw>();
    const newIds: bigint[] = [];
    for (const row of rows) {
      if (row.id === null) {
        newIds.push(BigInt(row.new_id!));
        continue;
      }
      const p = firsts[Number(row.i) - 1]!;
      existing.set(p, { id: String(row.id), inserted: false, status: row.status!, counts: row.counts, rejections: row.rejections, notStored: row.not_stored });
    }
    // The sequence hands out ids in the order PostgreSQL evaluated the rows: sorted, they follow arrival.
    newIds.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { existing, newIds: newIds.map(String), newOrder: firsts.filter((p) => !existing.has(p)) };
  }

  /** One transaction with the timeouts above; BEGIN and its settings in one round trip. */
  async #inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query(`BEGIN; SET LOCAL lock_timeout = ${LOCK_TIMEOUT_MS}; SET LOCAL statement_timeout = ${STATEMENT_TIMEOUT_MS}`);
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      });
      throw err;
    } finally {
      // A connection that cannot even roll back is not given to the next caller.
      client.release(broken);
    }
  }

  async #insertProcessed(
    client: pg.ClientBase,
    fresh: Pending[],
    ids: readonly string[],
    counts: Parameters<typeof outcomeColumns>[1],
    copies: Map<Pending, Pending[]>,
  ): Promise<void> {
    if (fresh.length === 0) return;
    const outcome = outcomeColumns(
      fresh.map((p) => p.parsed),
      counts,
    );
    const tuples: string[] = [];
    const values: unknown[] = [];
    fresh.forEach((p, i) => {
      const r = p.request;
      const later = copies.get(p)!;
      const base = i * COLUMNS;
      tuples.push(`(${Array.from({ length: COLUMNS }, (_, c) => `$${base + c + 1}`).join(', ')}, 'processed', 1, now())`);
      values.push(
        ids[i],
        r.identity.userId,
        r.identity.keyId,
        r.transport,
        // One U+0000 in a topic or client id would fail the whole batch, other clients' payloads included.
        r.topic == null ? null : storableText(r.topic),
        r.clientId == null ? null : storableText(r.clientId),
        r.remoteAddress ?? null,
        r.body,
        p.sha256,
        r.body.length,
        r.receivedAt,
        later.length > 0 ? later[later.length - 1]!.request.receivedAt : r.receivedAt,
        1 + later.length,
        outcome.counts[i],
        outcome.rejectedCount[i],
        outcome.rejections[i],
        outcome.notStored[i],
      );
    });
    const { rowCount } = await client.query(
      `INSERT INTO raw_ingestions (id, user_id, api_key_id, transport, topic, client_id, remote_address, payload, sha256, size_bytes,
         received_at, last_received_at, receive_count, counts, rejected_count, rejections, not_stored, status, attempts, processed_at)
       OVERRIDING SYSTEM VALUE
       VALUES ${tuples.join(', ')}
       ON CONFLICT (user_id, sha256) DO NOTHING`,
      values,
    );
    // Rolled back as a whole, and the caller stores the batch the usual way, which handles the re-receipt.
    if (rowCount !== fresh.length) throw new LostInsertRace();
  }

  /** Re-receipts of payloads stored before: counted as the raw store counts them. */
  async #countReceipts(client: pg.ClientBase, firsts: Pending[], existing: Map<Pending, StoredRaw>, copies: Map<Pending, Pending[]>): Promise<void> {
    const again = firsts.filter((p) => existing.has(p));
    if (again.length === 0) return;
    await client.query(
      `UPDATE raw_ingestions AS r SET last_received_at = u.at, receive_count = r.receive_count + u.n
       FROM unnest($1::int8[], $2::timestamptz[], $3::int4[]) AS u(id, at, n) WHERE r.id = u.id`,
      [
        again.map((p) => existing.get(p)!.id),
        again.map((p) => {
          const later = copies.get(p)!;
          return later.length > 0 ? later[later.length - 1]!.request.receivedAt : p.request.receivedAt;
        }),
        again.map((p) => 1 + copies.get(p)!.length),
      ],
    );
  }
}
