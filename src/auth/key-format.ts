import { randomBytes } from 'node:crypto';

/**
 * API keys look like `ss_<prefix>_<secret>`: the prefix (10 lowercase base32 chars) is public and
 * finds the row; the secret (32 random bytes, base64url) is only ever stored as an argon2id hash.
 */
export const KEY_PATTERN = /^ss_([a-z2-7]{10})_([A-Za-z0-9_-]{43})$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export interface ParsedKey {
  prefix: string;
  secret: string;
}

export function parseKey(presented: string): ParsedKey | null {
  const match = KEY_PATTERN.exec(presented.trim());
  return match ? { prefix: match[1]!, secret: match[2]! } : null;
}

export function generateKey(): { key: string; prefix: string } {
  const bytes = randomBytes(10);
  let prefix = '';
  for (const b of bytes) prefix += BASE32[b & 31];
  const secret = randomBytes(32).toString('base64url');
  return { key: `ss_${prefix}_${secret}`, prefix };
}
