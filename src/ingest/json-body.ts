import { jsonErrorPosition } from './json-error-position.js';
import { parseJsonInPieces } from './json-pieces.js';

export type JsonParseOutcome = { ok: true; value: unknown } | { ok: false; message: string; position: number | null };

/** From this size on, a body is decoded and parsed in pieces (see json-pieces.ts). */
const PIECEWISE_FROM_BYTES = 8 * 1024 * 1024;
const PIECE_BYTES = 1024 * 1024;

const hasUtf8Bom = (body: Buffer): boolean => body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf;

/** JSON.parse with the error position pulled out of V8's message, for a useful 400 answer. */
export function parseJsonBody(body: Buffer): JsonParseOutcome {
  if (body.length >= PIECEWISE_FROM_BYTES) {
    const pieces = parseJsonInPieces(body, hasUtf8Bom(body) ? 3 : 0, PIECE_BYTES);
    if (pieces) return { ok: true, value: pieces.value };
  }
  let text = body.toString('utf8');
  // Some HTTP clients prepend a UTF-8 byte order mark, which JSON.parse refuses.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, message, position: jsonErrorPosition(text) };
  }
}
