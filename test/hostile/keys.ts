import { prng } from '../helpers/mutate.js';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Wrong API keys, reproducible from `seed`: mostly well-formed keys with prefixes nobody has (the
 * common guess), some malformed ones, and some with `targetPrefix` (a real user's public prefix)
 * and a wrong secret, which cost the daemon a full argon2 verification each.
 */
export function wrongKeys(seed: number, count: number, targetPrefix: string, targeted: number): string[] {
  const random = prng(seed);
  const pick = (alphabet: string, n: number): string => Array.from({ length: n }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    if (i < targeted) keys.push(`ss_${targetPrefix}_${pick(BASE64URL, 43)}`);
    else if (i % 20 === 19) keys.push(pick(BASE64URL, 1 + Math.floor(random() * 80)));
    else keys.push(`ss_${pick(BASE32, 10)}_${pick(BASE64URL, 43)}`);
  }
  return keys;
}

export function prefixOf(key: string): string {
  return key.split('_')[1]!;
}
