/**
 * The ceiling for MQTT: a bare Aedes 1.x broker, served as the daemon's is
 * (aedes-over-websocket.ts), that accepts every client and acknowledges every publish at once
 * without storing anything. Runs in its own process, like the daemon.
 */
import { Aedes } from 'aedes';
import { serveAedesOverWebSocket } from './aedes-over-websocket.js';
import { serveRequests } from './child.js';

async function start(): Promise<{ port: number }> {
  const aedes = await Aedes.createBroker({
    authenticate: (_client, _user, _password, done) => done(null, true),
    authorizePublish: (_client, _packet, done) => done(null),
  });
  return serveAedesOverWebSocket(aedes);
}

serveRequests({ start });
