import { connect as netConnect, type Socket } from 'node:net';
import { WebSocket } from 'ws';

/**
 * A raw peer over TCP or WebSocket (subprotocol mqtt) that writes exactly the bytes it is given
 * and reports how the daemon ended the connection. Every peer binds to a chosen loopback address,
 * so per-address limits on the attacker never touch the legitimate client on 127.0.0.1.
 */

export type RawTransport = 'tcp' | 'ws';

export interface PeerTarget {
  transport: RawTransport;
  /** host:port of the TCP listener, or the ws:// URL. */
  tcpPort: number;
  wsUrl: string;
  localAddress: string;
}

export interface PeerOutcome {
  /** True when the daemon (not this peer) ended the connection before the deadline. */
  closedByDaemon: boolean;
  /** From the first write to the close. */
  elapsedMs: number;
  received: Buffer;
}

export interface RawPeer {
  write(bytes: Buffer): void;
  /** Resolves when the connection is closed, or after deadlineMs with closedByDaemon false. */
  outcome(deadlineMs: number): Promise<PeerOutcome>;
  destroy(): void;
  readonly received: () => Buffer;
  readonly isClosed: () => boolean;
}

export async function openPeer(target: PeerTarget): Promise<RawPeer> {
  return target.transport === 'tcp' ? openTcp(target) : openWs(target);
}

function settleOnClose(
  onClose: (listener: () => void) => void,
  received: () => Buffer,
  destroy: () => void,
  isClosed: () => boolean,
): (deadlineMs: number) => Promise<PeerOutcome> {
  const started = Date.now();
  return (deadlineMs) =>
    new Promise((resolve) => {
      const done = (closedByDaemon: boolean): void => {
        clearTimeout(timer);
        resolve({ closedByDaemon, elapsedMs: Date.now() - started, received: received() });
      };
      const timer = setTimeout(() => {
        done(false);
        destroy();
      }, deadlineMs);
      if (isClosed()) return done(true);
      onClose(() => done(true));
    });
}

function openTcp(target: PeerTarget): Promise<RawPeer> {
  return new Promise((resolve) => {
    const socket: Socket = netConnect({ host: '127.0.0.1', port: target.tcpPort, localAddress: target.localAddress });
    const chunks: Buffer[] = [];
    let closed = false;
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.once('close', () => (closed = true));
    const received = (): Buffer => Buffer.concat(chunks);
    const peer: RawPeer = {
      write: (bytes) => {
        if (!socket.destroyed) socket.write(bytes);
      },
      outcome: settleOnClose((l) => socket.once('close', l), received, () => socket.destroy(), () => closed),
      destroy: () => socket.destroy(),
      received,
      isClosed: () => closed,
    };
    // A refused or reset connection is also an answer: the outcome reports it as closed.
    socket.once('connect', () => resolve(peer));
    socket.once('close', () => resolve(peer));
  });
}

function openWs(target: PeerTarget): Promise<RawPeer> {
  return new Promise((resolve) => {
    const ws = new WebSocket(target.wsUrl, 'mqtt', { localAddress: target.localAddress });
    const chunks: Buffer[] = [];
    let closed = false;
    ws.on('message', (d: Buffer) => chunks.push(Buffer.from(d)));
    ws.on('error', () => undefined);
    ws.once('close', () => (closed = true));
    const received = (): Buffer => Buffer.concat(chunks);
    const peer: RawPeer = {
      write: (bytes) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(bytes);
      },
      outcome: settleOnClose((l) => ws.once('close', l), received, () => ws.terminate(), () => closed),
      destroy: () => ws.terminate(),
      received,
      isClosed: () => closed,
    };
    ws.once('open', () => resolve(peer));
    ws.once('close', () => resolve(peer));
  });
}

/** Opens a peer, writes the chunks a few ms apart, and waits for the daemon to close it. */
export async function sendAndAwaitClose(target: PeerTarget, chunks: Buffer[], deadlineMs: number): Promise<PeerOutcome> {
  const peer = await openPeer(target);
  const outcome = peer.outcome(deadlineMs);
  for (const [i, chunk] of chunks.entries()) {
    // A pause between packets, so that each may be read (and answered) on its own.
    if (i > 0) await new Promise((r) => setTimeout(r, 20));
    peer.write(chunk);
  }
  return outcome;
}

/** The CONNACK return code in the bytes a peer received, or null when there was none. */
export function connackCode(received: Buffer): number | null {
  return received.length >= 4 && received[0] === 0x20 && received[1] === 0x02 ? received[3]! : null;
}
