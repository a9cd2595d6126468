import { setImmediate } from 'node:timers/promises';
import { stringTooLong, tooDeep, type JsonLimits, type JsonLimitViolation } from './json-limits.js';
import { Latin1Json } from './latin1-json.js';

/** The parsed value, or the first JSON limit the body crosses (when limits were given). */
export type PiecesOutcome = { value: unknown } | { overLimit: JsonLimitViolation };

/**
 * JSON.parse of a large UTF-8 body without ever holding the whole body as one string. Decoding
 * 100 MB at once makes a 100 MB string, or a 200 MB one as soon as a single character is outside
 * Latin-1 (Health Auto Export's source names hold U+2019), next to the bytes and the parsed tree.
 *
 * Only the outline of the big containers is walked here; every run of array elements, member
 * value or key of up to `pieceBytes` is decoded (as Latin-1 where that gives the same value:
 * latin1-json.ts) and handed to JSON.parse, which checks it. The
 * result is the value JSON.parse would give (a `__proto__` key stays an own property). On
 * anything unexpected it returns `undefined`, and the caller parses the whole body the usual
 * way, which also finds the error and its position.
 *
 * With `limits`, the walk that finds the pieces (every byte passes it once) also checks the JSON
 * limits, in byte order like findJsonLimitViolation, before JSON.parse sees anything past a
 * limit: the separate pass over the bytes is not needed.
 */
export function parseJsonInPieces(body: Buffer, start: number, pieceBytes: number, limits?: JsonLimits): PiecesOutcome | undefined {
  try {
    const pieces = readWhole(body, start, pieceBytes, limits);
    for (let step = pieces.next(); ; step = pieces.next()) if (step.done) return step.value;
  } catch (err) {
    return err instanceof LimitCrossed ? { overLimit: err.violation } : undefined;
  }
}

/**
 * The same, but the event loop runs between pieces: a socket the process is writing to (the
 * raw payload on its way to the database) keeps draining while the body is parsed.
 */
export async function parseJsonInPiecesYielding(body: Buffer, start: number, pieceBytes: number, limits?: JsonLimits): Promise<PiecesOutcome | undefined> {
  try {
    const pieces = readWhole(body, start, pieceBytes, limits);
    for (let step = pieces.next(); ; step = pieces.next()) {
      if (step.done) return step.value;
      await setImmediate();
    }
  } catch (err) {
    return err instanceof LimitCrossed ? { overLimit: err.violation } : undefined;
  }
}

/** Yields after each piece it parses; returns the value, or undefined if anything follows it. */
function* readWhole(body: Buffer, start: number, pieceBytes: number, limits: JsonLimits | undefined): Generator<void, { value: unknown } | undefined> {
  const reader = new PieceReader(body, pieceBytes, limits ?? { maxDepth: Infinity, maxStringBytes: Infinity });
  const [value, end] = yield* reader.value(reader.skipSpace(start), 0);
  if (reader.skipSpace(end) !== body.length) return undefined;
  return { value };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

class NotWellFormed extends Error {}

class LimitCrossed extends Error {
  constructor(readonly violation: JsonLimitViolation) {
    super(violation.message);
  }
}

const isSpace = (b: number | undefined): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isContainer = (b: number | undefined): boolean => b === OPEN_BRACE || b === OPEN_BRACKET;

class PieceReader {
  readonly #json = new Latin1Json();

  constructor(
    private readonly buf: Buffer,
    private readonly pieceBytes: number,
    private readonly limits: JsonLimits,
  ) {}

  skipSpace(i: number): number {
    while (isSpace(this.buf[i])) i++;
    return i;
  }

  /**
   * The value starting at i, inside `depth` containers, and the index just after it; yields
   * after each piece parsed.
   */
  *value(i: number, depth: number): Generator<void, [unknown, number]> {
    const b = this.buf[i];
    if (isContainer(b)) {
      const end = this.containerEnd(i, this.pieceBytes, depth);
      if (end >= 0) return [this.parse(i, end), end];
      return b === OPEN_BRACKET ? yield* this.array(i, depth + 1) : yield* this.object(i, depth + 1);
    }
    const end = this.scalarEnd(i);
    return [this.parse(i, end), end];
  }

  private parse(from: number, to: number): unknown {
    return this.#json.parse(this.buf, from, to);
  }

  /** The array opening at i, itself at nesting `depth`. */
  private *array(i: number, depth: number): Generator<void, [unknown[], number]> {
    const out: unknown[] = [];
    let runStart = -1;
    let runEnd = -1;
    const flush = (): void => {
      if (runStart < 0) return;
      const items = this.#json.parse(this.buf, runStart, runEnd, true) as unknown[];
      for (const item of items) out.push(item);
      runStart = -1;
    };
    let j = this.skipSpace(i + 1);
    if (this.buf[j] === CLOSE_BRACKET) return [out, j + 1];
    for (;;) {
      const end = isContainer(this.buf[j]) ? this.containerEnd(j, this.pieceBytes, depth) : this.scalarEnd(j);
      let next: number;
      if (end < 0) {
        flush();
        const [item, itemEnd] = yield* this.value(j, depth);
        out.push(item);
        next = itemEnd;
      } else {
        if (runStart < 0) runStart = j;
        runEnd = end;
        if (runEnd - runStart >= this.pieceBytes) {
          flush();
          yield;
        }
        next = end;
      }
      const k = this.skipSpace(next);
      if (this.buf[k] === COMMA) {
        j = this.skipSpace(k + 1);
        continue;
      }
      if (this.buf[k] !== CLOSE_BRACKET) throw new NotWellFormed();
      flush();
      return [out, k + 1];
    }
  }

  /** The object opening at i, itself at nesting `depth`. */
  private *object(i: number, depth: number): Generator<void, [Record<string, unknown>, number]> {
    const out: Record<string, unknown> = {};
    let j = this.skipSpace(i + 1);
    if (this.buf[j] === CLOSE_BRACE) return [out, j + 1];
    for (;;) {
      if (this.buf[j] !== QUOTE) throw new NotWellFormed();
      const keyEnd = this.stringEnd(j);
      const key = this.parse(j, keyEnd) as string;
      const colon = this.skipSpace(keyEnd);
      if (this.buf[colon] !== COLON) throw new NotWellFormed();
      const [member, end] = yield* this.value(this.skipSpace(colon + 1), depth);
      // Like JSON.parse: the last of duplicate keys wins, and `__proto__` is an ordinary own key.
      Object.defineProperty(out, key, { value: member, enumerable: true, writable: true, configurable: true });
      const k = this.skipSpace(end);
      if (this.buf[k] === COMMA) {
        j = this.skipSpace(k + 1);
        continue;
      }
      if (this.buf[k] !== CLOSE_BRACE) throw new NotWellFormed();
      return [out, k + 1];
    }
  }

  /** Index after the string opening at i (escaped quotes skipped); checks its length. */
  private stringEnd(i: number): number {
    let j = i + 1;
    for (;;) {
      const quote = this.buf.indexOf(QUOTE, j);
      if (quote < 0) throw new NotWellFormed();
      let backslashes = 0;
      while (this.buf[quote - 1 - backslashes] === BACKSLASH) backslashes++;
      if (backslashes % 2 === 0) {
        if (quote - i - 1 > this.limits.maxStringBytes) throw new LimitCrossed(stringTooLong(this.limits, i));
        return quote + 1;
      }
      j = quote + 1;
    }
  }

  /** Index after a string, number or literal at i: JSON.parse checks what it is. */
  private scalarEnd(i: number): number {
    if (this.buf[i] === QUOTE) return this.stringEnd(i);
    let j = i;
    for (;;) {
      const b = this.buf[j];
      if (b === undefined || b === COMMA || b === CLOSE_BRACKET || b === CLOSE_BRACE || isSpace(b)) break;
      j++;
    }
    if (j === i) throw new NotWellFormed();
    return j;
  }

  /**
   * Index after the object or array opening at i inside `depth` containers, or -1 once it is
   * longer than `limit` bytes (it is then read in pieces). Brackets are only counted: JSON.parse
   * checks the piece.
   */
  private containerEnd(i: number, limit: number, depth: number): number {
    const maxLocal = this.limits.maxDepth - depth;
    const buf = this.buf;
    const stop = Math.min(buf.length, i + limit);
    let local = 0;
    let j = i;
    while (j < stop) {
      const b = buf[j]!;
      if (b === QUOTE) {
        j = this.stringEnd(j);
        continue;
      }
      if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        if (++local > maxLocal) throw new LimitCrossed(tooDeep(this.limits, j));
      } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        local--;
        if (local === 0) return j + 1;
      }
      j++;
    }
    if (stop === buf.length) throw new NotWellFormed();
    return -1;
  }
}
