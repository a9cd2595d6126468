import type { ApiKeySummary, CreatedKey } from './key-store.js';

/** A key as the CLI (--json) and the HTTP API show it: never the secret or its hash. */
export function keyToJson(k: ApiKeySummary): Record<string, unknown> {
  return {
    id: k.id,
    prefix: k.prefix,
    user: k.userName,
    label: k.label,
    scopes: k.scopes,
    origin: k.origin,
    createdAt: k.createdAt.toISOString(),
    expiresAt: k.expiresAt?.toISOString() ?? null,
    revokedAt: k.revokedAt?.toISOString() ?? null,
    lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  };
}

/** A key just created: the only answer that contains the key itself. */
export function createdKeyToJson(k: CreatedKey): Record<string, unknown> {
  return {
    id: k.id,
    key: k.key,
    prefix: k.prefix,
    user: k.userName,
    label: k.label,
    scopes: k.scopes,
    origin: k.origin,
    expiresAt: k.expiresAt?.toISOString() ?? null,
  };
}
