import type { ApiKeySummary } from '../auth/key-store.js';

export function formatKeyTable(keys: ApiKeySummary[]): string {
  if (keys.length === 0) return 'No API keys yet. Create one with: self-sensored keys create --user NAME';
  const now = new Date();
  const rows = keys.map((k) => [
    k.id,
    k.prefix,
    k.userName,
    k.label ?? '',
    k.scopes.join(','),
    k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : k.expiresAt && k.expiresAt <= now ? 'expired' : 'active',
    k.expiresAt?.toISOString() ?? 'never',
    k.createdAt.toISOString(),
    k.lastUsedAt?.toISOString() ?? 'never',
  ]);
  const header = ['ID', 'PREFIX', 'USER', 'LABEL', 'SCOPES', 'STATUS', 'EXPIRES', 'CREATED', 'LAST USED'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
