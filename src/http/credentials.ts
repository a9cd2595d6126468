/**
 * The API key from whichever header style the client uses. Health Auto Export sends arbitrary
 * custom headers, and peers configure it with `Authorization: Bearer`, `X-API-Key` or `api-key`.
 * Takes `req.headersDistinct` (names already lower-cased, repeats kept apart), so a repeated
 * header is seen value by value instead of as a joined "a, b" that could never match.
 */
export type PresentedCredentials =
  | { kind: 'none' }
  | { kind: 'key'; key: string }
  /**
   * Two different keys (repeated headers, or two header styles): refused rather than picking one,
   * since whichever rule picked it, a proxy or client library that reorders headers would make
   * the request act as another key than the sender meant.
   */
  | { kind: 'ambiguous' };

export function extractApiKey(headers: NodeJS.Dict<string[]>): PresentedCredentials {
  const keys = new Set<string>();
  for (const value of headers['authorization'] ?? []) addKey(keys, bearerToken(value));
  for (const value of headers['x-api-key'] ?? []) addKey(keys, plainKey(value));
  for (const value of headers['api-key'] ?? []) addKey(keys, plainKey(value));
  if (keys.size > 1) return { kind: 'ambiguous' };
  const [key] = keys;
  return key === undefined ? { kind: 'none' } : { kind: 'key', key };
}

function addKey(keys: Set<string>, key: string | undefined): void {
  if (key !== undefined) keys.add(key);
}

function bearerToken(value: string): string | undefined {
  return /^\s*bearer\s+(\S+)\s*$/i.exec(value)?.[1];
}

function plainKey(value: string): string | undefined {
  const trimmed = value.trim();
  return trimmed ? trimmed : undefined;
}
