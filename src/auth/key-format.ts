import { createHash, randomBytes } from 'node:crypto';

/**
 * API keys look like `ss_<prefix>_<secret>`: the prefix (10 lowercase base32 chars) is public and
 * finds the row; the secret (32 random bytes, base64url) is only ever stored as an argon2id hash.
 */
export const KEY_PATTERN = /^ss_([a-z2-7]{10})_([A-Za-z0-9_-]{43})$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * A key of the user's own choosing (e.g. the UUID an app already sends) has no public part, so
 * its row is found by a lookup value derived from the whole key. Own keys are printable ASCII
 * without spaces, so that every transport (HTTP header, MQTT password) carries them unchanged.
 */
export const OWN_KEY_MIN_LENGTH = 16;
export const OWN_KEY_MAX_LENGTH = 256;
const OWN_KEY_CHARS = /^[\x21-\x7e]+$/;
// Fewer distinct characters than this cannot carry much entropy whatever the length ("aaaa…", "1212…").
const OWN_KEY_MIN_DISTINCT_CHARS = 8;
const OWN_LOOKUP_LABEL = 'self-sensored own-key lookup v1\0';

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

/**
 * The lookup value of an own-choice key, stored in api_keys.prefix: `own_` and 64 bits of a
 * domain-separated SHA-256. It never collides with a generated prefix (10 base32 chars). It is a
 * fast hash, so after a database leak an own key is only as safe as its own entropy: hence the
 * strength check at registration (see docs/security.md).
 */
export function ownKeyLookup(key: string): string {
  return `own_${createHash('sha256').update(OWN_LOOKUP_LABEL).update(key, 'utf8').digest('hex').slice(0, 16)}`;
}

/** Where to find a presented key's row: its prefix, or its own-key lookup; null when it cannot be a key. */
export function lookupOf(presented: string): string | null {
  const key = presented.trim();
  const parsed = parseKey(key);
  if (parsed) return parsed.prefix;
  // A mangled generated key is not worth a database round trip.
  if (key.startsWith('ss_')) return null;
  if (key.length < OWN_KEY_MIN_LENGTH || key.length > OWN_KEY_MAX_LENGTH || !OWN_KEY_CHARS.test(key)) return null;
  return ownKeyLookup(key);
}

/** Why an own-choice key may not be registered, or null when it may. */
export function ownKeyProblem(key: string): string | null {
  if (key.length < OWN_KEY_MIN_LENGTH) return `a key of your own must have at least ${OWN_KEY_MIN_LENGTH} characters (it has ${key.length})`;
  if (key.length > OWN_KEY_MAX_LENGTH) return `a key of your own may have at most ${OWN_KEY_MAX_LENGTH} characters`;
  if (!OWN_KEY_CHARS.test(key)) return 'a key of your own may only contain printable ASCII characters, without spaces';
  if (key.startsWith('ss_')) return 'a key of your own must not start with "ss_" (reserved for generated keys)';
  if (new Set(key).size < OWN_KEY_MIN_DISTINCT_CHARS) {
    return `a key of your own must use at least ${OWN_KEY_MIN_DISTINCT_CHARS} different characters; a random UUID or a generated key is a good choice`;
  }
  return null;
}
