import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';

export type RespValue = string | number | null | RespValue[] | RespError;

/** An error reply (-ERR …, -NOSCRIPT …): the command failed, the connection is fine. */
export class RespError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RespError';
  }
}

interface Pending {
  resolve: (value: RespValue) => void;
  reject: (err: Error) => void;
}

export interface RespClientOptions {
  /** redis://[user:password@]host[:port][/db] or rediss:// */
  url: string;
  /** Each command (and the connection) fails after this long, so a stalled Redis never stalls a request. */
  timeoutMs: number;
}

/**
 * Just enough of the Redis protocol (RESP2) for a rate limiter: one connection, pipelined
 * commands answered in order, AUTH and SELECT from the URL. It does not reconnect on its own:
 * the next command after a failure opens a new connection, so the caller paces retries.
 */
export class RespClient {
  readonly #url: URL;
  readonly #timeoutMs: number;
  #socket: Socket | null = null;
  #ready: Promise<void> | null = null;
  #pending: Pending[] = [];
  #buffer: Buffer = Buffer.alloc(0);

  constructor(options: RespClientOptions) {
    this.#url = new URL(options.url);
    this.#timeoutMs = options.timeoutMs;
  }

  async command(args: Array<string | number>): Promise<RespValue> {
    await this.#connect();
    const reply = await this.#send(args);
    if (reply instanceof RespError) throw reply;
    return reply;
  }

  close(): void {
    this.#fail(new Error('Redis client closed'));
  }

  #connect(): Promise<void> {
    this.#ready ??= this.#open().catch((err: unknown) => {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
      throw err;
    });
    return this.#ready;
  }

  async #open(): Promise<void> {
    const url = this.#url;
    const host = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(url.port || 6379);
    const socket = url.protocol === 'rediss:' ? connectTls({ host, port, servername: host }) : connectTcp({ host, port });
    socket.setNoDelay(true);
    this.#socket = socket;
    // A late event from a connection already replaced must not break the new one.
    socket.on('data', (chunk: Buffer) => {
      if (this.#socket === socket) this.#onData(chunk);
    });
    socket.on('error', (err) => {
      if (this.#socket === socket) this.#fail(err);
    });
    socket.on('close', () => {
      if (this.#socket === socket) this.#fail(new Error('Redis connection closed'));
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Redis connection timed out after ${this.#timeoutMs} ms`)), this.#timeoutMs);
      socket.once(url.protocol === 'rediss:' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const password = decodeURIComponent(url.password);
    if (password) {
      const auth = url.username ? ['AUTH', decodeURIComponent(url.username), password] : ['AUTH', password];
      const reply = await this.#send(auth);
      // The reply text never carries the password, but keep it out of the message anyway.
      if (reply instanceof RespError) throw new Error('Redis refused the credentials in REDIS_URL');
    }
    const db = url.pathname.replace(/^\//, '');
    if (db) {
      const reply = await this.#send(['SELECT', db]);
      if (reply instanceof RespError) throw reply;
    }
  }

  #send(args: Array<string | number>): Promise<RespValue> {
    const socket = this.#socket;
    if (!socket || socket.destroyed) return Promise.reject(new Error('Redis is not connected'));
    return new Promise<RespValue>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new Error(`Redis did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      this.#pending.push({
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      socket.write(encode(args));
    });
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      let parsed: { value: RespValue; end: number } | null;
      try {
        parsed = parseReply(this.#buffer, 0);
      } catch (err) {
        return this.#fail(err as Error);
      }
      if (!parsed) return;
      this.#buffer = this.#buffer.subarray(parsed.end);
      this.#pending.shift()?.resolve(parsed.value);
    }
  }

  /** Drops the connection and fails every waiting command; the next command reconnects. */
  #fail(err: Error): void {
    const socket = this.#socket;
    this.#socket = null;
    this.#ready = null;
    this.#buffer = Buffer.alloc(0);
    socket?.destroy();
    for (const pending of this.#pending.splice(0)) pending.reject(err);
  }
}

function encode(args: Array<string | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.from(String(arg), 'utf8');
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** One complete reply starting at `at`, or null when more bytes are needed. */
function parseReply(buffer: Buffer, at: number): { value: RespValue; end: number } | null {
  const lineEnd = buffer.indexOf('\r\n', at);
  if (lineEnd === -1) return null;
  const type = String.fromCharCode(buffer[at]!);
  const line = buffer.toString('utf8', at + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RespError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buffer.length < next + length + 2) return null;
      return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespValue[] = [];
      let end = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, end);
        if (!item) return null;
        items.push(item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`unexpected Redis reply type ${JSON.stringify(type)}`);
  }
}
