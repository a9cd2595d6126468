import type { ApiKeySummary, CreatedKey } from '../auth/key-store.js';

export function formatKeyTable(keys: ApiKeySummary[]): string {
  if (keys.length === 0) return 'No API keys yet. Create one with: self-sensored keys create --user NAME';
  const rows = keys.map((k) => [
    k.id,
    k.prefix,
    k.userName,
    k.label ?? '',
    k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : k.expiresAt && k.expiresAt <= new Date() ? 'expired' : 'active',
    k.createdAt.toISOString(),
    k.lastUsedAt?.toISOString() ?? 'never',
  ]);
  const header = ['ID', 'PREFIX', 'USER', 'LABEL', 'STATUS', 'CREATED', 'LAST USED'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function keyToJson(k: ApiKeySummary): Record<string, unknown> {
  return {
    id: k.id,
    prefix: k.prefix,
    user: k.userName,
    label: k.label,
    scopes: k.scopes,
    createdAt: k.createdAt.toISOString(),
    expiresAt: k.expiresAt?.toISOString() ?? null,
    revokedAt: k.revokedAt?.toISOString() ?? null,
    lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  };
}

export function createdKeyToJson(k: CreatedKey): Record<string, unknown> {
  return { id: k.id, key: k.key, prefix: k.prefix, user: k.userName, label: k.label };
}
