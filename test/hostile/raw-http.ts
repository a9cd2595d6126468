import { request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';
import type { Readable } from 'node:stream';

/** HTTP/1.1 spoken by hand, for requests no HTTP client library would send. */

export interface RawResponse {
  /** Everything the server sent before it closed (or before the deadline). */
  raw: Buffer;
  status: number | null;
  /** Header lines of the first response, as sent. */
  headerLines: string[];
  closedByServer: boolean;
}

/**
 * Writes `request` on a fresh connection from `localAddress` and collects the answer until the
 * server closes the connection. The write side stays open: a half-closed client is a client
 * that left, and the server may rightly stop working on its request.
 */
export function rawHttp(port: number, localAddress: string, request: Buffer | string, deadlineMs = 5_000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port, localAddress });
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
    const finish = (closedByServer: boolean): void => {
      clearTimeout(timer);
      resolve({ ...parseResponseHead(Buffer.concat(chunks)), closedByServer });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      finish(false);
    }, deadlineMs);
    socket.once('close', () => finish(true));
    socket.once('connect', () => socket.write(request));
  });
}

function parseResponseHead(raw: Buffer): Omit<RawResponse, 'closedByServer'> {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = end >= 0 ? text.slice(0, end) : text;
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3}) /.exec(statusLine);
  return { raw, status: match ? Number(match[1]) : null, headerLines };
}

/**
 * Problems with the header block of a raw answer: a header line that is not `name: value`, or a
 * bare CR or LF inside one (response splitting), or a header the attacker tried to inject.
 */
export function responseSplitting(response: RawResponse, injectedNames: readonly string[]): string[] {
  const problems: string[] = [];
  for (const line of response.headerLines) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t -~\x80-\xff]*$/.test(line)) problems.push(`malformed header line ${JSON.stringify(line)}`);
    const name = line.split(':', 1)[0]!.toLowerCase();
    if (injectedNames.includes(name)) problems.push(`injected header ${JSON.stringify(line)}`);
  }
  return problems;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A request from a chosen loopback address (fetch cannot bind one). */
export function httpFrom(
  localAddress: string,
  url: string,
  options: { method?: string; headers?: Record<string, string | string[]>; body?: Buffer | string | Readable } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'POST', headers: options.headers, localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = options.body;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}
