/**
 * The API key from whichever header style the client uses. Health Auto Export sends arbitrary
 * custom headers, and peers configure it with `Authorization: Bearer`, `X-API-Key` or `api-key`.
 * Takes `req.headersDistinct` (names already lower-cased, repeats kept apart), so a repeated
 * header yields its first value instead of a joined "a, b" that could never match.
 */
export function extractApiKey(headers: NodeJS.Dict<string[]>): string | undefined {
  return bearerToken(headers['authorization']?.[0]) ?? plainKey(headers['x-api-key']?.[0]) ?? plainKey(headers['api-key']?.[0]);
}

function bearerToken(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return /^\s*bearer\s+(\S+)\s*$/i.exec(value)?.[1];
}

function plainKey(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}
