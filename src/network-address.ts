import { isIP } from 'node:net';

// One spelling and one bucket per client, shared by the HTTP rate limits and the failed-login
// throttle (both transports), so that the two never disagree on who a client is.

/** IPv4-mapped IPv6 (::ffff:192.0.2.1) as plain IPv4, so one client has one spelling. */
export function normalizeAddress(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1] : address;
}

/**
 * The rate-limit bucket of an address: IPv4 as is, IPv6 by its /64 network, since one host
 * usually owns a whole /64 and could otherwise use a fresh address for every request.
 */
export function addressBucket(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = '', tail] = address.toLowerCase().split('%')[0]!.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
