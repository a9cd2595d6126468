/**
 * Counts open MQTT sockets in total, per remote address and, once authenticated, per API key, so
 * that one peer or one leaked key cannot take every file descriptor and every byte of memory.
 * Pure bookkeeping: the broker decides how to refuse.
 */

export interface ConnectionLimits {
  /** Open sockets of both transports together, authenticated or not. */
  maxConnections: number;
  /** Open sockets from one remote address (behind a reverse proxy: the proxy's address). */
  maxConnectionsPerAddress: number;
  /** Authenticated connections using one API key. */
  maxConnectionsPerKey: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 1000,
  maxConnectionsPerAddress: 50,
  maxConnectionsPerKey: 10,
};

/** From socket open (WebSocket: from the upgrade request) until CONNACK. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export type ConnectionRefusal = 'max_connections' | 'max_connections_per_address' | 'max_connections_per_key';

export type Admission = { ok: true; release: () => void } | { ok: false; reason: ConnectionRefusal };

export class ConnectionLimiter {
  private total = 0;
  private readonly byAddress = new Map<string, number>();
  private readonly byKey = new Map<string, number>();

  constructor(readonly limits: ConnectionLimits) {}

  get open(): number {
    return this.total;
  }

  /** A slot for a new socket, taken before anything is read from it. */
  admitSocket(remoteAddress: string | undefined): Admission {
    const address = remoteAddress ?? 'unknown';
    if (this.total >= this.limits.maxConnections) return { ok: false, reason: 'max_connections' };
    if ((this.byAddress.get(address) ?? 0) >= this.limits.maxConnectionsPerAddress) {
      return { ok: false, reason: 'max_connections_per_address' };
    }
    this.total++;
    increment(this.byAddress, address);
    return {
      ok: true,
      release: once(() => {
        this.total--;
        decrement(this.byAddress, address);
      }),
    };
  }

  /** A slot for an authenticated connection of `keyId`. */
  admitKey(keyId: string): Admission {
    if ((this.byKey.get(keyId) ?? 0) >= this.limits.maxConnectionsPerKey) return { ok: false, reason: 'max_connections_per_key' };
    increment(this.byKey, keyId);
    return { ok: true, release: once(() => decrement(this.byKey, keyId)) };
  }
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key); // keeps the maps as small as the set of current peers
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
