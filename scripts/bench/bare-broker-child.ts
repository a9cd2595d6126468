/**
 * The ceiling for MQTT: a bare Aedes 1.x broker over WebSocket at /mqtt, served the same way as
 * the daemon's (ws, and the daemon's own stream over each WebSocket, broker/websocket-stream.ts),
 * that accepts every client and acknowledges every publish at once without storing anything.
 * Runs in its own process, like the daemon.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { WebSocketServer } from 'ws';
import { mqttWebSocketStream } from '../../broker/websocket-stream.js';
import { serveRequests } from './child.js';

const MAX_PACKET_BYTES = 128 * 1024 * 1024 + 5;

async function start(): Promise<{ port: number }> {
  const aedes = await Aedes.createBroker({
    authenticate: (_client, _user, _password, done) => done(null, true),
    authorizePublish: (_client, _packet, done) => done(null),
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PACKET_BYTES });
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if (req.url !== '/mqtt') return socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => aedes.handle(mqttWebSocketStream(ws), req));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port };
}

serveRequests({ start });
