/** The ceiling for REST: a node:http server that reads the body and answers 200 with a small JSON, nothing else. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveRequests } from './child.js';

async function start(): Promise<{ port: number }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}'));
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port };
}

serveRequests({ start });
