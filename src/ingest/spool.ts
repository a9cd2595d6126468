import { constants as fsConstants } from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { IngestRequest } from '../../broker/types.js';
import type { Component } from '../lifecycle.js';
import type { Logger } from '../log.js';
import { checkHeader, decodeBody, encodeRecord, HEADER_BYTES } from './spool-format.js';
import { errorMessage } from '../errors.js';

/**
 * The local spool: while PostgreSQL is unreachable, payloads are appended here and fsynced
 * before they are acknowledged (invariant 1), then replayed into the database by the
 * SpoolReplayer. Records live in numbered segment files under <DATA_DIR>/spool/; a segment is
 * deleted only once every record in it is committed in PostgreSQL.
 */

export interface SpoolOptions {
  dir: string;
  /** Appends are refused once the segments would hold more than this. */
  maxBytes: number;
  /** A new segment is started once the current one is this large, so replayed data is freed early. */
  segmentBytes: number;
}

export interface Segment {
  readonly seq: number;
  readonly file: string;
  bytes: number;
  records: number;
  /** receivedAt of the first record, ms since the epoch; null while empty. */
  oldestAt: number | null;
  sealed: boolean;
}

export interface SpooledRecord {
  request: IngestRequest;
  /** Byte offset of the record inside its segment. */
  offset: number;
}

export interface SpoolStats {
  bytes: number;
  records: number;
  oldestAt: number | null;
}

/** Thrown by append() when the spool holds maxBytes. */
export class SpoolFullError extends Error {
  constructor(readonly maxBytes: number) {
    super(`the spool is full (${maxBytes} bytes)`);
    this.name = 'SpoolFullError';
  }
}

interface PendingAppend {
  record: Buffer;
  receivedAt: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const SEGMENT_PATTERN = /^(\d{12})\.seg$/;

export class Spool implements Component {
  readonly #options: SpoolOptions;
  readonly #logger: Logger;
  readonly #segments: Segment[] = [];
  #active: { segment: Segment; fd: FileHandle } | null = null;
  #pending: PendingAppend[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  /** Serialises writes, seals and removals: one file operation sequence at a time. */
  #chain: Promise<void> = Promise.resolve();
  #nextSeq = 1;
  /** Batches between handing over and being resolved (not yet counted in their segment). */
  #writing = 0;
  #full = false;
  #started = false;
  /** Called with every refused append, for the metric. */
  onRefused: () => void = () => undefined;

  constructor(options: SpoolOptions, logger: Logger) {
    this.#options = options;
    this.#logger = logger;
  }

  /** Creates the folder, finds the segments left by earlier runs, and cuts off a torn last record. */
  async start(): Promise<void> {
    if (this.#started) return;
    await fsp.mkdir(this.#options.dir, { recursive: true, mode: 0o700 });
    const names = (await fsp.readdir(this.#options.dir)).filter((n) => SEGMENT_PATTERN.test(n)).sort();
    for (const name of names) {
      const seq = Number(SEGMENT_PATTERN.exec(name)![1]);
      const segment: Segment = { seq, file: path.join(this.#options.dir, name), bytes: 0, records: 0, oldestAt: null, sealed: true };
      await this.#recover(segment);
      if (segment.records === 0) {
        await fsp.rm(segment.file, { force: true });
        continue;
      }
      this.#segments.push(segment);
    }
    this.#nextSeq = names.length > 0 ? Number(SEGMENT_PATTERN.exec(names[names.length - 1]!)![1]) + 1 : 1;
    this.#started = true;
    const stats = this.stats();
    if (stats.records > 0) this.#logger.info({ segments: this.#segments.length, ...stats }, 'spool holds payloads from an earlier run; they will be replayed');
  }

  /** Waits for appends already handed over, then closes the open segment. Nothing is lost: every record is already fsynced. */
  async stop(): Promise<void> {
    await this.seal();
    this.#started = false;
  }

  stats(): SpoolStats {
    let bytes = 0;
    let records = 0;
    for (const s of this.#segments) {
      bytes += s.bytes;
      records += s.records;
    }
    return { bytes, records, oldestAt: this.#segments.find((s) => s.oldestAt !== null)?.oldestAt ?? null };
  }

  /** True when nothing is on disk and no append is under way. Synchronous on purpose: see SpoolReplayer. */
  get isEmpty(): boolean {
    return this.#pending.length === 0 && !this.#scheduled && this.#writing === 0 && this.#segments.every((s) => s.records === 0);
  }

  /** Appends one payload; resolves once it is written and fsynced. Rejects with SpoolFullError when full. */
  append(request: IngestRequest): Promise<void> {
    if (!this.#started) return Promise.reject(new Error('the spool is not started'));
    const record = encodeRecord(request);
    const used = this.stats().bytes + this.#pendingBytes;
    if (used + record.length > this.#options.maxBytes) {
      this.#setFull(true, used);
      this.onRefused();
      return Promise.reject(new SpoolFullError(this.#options.maxBytes));
    }
    return new Promise((resolve, reject) => {
      this.#pending.push({ record, receivedAt: request.receivedAt.getTime(), resolve, reject });
      this.#pendingBytes += record.length;
      if (!this.#scheduled) {
        this.#scheduled = true;
        void this.#serial(() => this.#writePending());
      }
    });
  }

  /** Closes the segment being written, so that every record so far is in a sealed segment the replayer may read and delete. */
  seal(): Promise<void> {
    return this.#serial(async () => {
      const active = this.#active;
      if (!active) return;
      this.#active = null;
      active.segment.sealed = true;
      await active.fd.close();
      await this.#dropIfEmpty(active.segment);
    });
  }

  async #dropIfEmpty(segment: Segment): Promise<void> {
    if (segment.records > 0) return;
    await fsp.rm(segment.file, { force: true }).catch(() => undefined);
    const i = this.#segments.indexOf(segment);
    if (i >= 0) this.#segments.splice(i, 1);
  }

  /** Sealed segments holding records, oldest first. */
  sealedSegments(): Segment[] {
    return this.#segments.filter((s) => s.sealed && s.records > 0);
  }

  /** The records of a sealed segment, in order. Stops (and logs) at a record that does not check out. */
  async *read(segment: Segment): AsyncGenerator<SpooledRecord> {
    const fd = await fsp.open(segment.file, 'r');
    try {
      const size = (await fd.stat()).size;
      let offset = 0;
      for (;;) {
        const next = await readRecord(fd, offset, size);
        if (next.kind === 'end') return;
        if (next.kind === 'torn') {
          this.#logger.error({ segment: path.basename(segment.file), offset, reason: next.reason }, 'spool record does not check out; the rest of the segment is skipped');
          return;
        }
        yield { request: next.request, offset };
        offset += next.size;
      }
    } finally {
      await fd.close();
    }
  }

  /**
   * Keeps a record the database refuses for good (say its user was deleted) in quarantine.seg-rejected,
   * so that it neither blocks the spool forever nor disappears without a trace.
   */
  quarantine(request: IngestRequest): Promise<void> {
    return this.#serial(async () => {
      const fd = await fsp.open(path.join(this.#options.dir, 'quarantine.seg-rejected'), 'a', 0o600);
      try {
        await fd.write(encodeRecord(request));
        await fd.datasync();
      } finally {
        await fd.close();
      }
    });
  }

  /** Deletes a sealed segment whose records are all committed in PostgreSQL. */
  remove(segment: Segment): Promise<void> {
    return this.#serial(async () => {
      await fsp.rm(segment.file, { force: true });
      await fsyncDir(this.#options.dir).catch(() => undefined);
      const i = this.#segments.indexOf(segment);
      if (i >= 0) this.#segments.splice(i, 1);
      if (this.#full) this.#setFull(false, this.stats().bytes);
    });
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #writePending(): Promise<void> {
    this.#scheduled = false;
    const batch = this.#pending.splice(0);
    const bytes = batch.reduce((n, p) => n + p.record.length, 0);
    this.#writing++;
    try {
      const active = await this.#activeSegment();
      const before = active.segment.bytes;
      try {
        await active.fd.writev(batch.map((p) => p.record), before);
        // fdatasync: the data and the new file length are durable before anyone is acknowledged.
        await active.fd.datasync();
      } catch (err) {
        // A half-written batch must not sit in front of later records: cut it off and start afresh.
        await active.fd.truncate(before).catch(() => undefined);
        this.#active = null;
        active.segment.sealed = true;
        await active.fd.close().catch(() => undefined);
        await this.#dropIfEmpty(active.segment);
        throw err;
      }
      active.segment.bytes += bytes;
      active.segment.records += batch.length;
      active.segment.oldestAt ??= batch[0]!.receivedAt;
      if (active.segment.bytes >= this.#options.segmentBytes) {
        this.#active = null;
        active.segment.sealed = true;
        await active.fd.close();
      }
      for (const p of batch) p.resolve();
    } catch (err) {
      this.#logger.error({ error: errorMessage(err), records: batch.length }, 'writing to the spool failed');
      for (const p of batch) p.reject(err);
    } finally {
      this.#pendingBytes -= bytes;
      this.#writing--;
    }
  }

  async #activeSegment(): Promise<{ segment: Segment; fd: FileHandle }> {
    if (this.#active) return this.#active;
    const seq = this.#nextSeq++;
    const file = path.join(this.#options.dir, `${String(seq).padStart(12, '0')}.seg`);
    const fd = await fsp.open(file, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
    // The new name must be durable too, or a crash could lose a whole acknowledged segment.
    await fsyncDir(this.#options.dir);
    const segment: Segment = { seq, file, bytes: 0, records: 0, oldestAt: null, sealed: false };
    this.#segments.push(segment);
    this.#active = { segment, fd };
    return this.#active;
  }

  /** Counts the complete records of a segment and truncates anything after the last one. */
  async #recover(segment: Segment): Promise<void> {
    const fd = await fsp.open(segment.file, 'r+');
    try {
      const size = (await fd.stat()).size;
      let offset = 0;
      for (;;) {
        const next = await readRecord(fd, offset, size);
        if (next.kind === 'end') break;
        if (next.kind === 'torn') {
          this.#logger.warn(
            { segment: path.basename(segment.file), offset, droppedBytes: size - offset, reason: next.reason },
            'spool: torn record at the end of a segment (the daemon stopped while writing it; it was never acknowledged); truncated',
          );
          await fd.truncate(offset);
          await fd.datasync();
          break;
        }
        segment.records++;
        segment.oldestAt ??= next.request.receivedAt.getTime();
        offset += next.size;
      }
      segment.bytes = offset;
    } finally {
      await fd.close();
    }
  }

  #setFull(full: boolean, usedBytes: number): void {
    if (this.#full === full) return;
    this.#full = full;
    if (full) this.#logger.error({ usedBytes, maxBytes: this.#options.maxBytes }, 'spool is full: refusing payloads until the database is back (clients get no acknowledgement and retry)');
    else this.#logger.warn({ usedBytes, maxBytes: this.#options.maxBytes }, 'spool has room again');
  }
}

type ReadResult = { kind: 'end' } | { kind: 'torn'; reason: string } | { kind: 'record'; request: IngestRequest; size: number };

async function readRecord(fd: FileHandle, offset: number, size: number): Promise<ReadResult> {
  if (offset >= size) return { kind: 'end' };
  const header = Buffer.alloc(HEADER_BYTES);
  const { bytesRead } = await fd.read(header, 0, HEADER_BYTES, offset);
  const checked = checkHeader(header.subarray(0, bytesRead));
  if (!checked.ok) return { kind: 'torn', reason: checked.reason };
  // Checked before allocating: a torn header can claim any length.
  if (offset + HEADER_BYTES + checked.bodyLength > size) return { kind: 'torn', reason: 'body cut short' };
  const body = Buffer.alloc(checked.bodyLength);
  const got = await fd.read(body, 0, checked.bodyLength, offset + HEADER_BYTES);
  if (got.bytesRead < checked.bodyLength) return { kind: 'torn', reason: 'body cut short' };
  const decoded = decodeBody(header, body);
  if (!decoded.ok) return { kind: 'torn', reason: decoded.reason };
  return { kind: 'record', request: decoded.request, size: HEADER_BYTES + checked.bodyLength };
}

async function fsyncDir(dir: string): Promise<void> {
  const fd = await fsp.open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}
