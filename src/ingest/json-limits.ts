/**
 * Structural limits checked on the raw bytes before JSON.parse sees them, so a hostile payload
 * (100,000 nested arrays, one 80 MB string) is refused as a whole before it can cost a parse,
 * a deep recursion further down, or a giant row. One pass, no allocation: the ingest path
 * carries 80–100 MB payloads, so this must stay a tight loop over the bytes.
 */

export interface JsonLimits {
  /** Deepest nesting of objects and arrays. */
  maxDepth: number;
  /** Longest string (key or value), counted in bytes as sent, escapes included. */
  maxStringBytes: number;
}

/**
 * Real Health Auto Export bodies nest 6–8 levels (heart-rate notifications: data → array →
 * item → heartRate → item → timestamp → interval) and their longest strings are ~40 bytes
 * (source names); voltages and routes are arrays of numbers, not strings.
 */
export const DEFAULT_JSON_LIMITS: JsonLimits = { maxDepth: 64, maxStringBytes: 1024 * 1024 };

export interface JsonLimitViolation {
  code: 'SS_JSON_TOO_DEEP' | 'SS_JSON_STRING_TOO_LONG';
  message: string;
  /** Byte offset in the body where the limit was crossed. */
  byteOffset: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
// '{' and '[' differ from each other only in bit 0x20, as do '}' and ']': one compare each.
const OPEN = 0x7b;
const CLOSE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CASE_BIT = 0x20;
const OPENERS = [OPEN, OPEN_BRACKET] as const;

/**
 * The first limit the body crosses, or null. It does not validate the JSON (JSON.parse does);
 * on invalid JSON it may report a limit instead of the syntax error, which is refused just the same.
 * Measured at 800–900 MB/s on an 85 MB payload (scripts/bench-json-limits.ts), about a tenth of JSON.parse.
 */
export function findJsonLimitViolation(body: Uint8Array, limits: JsonLimits): JsonLimitViolation | null {
  if (withinLimitsByCount(body, limits)) return null;
  const { maxDepth, maxStringBytes } = limits;
  const n = body.length;
  let depth = 0;
  let i = 0;
  while (i < n) {
    const c = body[i++]!;
    // Digits, punctuation and the quote sort below '['; brackets and literals' letters above.
    if (c < OPEN_BRACKET) {
      if (c !== QUOTE) continue;
      const start = i;
      while (i < n) {
        const x = body[i++]!;
        if (x === QUOTE) break;
        if (x === BACKSLASH) i++;
      }
      // i is one past the closing quote (or past the end when the string never closes).
      if (Math.min(i, n + 1) - 1 - start > maxStringBytes) return stringTooLong(limits, start - 1);
      continue;
    }
    const folded = c | CASE_BIT;
    if (folded === OPEN) {
      if (++depth > maxDepth) return tooDeep(limits, i - 1);
    } else if (folded === CLOSE) {
      depth--;
    }
  }
  return null;
}

/**
 * True when the body cannot cross the limits whatever its structure: no string can be longer
 * than the body, and nesting cannot be deeper than the number of '{' and '[' bytes (those in
 * strings included). A few native searches instead of the walk: a small MQTT payload (~730 bytes,
 * 10 brackets) is cleared in 0.22 µs against 0.70 for the walk. Past maxDepth brackets it gives up
 * after at most 2 × (maxDepth + 1) searches, and the walk decides.
 */
function withinLimitsByCount(body: Uint8Array, limits: JsonLimits): boolean {
  if (body.length > limits.maxStringBytes) return false;
  let brackets = 0;
  for (const opener of OPENERS) {
    for (let i = body.indexOf(opener); i !== -1; i = body.indexOf(opener, i + 1)) {
      if (++brackets > limits.maxDepth) return false;
    }
  }
  return true;
}

/** The violation of a string opening (its quote) at byteOffset. */
export function stringTooLong(limits: JsonLimits, byteOffset: number): JsonLimitViolation {
  return { code: 'SS_JSON_STRING_TOO_LONG', message: `A string is longer than the limit of ${limits.maxStringBytes} bytes`, byteOffset };
}

/** The violation of the object or array opening at byteOffset, one level too deep. */
export function tooDeep(limits: JsonLimits, byteOffset: number): JsonLimitViolation {
  return { code: 'SS_JSON_TOO_DEEP', message: `Objects and arrays are nested deeper than the limit of ${limits.maxDepth} levels`, byteOffset };
}
