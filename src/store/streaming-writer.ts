import type pg from 'pg';
import { monthsOf, type PartitionManager } from './partitions.js';
import type { SampleTable } from './sample-tables.js';
import { ChunkWriter, encodeChunk, KeyOrderCheck, type WriteContext } from './sample-writer.js';

/**
 * The rows could not be written while they were produced: a table's rows left key order (two
 * may share a key, which only the whole-table de-duplication of writeSamples handles) or reached
 * a month whose partition was not made ready beforehand (it cannot be created while these
 * transactions hold the table). The caller rolls back and writes the whole payload the usual way.
 */
export class StreamNotWritable extends Error {
  constructor(readonly reason: string) {
    super(`rows could not be written while parsed: ${reason}`);
    this.name = 'StreamNotWritable';
  }
}

interface TableStream<R> {
  table: SampleTable<R>;
  /** The parser's own array of this table's rows, which grows while the payload is read. */
  rows: readonly R[];
  /** rows[0…checked) are known to be in key order. */
  checked: number;
  /** rows[0…taken) are written or being written. */
  taken: number;
  order: KeyOrderCheck<R>;
  writer: ChunkWriter<R>;
}

/**
 * Writes the rows of some tables while the parser is still producing them, over the caller's
 * connections (each in its own open transaction): every connection takes the next full chunk of
 * rows checked so far, so PostgreSQL inserts while Node reads the rest of the payload.
 *
 * The rows and counts are exactly those of writeSamples over the finished arrays, which holds as
 * long as each table's rows stay in key order (KeyOrderCheck: no key twice, so nothing to
 * de-duplicate) and land in partitions that exist. Anything else stops the writing, and finish()
 * throws StreamNotWritable.
 */
export class StreamingWrite {
  readonly #clients: readonly pg.ClientBase[];
  readonly #partitions: PartitionManager;
  readonly #streams: TableStream<unknown>[];
  #lanes: Array<Promise<void>> = [];
  #waiters: Array<() => void> = [];
  #done = false;
  #stopReason: string | null = null;
  #failure: { error: unknown } | null = null;
  readonly #explain: (label: string, error: unknown) => unknown;

  /** `explain` turns a database error into the one finish() throws, given the table's label. */
  constructor(
    clients: readonly pg.ClientBase[],
    tables: ReadonlyArray<{ table: SampleTable<unknown>; rows: readonly unknown[] }>,
    context: WriteContext,
    deps: { partitions: PartitionManager; explain: (label: string, error: unknown) => unknown },
  ) {
    this.#clients = clients;
    this.#partitions = deps.partitions;
    this.#explain = deps.explain;
    this.#streams = tables.map(({ table, rows }) => ({ table, rows, checked: 0, taken: 0, order: new KeyOrderCheck(table), writer: new ChunkWriter(table, context) }));
  }

  start(): void {
    this.#lanes = this.#clients.map((client) => this.#lane(client));
  }

  /** Rows were appended to the arrays: their order is checked, and full chunks are handed out. */
  offer(): void {
    for (const s of this.#streams) {
      if (this.#stopReason !== null || s.rows.length === s.checked) continue;
      if (!s.order.extend(s.rows, s.checked, s.rows.length)) this.#stop(`${s.table.label} rows are not in key order`);
      s.checked = s.rows.length;
    }
    this.#notify();
  }

  /** No more rows: what is left is written; resolves with each table's counts once all is written. */
  async finish(): Promise<Map<SampleTable<unknown>, { inserted: number; updated: number }>> {
    this.offer();
    this.#done = true;
    this.#notify();
    await Promise.all(this.#lanes);
    if (this.#failure) throw this.#failure.error;
    if (this.#stopReason !== null) throw new StreamNotWritable(this.#stopReason);
    return new Map(this.#streams.map((s) => [s.table, { inserted: s.writer.inserted, updated: s.writer.updated }]));
  }

  /** Stops handing out chunks and waits for the statements in flight (the caller gives up). */
  async abort(): Promise<void> {
    this.#stop('aborted');
    await Promise.all(this.#lanes);
  }

  #stop(reason: string): void {
    this.#stopReason ??= reason;
    this.#notify();
  }

  #notify(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** A stream with a full chunk of checked rows not yet taken (or any, once no more rows come). */
  #ready(): TableStream<unknown> | undefined {
    for (const s of this.#streams) {
      const waiting = s.checked - s.taken;
      if (waiting >= s.writer.maxRows || (this.#done && waiting > 0)) return s;
    }
    return undefined;
  }

  async #lane(client: pg.ClientBase): Promise<void> {
    while (this.#stopReason === null && this.#failure === null) {
      const s = this.#ready();
      if (!s) {
        if (this.#done) return;
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
        continue;
      }
      const start = s.taken;
      const chunk = encodeChunk(s.table.columns, s.rows, start, Math.min(s.writer.maxRows, s.checked - start), s.writer.maxBytes);
      s.taken = chunk.end;
      if (!this.#partitions.hasMonths(s.table.table, monthsOf(s.rows.slice(start, chunk.end), s.table.time))) {
        this.#stop(`${s.table.label} rows reach a month whose partition was not made ready`);
        return;
      }
      try {
        await s.writer.write(client, chunk.arrays, chunk.end - start);
      } catch (error) {
        // The other lanes stop after their statement in flight.
        this.#failure ??= { error: this.#explain(s.table.label, error) };
        this.#notify();
        return;
      }
    }
  }
}
