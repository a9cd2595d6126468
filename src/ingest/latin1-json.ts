import { isAscii } from 'node:buffer';

/** A character Latin-1 decoding made of a byte over 0x7f (bytes of a UTF-8 sequence, or an invalid byte). */
const FROM_HIGH_BYTE = /[\u0080-\u00ff]/;
/** Restored strings up to this length are remembered: a large export repeats the same few source names a million times. */
const MAX_REMEMBERED_LENGTH = 256;
const MAX_REMEMBERED = 4_096;

/** Sets an own property; `__proto__` is defined, not assigned, so it stays an own key as JSON.parse makes it. */
const setOwn = (object: Record<string, unknown>, key: string, value: unknown): void => {
  if (key === '__proto__') Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  else object[key] = value;
};

/**
 * JSON.parse of a stretch of UTF-8 bytes, decoded as Latin-1 where that gives the same value.
 *
 * Why: one character outside Latin-1 (Health Auto Export's source names hold U+2019) makes the
 * UTF-8 decoding of a stretch a two-byte string, and both the decoding and JSON.parse of such a
 * string cost about half as much again as for a one-byte one. Latin-1 decoding maps every byte
 * to one character, so JSON.parse sees the same structure (everything outside strings is ASCII
 * in valid JSON, and anything else is invalid either way) and strings whose characters U+0080
 * to U+00FF are exactly their bytes. Those strings, and only those, are then decoded as UTF-8.
 *
 * That holds only while no `\u` escape is in the stretch: `\u00e9` and a raw é would look the
 * same afterwards, so such a stretch is decoded as UTF-8 first, as JSON.parse alone would.
 * Every other escape stands for an ASCII character, which never joins a UTF-8 sequence, so
 * invalid bytes turn into U+FFFD exactly as when the whole stretch is decoded as UTF-8.
 *
 * One instance per payload: restored strings are shared, so a million copies of the same source
 * name in the parsed tree are one string.
 */
export class Latin1Json {
  readonly #restored = new Map<string, string>();
  /**
   * A run of array elements is copied here between `[` and `]` and decoded from here: the text
   * `[` + run + `]` would be a concatenation, which JSON.parse first copies into a new flat
   * string of the run's size (a megabyte or more per run, a tenth of a second per 100 MB).
   */
  #bracketed: Buffer | null = null;

  /** JSON.parse of buf[from, to), wrapped in `[` `]` when `asArrayItems` (a run of array elements). Throws as JSON.parse does. */
  parse(buf: Buffer, from: number, to: number, asArrayItems = false): unknown {
    const bytes = buf.subarray(from, to);
    const ascii = isAscii(bytes);
    const latin1 = ascii || !bytes.includes('\\u');
    const encoding = latin1 ? 'latin1' : 'utf8';
    const text = asArrayItems ? this.#bracketedText(bytes, encoding) : buf.toString(encoding, from, to);
    const value: unknown = JSON.parse(text);
    return latin1 && !ascii ? this.#restore(value) : value;
  }

  #bracketedText(bytes: Buffer, encoding: 'latin1' | 'utf8'): string {
    const length = bytes.length + 2;
    if (!this.#bracketed || this.#bracketed.length < length) this.#bracketed = Buffer.allocUnsafe(Math.max(length, 2 * (this.#bracketed?.length ?? 0)));
    const out = this.#bracketed;
    out[0] = 0x5b;
    bytes.copy(out, 1);
    out[length - 1] = 0x5d;
    return out.toString(encoding, 0, length);
  }

  /** The value with its text restored: the same value (objects changed in place) unless it is a string to restore or an object with a key to restore. */
  #restore(value: unknown): unknown {
    if (typeof value === 'string') return FROM_HIGH_BYTE.test(value) ? this.#string(value) : value;
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        const restored = this.#restore(item);
        if (restored !== item) value[i] = restored;
      }
      return value;
    }
    const object = value as Record<string, unknown>;
    let keyToRestore = false;
    // JSON.parse objects inherit only from Object.prototype, which has no enumerable keys.
    for (const key in object) {
      if (FROM_HIGH_BYTE.test(key)) keyToRestore = true;
      const item = object[key];
      const restored = this.#restore(item);
      if (restored !== item) setOwn(object, key, restored);
    }
    return keyToRestore ? this.#withRestoredKeys(object) : object;
  }

  /**
   * The object with its keys restored, in the same order. Two keys may restore to the same one
   * (invalid bytes both become U+FFFD): as in JSON.parse, the key keeps its first place and the
   * last value.
   */
  #withRestoredKeys(object: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const key in object) {
      const restored = FROM_HIGH_BYTE.test(key) ? this.#string(key) : key;
      setOwn(out, restored, object[key]);
    }
    return out;
  }

  #string(latin1: string): string {
    const remembered = this.#restored.get(latin1);
    if (remembered !== undefined) return remembered;
    const restored = Buffer.from(latin1, 'latin1').toString('utf8');
    if (latin1.length <= MAX_REMEMBERED_LENGTH) {
      if (this.#restored.size >= MAX_REMEMBERED) this.#restored.clear();
      this.#restored.set(latin1, restored);
    }
    return restored;
  }
}
