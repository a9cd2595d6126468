import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Aedes } from 'aedes';
import { WebSocketServer } from 'ws';
import { mqttWebSocketStream } from '../../broker/websocket-stream.js';

const MAX_PACKET_BYTES = 128 * 1024 * 1024 + 5;

/**
 * Serves `aedes` over WebSocket at /mqtt on a free loopback port, the way the daemon serves its
 * broker (ws, and the daemon's own stream over each WebSocket, broker/websocket-stream.ts), so
 * that the bench's reference brokers differ from the daemon only in what they do with a publish.
 */
export async function serveAedesOverWebSocket(aedes: Aedes): Promise<{ port: number }> {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PACKET_BYTES });
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if (req.url !== '/mqtt') return socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => aedes.handle(mqttWebSocketStream(ws), req));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port };
}
