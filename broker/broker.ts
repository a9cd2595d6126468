import type { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { Aedes, type AedesOptions, type Client, type Connection } from 'aedes';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import type { Component } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import type { Metrics } from '../src/metrics.js';
import type { Authenticator, IngestSink } from './types.js';
import { createBrokerHooks, errorSummary, type BrokerHooks, type ConnectionInfo } from './hooks.js';
import { InflightTracker } from './inflight.js';
import { PacketSizeGuard, guardStream, type PacketSizeViolation } from './packet-size-guard.js';
import { compileTopicFilter } from './topic-filter.js';

export interface MqttBrokerOptions {
  /** '/mqtt'; only used in logs, the HTTP server does the routing. */
  wsPath: string;
  tcpHost: string;
  /** Used only when tcpEnabled; 0 then means an ephemeral port (tests). */
  tcpPort: number;
  /** false: no TCP listener (config MQTT_TCP_PORT=0 maps to this). */
  tcpEnabled: boolean;
  /** Largest MQTT packet (remaining length) accepted on either transport. */
  maxPacketBytes: number;
  /** e.g. 'health/#'; publishes to other topics are acknowledged but not stored. */
  ingestTopicFilter: string;
  /** How long stop() waits for payloads still being stored. Default 10 000 ms. */
  drainTimeoutMs?: number;
}

export interface MqttBrokerDeps {
  options: MqttBrokerOptions;
  logger: Logger;
  metrics: Metrics;
  authenticator: Authenticator;
  sink: IngestSink;
}

export const DEFAULT_MAX_PACKET_BYTES = 128 * 1024 * 1024;
const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
// A peer that opened a socket but sends no CONNECT is cut after this (Aedes' default is 30 s).
const CONNECT_TIMEOUT_MS = 10_000;
// After the drain, let the last PUBACKs leave before sockets are destroyed.
const FLUSH_GRACE_MS = 500;
// The MQTT fixed header adds at most 5 bytes to the remaining length.
const FIXED_HEADER_MAX_BYTES = 5;

/** The embedded, ingest-only MQTT broker (Aedes) on WebSocket and, optionally, TCP. */
export class MqttBroker implements Component {
  private readonly options: MqttBrokerOptions;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly inflight = new InflightTracker();
  private readonly hooks: BrokerHooks;
  private readonly connections = new WeakMap<Connection, ConnectionInfo>();
  private readonly live = new Set<Duplex>();
  /** Clients past CONNACK, so that those holding a key that was just revoked can be closed. */
  private readonly connected = new Set<Client>();
  private readonly authenticator: Authenticator;
  private stopListeningForRevocations: (() => void) | null = null;

  private aedes: Aedes | null = null;
  private wss: WebSocketServer | null = null;
  private tcpServer: Server | null = null;
  private tcpClosed: Promise<void> = Promise.resolve();
  private accepting = false;
  private draining = false;
  private stopping: Promise<void> | null = null;

  constructor(deps: MqttBrokerDeps) {
    this.options = deps.options;
    this.log = deps.logger.child({ component: 'mqtt' });
    this.metrics = deps.metrics;
    this.authenticator = deps.authenticator;
    this.hooks = createBrokerHooks({
      logger: this.log,
      metrics: deps.metrics,
      authenticator: deps.authenticator,
      sink: deps.sink,
      matchesIngestTopic: compileTopicFilter(deps.options.ingestTopicFilter),
      inflight: this.inflight,
      connectionInfo: (client) => this.connectionInfo(client),
      isDraining: () => this.draining,
    });
  }

  async start(): Promise<void> {
    if (this.aedes) throw new Error('MqttBroker already started');
    const aedes = await Aedes.createBroker(this.aedesOptions());
    this.aedes = aedes;
    this.watch(aedes);
    this.stopListeningForRevocations = this.authenticator.onKeysInvalidated?.((keyIds) => this.dropKeys(keyIds)) ?? null;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.options.maxPacketBytes + FIXED_HEADER_MAX_BYTES,
    });
    if (this.options.tcpEnabled) await this.listenTcp();
    this.accepting = true;
    this.log.info(
      {
        wsPath: this.options.wsPath,
        tcp: this.tcpAddress,
        ingestTopicFilter: this.options.ingestTopicFilter,
        maxPacketBytes: this.options.maxPacketBytes,
      },
      'mqtt: broker started',
    );
  }

  /** Called by the HTTP server for upgrade requests on wsPath. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const wss = this.wss;
    if (!this.accepting || !wss) return refuseUpgrade(socket);
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (!this.accepting) return ws.terminate();
      this.attachWebSocket(ws, req);
    });
  }

  get tcpAddress(): { host: string; port: number } | null {
    const address = this.tcpServer?.address();
    if (!address || typeof address === 'string') return null;
    return { host: address.address, port: address.port };
  }

  isReady(): boolean {
    return this.accepting && this.aedes !== null && !this.aedes.closed;
  }

  /** Stops taking new connections; existing ones keep working. */
  async stopAccepting(): Promise<void> {
    if (!this.accepting && !this.tcpServer?.listening) return;
    this.accepting = false;
    const server = this.tcpServer;
    if (server?.listening) {
      // close() stops listening at once; its callback waits for open sockets, awaited in stop().
      this.tcpClosed = new Promise((resolve) => server.close(() => resolve()));
    }
    this.log.info('mqtt: no longer accepting connections');
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.stopListeningForRevocations?.();
    await this.stopAccepting();
    this.draining = true;
    const pending = this.inflight.size;
    const timeoutMs = this.options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    if (!(await this.inflight.waitIdle(timeoutMs))) {
      this.log.warn({ pending: this.inflight.size, timeoutMs }, 'mqtt: payloads still being stored at shutdown; their acks are lost');
    } else if (pending > 0) {
      this.log.info({ pending }, 'mqtt: payloads in flight at shutdown were stored');
    }
    await this.flushWrites();
    await this.closeAedes();
    // Aedes closes registered clients only: also drop sockets still before or inside CONNECT.
    for (const stream of this.live) stream.destroy();
    await this.tcpClosed;
    this.wss?.close();
    this.log.info('mqtt: broker stopped');
  }

  private aedesOptions(): AedesOptions {
    // Every hook is defined: Aedes merges options with Object.assign, so a key present with the
    // value undefined would replace its default and crash on first use.
    const { preConnect, authenticate, authorizePublish, authorizeSubscribe, authorizeForward } = this.hooks;
    return {
      connectTimeout: CONNECT_TIMEOUT_MS,
      preConnect,
      authenticate,
      authorizePublish,
      authorizeSubscribe,
      authorizeForward,
    };
  }

  private watch(aedes: Aedes): void {
    aedes.on('client', (client) => {
      const info = this.connectionInfo(client);
      this.metrics.mqttConnections.inc({ transport: info.transport });
      this.connected.add(client);
      const session = this.hooks.sessionOf(client);
      // Revoked while its CONNACK was on the way.
      if (session && this.hooks.isKeyInvalidated(session.identity.keyId)) this.dropKeys([session.identity.keyId]);
      this.log.info(
        { clientId: client.id, ...info, user: session?.identity.userName, mqttUserName: session?.userName },
        'mqtt: client connected',
      );
    });
    aedes.on('clientDisconnect', (client) => {
      this.connected.delete(client);
      const info = this.connectionInfo(client);
      this.metrics.mqttConnections.dec({ transport: info.transport });
      this.log.info({ clientId: client.id, ...info, user: this.hooks.sessionOf(client)?.identity.userName }, 'mqtt: client disconnected');
    });
    aedes.on('clientError', (client, err) => this.logClientError(client, err, 'mqtt: client error'));
    aedes.on('connectionError', (client, err) => this.logClientError(client, err, 'mqtt: connection error'));
    // Aedes emits 'error' for persistence failures; unhandled, it would crash the process.
    // (Aedes' typed on() overloads omit 'error', hence the plain EventEmitter view.)
    const emitter: EventEmitter = aedes;
    emitter.on('error', (err: unknown) => this.log.error({ error: errorSummary(err) }, 'mqtt: broker error'));
  }

  /** Closes the connections made with keys that were revoked or expired, and refuses their publishes. */
  private dropKeys(keyIds: readonly string[]): void {
    this.hooks.noteInvalidatedKeys(keyIds);
    const ids = new Set(keyIds);
    for (const client of this.connected) {
      const session = this.hooks.sessionOf(client);
      if (!session || session.invalidated || !ids.has(session.identity.keyId)) continue;
      session.invalidated = true;
      this.metrics.authKeyDisconnects.inc();
      this.log.info(
        { clientId: client.id, ...this.connectionInfo(client), user: session.identity.userName, keyId: session.identity.keyId },
        'mqtt: key revoked or expired; closing the connection',
      );
      this.connected.delete(client);
      client.close();
    }
  }

  private logClientError(client: Client, err: Error, msg: string): void {
    // Refused CONNECTs come back here too (errorCode 1..6) and were already logged with a reason.
    const level = typeof (err as { errorCode?: unknown }).errorCode === 'number' ? 'debug' : 'warn';
    this.log[level]({ clientId: client.id, ...this.connectionInfo(client), error: errorSummary(err) }, msg);
  }

  private async listenTcp(): Promise<void> {
    const server = createServer({ noDelay: true }, (socket) => this.attachTcp(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.tcpPort, this.options.tcpHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ error: errorSummary(err) }, 'mqtt: TCP listener error'));
    this.tcpServer = server;
  }

  private attachTcp(socket: Socket): void {
    if (!this.accepting) return void socket.destroy();
    this.attach(socket, { transport: 'mqtt-tcp', remoteAddress: socket.remoteAddress });
  }

  private attachWebSocket(ws: WebSocket, req: IncomingMessage): void {
    const stream = createWebSocketStream(ws);
    // X-Forwarded-For is not trusted (yet): the address is the TCP peer of the upgrade.
    this.attach(stream, { transport: 'mqtt-ws', remoteAddress: req.socket.remoteAddress }, req);
  }

  private attach(stream: Duplex, info: ConnectionInfo, req?: IncomingMessage): void {
    const aedes = this.aedes;
    if (!aedes) return void stream.destroy();
    this.connections.set(stream, info);
    this.live.add(stream);
    stream.once('close', () => this.live.delete(stream));
    const client = aedes.handle(stream, req);
    // After handle(): the guard relies on Aedes' 'readable' listener being in place.
    guardStream(stream, new PacketSizeGuard(this.options.maxPacketBytes), (violation) =>
      this.onPacketViolation(violation, info, client),
    );
  }

  private onPacketViolation(violation: PacketSizeViolation, info: ConnectionInfo, client: Client): void {
    const clientId = client.id ?? undefined; // null at runtime until CONNECT, despite the type
    if (violation.kind === 'too_large') {
      this.metrics.mqttRefused.inc({ transport: info.transport, reason: 'packet_too_large' });
      this.log.warn({ clientId, ...info, ...violation }, 'mqtt: packet too large; connection closed');
    } else {
      this.metrics.mqttRefused.inc({ transport: info.transport, reason: 'malformed_packet' });
      this.log.warn({ clientId, ...info, ...violation }, 'mqtt: malformed packet length; connection closed');
    }
  }

  private connectionInfo(client: Client): ConnectionInfo {
    return this.connections.get(client.conn) ?? { transport: 'mqtt-tcp', remoteAddress: undefined };
  }

  /** Gives the PUBACKs written at the end of the drain a chance to reach the kernel. */
  private async flushWrites(): Promise<void> {
    const deadline = Date.now() + FLUSH_GRACE_MS;
    await delay(0);
    while ([...this.live].some((s) => s.writableLength > 0) && Date.now() < deadline) await delay(10);
  }

  private async closeAedes(): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return;
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
  }
}

function refuseUpgrade(socket: Duplex): void {
  socket.once('finish', () => socket.destroy());
  socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
}
