import { connect as netConnect } from 'node:net';

/**
 * Slowloris: a client that opens a TCP connection and sends its bytes a little at a time (or
 * stops sending altogether), holding the server's socket as long as the server lets it.
 */
export interface TrickleOptions {
  port: number;
  localAddress: string;
  /** Sent at once on connect. */
  head?: Buffer | string;
  /** Then sent `chunkBytes` at a time, one chunk per interval; may be longer than the test. */
  rest?: Buffer | string;
  chunkBytes?: number;
  intervalMs?: number;
  /** Give up (and report closedByServer false) after this long. */
  deadlineMs: number;
}

export interface TrickleOutcome {
  closedByServer: boolean;
  elapsedMs: number;
  bytesSent: number;
  received: string;
}

export function trickle(options: TrickleOptions): { done: Promise<TrickleOutcome> } {
  const started = Date.now();
  const socket = netConnect({ host: '127.0.0.1', port: options.port, localAddress: options.localAddress });
  const rest = Buffer.from(options.rest ?? '');
  const chunkBytes = options.chunkBytes ?? 1;
  let sent = 0;
  let offset = 0;
  let received = '';
  let timer: NodeJS.Timeout | null = null;
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  socket.on('error', () => undefined);
  socket.once('connect', () => {
    if (options.head !== undefined) {
      const head = Buffer.from(options.head);
      socket.write(head);
      sent += head.length;
    }
    timer = setInterval(() => {
      if (offset >= rest.length || socket.destroyed) return;
      const chunk = rest.subarray(offset, offset + chunkBytes);
      offset += chunk.length;
      sent += chunk.length;
      socket.write(chunk);
    }, options.intervalMs ?? 1_000);
  });
  const done = new Promise<TrickleOutcome>((resolve) => {
    const finish = (closedByServer: boolean): void => {
      if (timer) clearInterval(timer);
      clearTimeout(deadline);
      resolve({ closedByServer, elapsedMs: Date.now() - started, bytesSent: sent, received });
    };
    const deadline = setTimeout(() => {
      finish(false);
      socket.destroy();
    }, options.deadlineMs);
    socket.once('close', () => finish(true));
  });
  return { done };
}
