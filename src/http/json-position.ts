/**
 * 1-based line and column of a JSON.parse error position, for an answer a person can act on.
 * The position counts UTF-16 code units of the decoded text with a leading byte order mark
 * removed, which is how the ingest sink parses the body.
 */
export function lineAndColumn(body: Buffer, position: number): { line: number; column: number } {
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const at = Math.max(0, Math.min(position, text.length));
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < at; i = text.indexOf('\n', i + 1)) {
    line += 1;
    lineStart = i + 1;
  }
  return { line, column: at - lineStart + 1 };
}
