import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { normalizeAddress } from '../network-address.js';

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
