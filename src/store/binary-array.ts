/**
 * One-dimensional PostgreSQL arrays in the binary wire format (what array_recv reads), built
 * straight into a Buffer. pg sends a Buffer parameter as binary, so `unnest($n::float8[])` gets
 * its values without text formatting in Node or text parsing in PostgreSQL, and encoding a chunk
 * leaves no per-value strings behind for the garbage collector.
 *
 * Layout: ndim, has-nulls flag, element type oid, length, lower bound (1); then per element its
 * byte length (-1 for NULL) and bytes.
 */

/** Element types a column can have, with their type oids. */
const elementOids = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  float8: 701,
  date: 1082,
  timestamptz: 1184,
  uuid: 2950,
  jsonb: 3802,
} as const;

export type ElementType = keyof typeof elementOids;

export function isElementType(type: string): type is ElementType {
  return Object.hasOwn(elementOids, type);
}

const HEADER_BYTES = 20;

/** Bytes per element (length word included) of the fixed-size types; variable ones get a guess. */
const elementBytes: Readonly<Record<ElementType, number>> = {
  bool: 5,
  bytea: 64,
  int8: 12,
  int2: 6,
  int4: 8,
  text: 28,
  float8: 12,
  date: 8,
  timestamptz: 12,
  uuid: 20,
  jsonb: 32,
};

/** A starting size for an array of `elements` values of `type` that mostly avoids growing it. */
export function expectedArrayBytes(type: ElementType, elements: number): number {
  return HEADER_BYTES + elements * elementBytes[type];
}
/** 2000-01-01T00:00Z, PostgreSQL's epoch for date and timestamptz. */
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);
const MS_PER_DAY = 86_400_000;
const TWO_POW_32 = 2 ** 32;

export class BinaryArrayWriter {
  #buf: Buffer;
  /**
   * The same bytes as #buf: DataView's setters compile to plain stores, where Buffer's
   * write*BE methods check their arguments at every call (a third of the time per value).
   */
  #view: DataView;
  #offset = HEADER_BYTES;
  #count = 0;
  #hasNull = false;
  /** The last text or jsonb value written, and where its bytes are: columns repeat values (units, a payload's source). */
  #lastText: string | undefined;
  #lastStart = 0;
  #lastBytes = 0;

  constructor(
    readonly type: ElementType,
    initialBytes = 64 * 1024,
  ) {
    this.#buf = Buffer.allocUnsafe(Math.max(initialBytes, HEADER_BYTES));
    this.#view = viewOf(this.#buf);
  }

  get bytes(): number {
    return this.#offset;
  }

  /**
   * Appends one value: a number for numeric types (int8 also takes a decimal string, as pg returns
   * bigint), epoch milliseconds for timestamptz, a `YYYY-MM-DD` string for date, a string for text
   * and jsonb (JSON text) and uuid (canonical form), a Buffer for bytea, a boolean for bool.
   */
  push(value: unknown): void {
    this.#count++;
    if (value === null || value === undefined) {
      this.#hasNull = true;
      this.#int32(-1);
      return;
    }
    switch (this.type) {
      case 'float8':
        this.#ensure(12);
        this.#view.setInt32(this.#offset, 8);
        this.#view.setFloat64(this.#offset + 4, value as number);
        this.#offset += 12;
        return;
      case 'int2':
        this.#ensure(6);
        this.#view.setInt32(this.#offset, 2);
        this.#view.setInt16(this.#offset + 4, inRange(value as number, INT16_MIN, INT16_MAX));
        this.#offset += 6;
        return;
      case 'int8':
        this.#int8(value as number | string);
        return;
      case 'int4':
        this.#ensure(8);
        this.#view.setInt32(this.#offset, 4);
        this.#view.setInt32(this.#offset + 4, inRange(value as number, INT32_MIN, INT32_MAX));
        this.#offset += 8;
        return;
      case 'bool':
        this.#ensure(5);
        this.#view.setInt32(this.#offset, 1);
        this.#buf[this.#offset + 4] = value ? 1 : 0;
        this.#offset += 5;
        return;
      case 'timestamptz':
        this.#timestamp(value as number);
        return;
      case 'date':
        this.#ensure(8);
        this.#view.setInt32(this.#offset, 4);
        this.#view.setInt32(this.#offset + 4, daysSincePgEpoch(value as string));
        this.#offset += 8;
        return;
      case 'text':
        this.#text(String(value), false);
        return;
      case 'bytea': {
        const bytes = value as Buffer;
        this.#ensure(4 + bytes.length);
        this.#view.setInt32(this.#offset, bytes.length);
        bytes.copy(this.#buf, this.#offset + 4);
        this.#offset += 4 + bytes.length;
        return;
      }
      case 'uuid':
        this.#uuid(value as string);
        return;
      case 'jsonb':
        // Most payloads' rejections and not-stored lists are empty.
        this.#text(typeof value === 'string' ? value : Array.isArray(value) && value.length === 0 ? '[]' : JSON.stringify(value), true);
        return;
    }
  }

  /** The finished array; the writer must not be used afterwards. */
  finish(): Buffer {
    const b = this.#buf;
    b.writeInt32BE(1, 0);
    b.writeInt32BE(this.#hasNull ? 1 : 0, 4);
    b.writeInt32BE(elementOids[this.type], 8);
    b.writeInt32BE(this.#count, 12);
    b.writeInt32BE(1, 16);
    return b.subarray(0, this.#offset);
  }

  /** Microseconds since 2000-01-01 as int64: exact, since epoch ms × 1000 stays below 2^53. */
  #timestamp(epochMs: number): void {
    this.#ensure(12);
    const micros = (epochMs - PG_EPOCH_MS) * 1000;
    const high = Math.floor(micros / TWO_POW_32);
    this.#view.setInt32(this.#offset, 8);
    this.#view.setInt32(this.#offset + 4, high);
    this.#view.setUint32(this.#offset + 8, micros - high * TWO_POW_32);
    this.#offset += 12;
  }

  #text(text: string, jsonb: boolean): void {
    if (text === this.#lastText) {
      // The same value as before: its bytes (jsonb version byte included) copied, not encoded again.
      const bytes = this.#lastBytes;
      this.#ensure(4 + bytes);
      this.#view.setInt32(this.#offset, bytes);
      this.#buf.copyWithin(this.#offset + 4, this.#lastStart, this.#lastStart + bytes);
      this.#offset += 4 + bytes;
      return;
    }
    const prefix = jsonb ? 1 : 0;
    this.#ensure(4 + prefix + text.length * 3);
    const start = this.#offset + 4;
    if (jsonb) this.#buf[start] = 1; // jsonb binary format version
    const written = this.#buf.write(text, start + prefix, 'utf8');
    this.#view.setInt32(this.#offset, written + prefix);
    this.#offset = start + prefix + written;
    this.#lastText = text;
    this.#lastStart = start;
    this.#lastBytes = prefix + written;
  }

  /**
   * int8 from a number or a decimal string (pg returns bigint so). Ids and counts are safe
   * integers: written as two 32-bit halves, without a BigInt per value.
   */
  #int8(value: number | string): void {
    this.#ensure(12);
    this.#view.setInt32(this.#offset, 8);
    const n = typeof value === 'number' ? value : Number(value);
    // A string must read back as itself: BigInt refuses forms Number takes ('1e3', '0x1f', ' 7').
    if (Number.isSafeInteger(n) && (typeof value === 'number' || String(n) === value)) {
      const high = Math.floor(n / TWO_POW_32);
      this.#view.setInt32(this.#offset + 4, high);
      this.#view.setUint32(this.#offset + 8, n - high * TWO_POW_32);
    } else {
      this.#buf.writeBigInt64BE(BigInt(value), this.#offset + 4);
    }
    this.#offset += 12;
  }

  #uuid(uuid: string): void {
    this.#ensure(20);
    this.#view.setInt32(this.#offset, 16);
    uuidBytes(uuid).copy(this.#buf, this.#offset + 4);
    this.#offset += 20;
  }

  #int32(n: number): void {
    this.#ensure(4);
    this.#view.setInt32(this.#offset, n);
    this.#offset += 4;
  }

  #ensure(more: number): void {
    if (this.#offset + more <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#offset + more));
    this.#buf.copy(grown, 0, 0, this.#offset);
    this.#buf = grown;
    this.#view = viewOf(grown);
  }
}

const viewOf = (buf: Buffer): DataView => new DataView(buf.buffer, buf.byteOffset, buf.length);

const INT16_MIN = -(2 ** 15);
const INT16_MAX = 2 ** 15 - 1;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** DataView wraps an integer that does not fit; a value the column cannot hold must fail the statement instead, as Buffer's writers did. */
function inRange(value: number, min: number, max: number): number {
  if (!(value >= min && value <= max)) throw new RangeError(`${value} is out of range for the array's element type (${min} to ${max})`);
  return value;
}

// A group's payloads nearly all come with the same API key: its bytes are remembered.
let lastUuid = '';
let lastUuidBytes = Buffer.alloc(16);

function uuidBytes(uuid: string): Buffer {
  if (uuid === lastUuid) return lastUuidBytes;
  const hex = uuid.replaceAll('-', '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a uuid: ${JSON.stringify(uuid)}`);
  lastUuidBytes = Buffer.from(hex, 'hex');
  lastUuid = uuid;
  return lastUuidBytes;
}

// Rows come in time order, so the local date of one row is nearly always that of the row before
// (1,440 one-minute samples a day): the last one is remembered.
let lastDate = '';
let lastDays = 0;

/** Days from 2000-01-01 to a `YYYY-MM-DD` calendar date. */
function daysSincePgEpoch(date: string): number {
  if (date === lastDate) return lastDays;
  lastDays = computeDaysSincePgEpoch(date);
  lastDate = date;
  return lastDays;
}

function computeDaysSincePgEpoch(date: string): number {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new Error(`not a YYYY-MM-DD date: ${JSON.stringify(date)}`);
  const ms = Date.UTC(Number(date.slice(0, 4)), Number(date.slice(5, 7)) - 1, Number(date.slice(8, 10)));
  return Math.round((ms - PG_EPOCH_MS) / MS_PER_DAY);
}
