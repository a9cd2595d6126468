import { jsonErrorPosition } from './json-error-position.js';
import { findJsonLimitViolation, type JsonLimits, type JsonLimitViolation } from './json-limits.js';
import { errorMessage } from '../errors.js';
import { parseJsonInPieces, parseJsonInPiecesYielding, type PiecesOutcome } from './json-pieces.js';

export type JsonParseFailureCode = 'SS_INVALID_JSON' | 'SS_JSON_TOO_DEEP' | 'SS_JSON_STRING_TOO_LONG';

/** From this size on, a body is decoded and parsed in pieces (see json-pieces.ts). */
const PIECEWISE_FROM_BYTES = 8 * 1024 * 1024;
const PIECE_BYTES = 1024 * 1024;

const hasUtf8Bom = (body: Buffer): boolean => body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf;

export type JsonParseOutcome =
  | { ok: true; value: unknown }
  | { ok: false; message: string; position: number | null; code: JsonParseFailureCode };

/**
 * JSON.parse with the error position pulled out of V8's message, for a useful 400 answer.
 * With limits (new payloads from any transport), a body over them is refused before JSON.parse
 * sees what crosses them; payloads already stored are parsed without them.
 */
export function parseJsonBody(body: Buffer, limits: JsonLimits | null = null): JsonParseOutcome {
  if (body.length >= PIECEWISE_FROM_BYTES) {
    const pieces = parseJsonInPieces(body, hasUtf8Bom(body) ? 3 : 0, PIECE_BYTES, limits ?? undefined);
    if (pieces) return fromPieces(body, pieces);
  }
  return parseWhole(body, limits);
}

/** parseJsonBody, letting the event loop run between the pieces of a large body. */
export async function parseJsonBodyYielding(body: Buffer, limits: JsonLimits | null = null): Promise<JsonParseOutcome> {
  if (body.length >= PIECEWISE_FROM_BYTES) {
    const pieces = await parseJsonInPiecesYielding(body, hasUtf8Bom(body) ? 3 : 0, PIECE_BYTES, limits ?? undefined);
    if (pieces) return fromPieces(body, pieces);
  }
  return parseWhole(body, limits);
}

function fromPieces(body: Buffer, pieces: PiecesOutcome): JsonParseOutcome {
  return 'value' in pieces ? { ok: true, value: pieces.value } : refusal(body, pieces.overLimit);
}

/** The refusal of a body over the JSON limits, or null when it is within them. */
export function jsonLimitRefusal(body: Buffer, limits: JsonLimits): Extract<JsonParseOutcome, { ok: false }> | null {
  const overLimit = findJsonLimitViolation(body, limits);
  return overLimit && refusal(body, overLimit);
}

function refusal(body: Buffer, overLimit: JsonLimitViolation): Extract<JsonParseOutcome, { ok: false }> {
  return { ok: false, message: overLimit.message, position: textOffset(body, overLimit.byteOffset), code: overLimit.code };
}

/** One JSON.parse of the whole body, after the limits (when given) are checked on its bytes. */
function parseWhole(body: Buffer, limits: JsonLimits | null): JsonParseOutcome {
  const refused = limits && jsonLimitRefusal(body, limits);
  if (refused) return refused;
  let text = body.toString('utf8');
  // Some HTTP clients prepend a UTF-8 byte order mark, which JSON.parse refuses.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    const message = withoutQuotedText(errorMessage(err));
    return { ok: false, message, position: jsonErrorPosition(text), code: 'SS_INVALID_JSON' };
  }
}

/** A byte offset as the UTF-16 offset JSON.parse positions use (byte order mark removed). */
function textOffset(body: Buffer, byteOffset: number): number {
  return Math.max(0, body.subarray(hasUtf8Bom(body) ? 3 : 0, byteOffset).toString('utf8').length);
}

/**
 * V8 quotes a stretch of the body in some messages (`Unexpected token 'x', "{"key":"ss_…"... is
 * not valid JSON`). That stretch can hold a secret or health data and the message is logged and
 * sent back, so it is dropped: the position, line and column say where the error is.
 */
function withoutQuotedText(message: string): string {
  return message.replace(/^(Unexpected token .+?), (?:\.\.\.)?".*$/s, '$1');
}

// Built once: a string needle is turned into a Buffer at every call, for every payload.
const NUL_ESCAPE = Buffer.from('\\u0000');

/** A JSON text can only carry U+0000 as the escape `\u0000` (a raw control character is invalid JSON). */
export function mayContainNul(body: Buffer): boolean {
  return body.includes(NUL_ESCAPE);
}

/** A payload already stored (so already within the limits) parsed again for processing. */
export function parseStoredJson(body: Buffer): { json: unknown; mayContainNul: boolean } {
  const parsed = parseJsonBody(body);
  if (!parsed.ok) throw new Error(`stored payload is not valid JSON: ${parsed.message}`);
  return { json: parsed.value, mayContainNul: mayContainNul(body) };
}
