import { jsonErrorPosition } from './json-error-position.js';

export type JsonParseOutcome = { ok: true; value: unknown } | { ok: false; message: string; position: number | null };

/** JSON.parse with the error position pulled out of V8's message, for a useful 400 answer. */
export function parseJsonBody(body: Buffer): JsonParseOutcome {
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
