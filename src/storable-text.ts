const NUL = '\u0000';

/**
 * PostgreSQL refuses U+0000 in text and jsonb. Where text only describes data (a rejection's
 * name, an MQTT topic or client id) it is made storable instead of failing the statement, which
 * would lose everything written with it; the raw payload keeps the original bytes.
 */
export function storableText(text: string): string {
  return text.includes(NUL) ? text.replaceAll(NUL, '\\u0000') : text;
}
