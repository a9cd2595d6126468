import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * The address a request comes from. By default the TCP peer; behind a reverse proxy listed in
 * TRUST_PROXY, the nearest address in X-Forwarded-For that is not itself a trusted proxy. A
 * header from anyone else is ignored, or any client could pick its own rate-limit bucket.
 */
export class ClientAddressResolver {
  readonly #trusted: BlockList | null;

  /** `trusted`: addresses or CIDR ranges (10.0.0.0/8, ::1), already validated by the config. */
  constructor(trusted: readonly string[]) {
    if (trusted.length === 0) {
      this.#trusted = null;
      return;
    }
    const list = new BlockList();
    for (const entry of trusted) {
      const [address, bits] = entry.split('/') as [string, string | undefined];
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) list.addAddress(address, family);
      else list.addSubnet(address, Number(bits), family);
    }
    this.#trusted = list;
  }

  resolve(req: IncomingMessage): string | undefined {
    const peer = normalizeAddress(req.socket.remoteAddress);
    if (!this.#trusted || peer === undefined || !this.#isTrusted(peer)) return peer;
    const hops = (req.headersDistinct['x-forwarded-for'] ?? [])
      .join(',')
      .split(',')
      .map((hop) => normalizeAddress(hop.trim()));
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i];
      if (hop === undefined || isIP(hop) === 0) return peer; // a forged or garbled header: trust only the peer
      if (!this.#isTrusted(hop)) return hop;
    }
    return hops[0] ?? peer;
  }

  #isTrusted(address: string): boolean {
    return this.#trusted!.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  }
}

/** Whether a TRUST_PROXY entry is an address or a CIDR range. */
export function isAddressOrRange(entry: string): boolean {
  const [address, bits, extra] = entry.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || extra !== undefined) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n <= (family === 4 ? 32 : 128);
}

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
