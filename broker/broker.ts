import type { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { createServer as createTlsServer, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import { Aedes, type AedesOptions, type AuthenticateError, type Client, type Connection } from 'aedes';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Component } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import type { Metrics } from '../src/metrics.js';
import type { Authenticator, IngestSink, PublishRateLimiter, PublishThrottleOptions } from './types.js';
import { ConnectionLimiter, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_CONNECTION_LIMITS, type ConnectionRefusal } from './connection-limits.js';
import { createBrokerHooks, errorSummary, type BrokerHooks, type ConnectionInfo } from './hooks.js';
import { InflightTracker } from './inflight.js';
import { LogThrottle } from './log-throttle.js';
import { PacketSizeGuard, guardStream, type PacketSizeViolation } from './packet-size-guard.js';
import { PublishThrottle } from './publish-throttle.js';
import { DEFAULT_MAX_INFLIGHT_PER_CLIENT, limitPublishesPerClient } from './publish-window.js';
import { DEFAULT_KEEPALIVE_BOUNDS, applySessionPolicy, type KeepaliveBounds } from './session-policy.js';
import { mqttWebSocketStream } from './websocket-stream.js';
import { StatusSubscribers } from './status-subscribers.js';
import { StatusChannel, ingestFilterProblems } from './status-topic.js';
import { compileTopicFilterList } from './topic-filter.js';

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
  /** e.g. 'health/#', or several filters separated by commas; publishes to other topics are acknowledged but not stored. */
  ingestTopicFilter: string;
  /** MQTT over TLS on its own port (the plain TCP listener keeps its own setting); port 0 = ephemeral. */
  tls?: { host: string; port: number; context: SecureContextOptions } | undefined;
  /** How long stop() waits for payloads still being stored. Default 10 000 ms. */
  drainTimeoutMs?: number;
  // Limits; each defaults to the value documented for its setting (docs/security.md).
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
  maxConnectionsPerKey?: number;
  /** Publishes of one client being stored at once. */
  maxInflightPerClient?: number;
  keepaliveMinSeconds?: number;
  keepaliveMaxSeconds?: number;
  /** From socket open (WebSocket: from the upgrade request) to CONNACK. */
  connectTimeoutMs?: number;
}

export interface MqttBrokerDeps {
  options: MqttBrokerOptions;
  logger: Logger;
  metrics: Metrics;
  authenticator: Authenticator;
  sink: IngestSink;
  /** Per-key publish rate limit; publishes over it wait for their PUBACK. */
  publishLimit?: { limiter: PublishRateLimiter; options: PublishThrottleOptions };
}

export const DEFAULT_MAX_PACKET_BYTES = 128 * 1024 * 1024;
const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
// Aedes' own CONNECT timer is only a backstop: ours runs until CONNACK and is counted.
const AEDES_CONNECT_TIMEOUT_MARGIN_MS = 1_000;
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
  private readonly status: StatusChannel;
  private readonly statusSubscribers = new StatusSubscribers();
  private readonly limiter: ConnectionLimiter;
  private readonly throttle: LogThrottle;
  private readonly keepalive: KeepaliveBounds;
  private readonly connectTimeoutMs: number;
  private readonly connections = new WeakMap<Connection, ConnectionInfo>();
  /** The Aedes client of each raw socket, for the CONNECT deadline. */
  private readonly clientOf = new WeakMap<Duplex, Client>();
  private readonly live = new Set<Duplex>();
  /** Clients past CONNACK, so that those holding a key that was just revoked can be closed. */
  private readonly connected = new Set<Client>();
  private readonly authenticator: Authenticator;
  private stopListeningForRevocations: (() => void) | null = null;

  private aedes: Aedes | null = null;
  private wss: WebSocketServer | null = null;
  private tcpServer: Server | null = null;
  private tcpClosed: Promise<void> = Promise.resolve();
  private tlsServer: TlsServer | null = null;
  private tlsClosed: Promise<void> = Promise.resolve();
  private accepting = false;
  private draining = false;
  private stopping: Promise<void> | null = null;

  constructor(deps: MqttBrokerDeps) {
    this.options = deps.options;
    this.log = deps.logger.child({ component: 'mqtt' });
    this.metrics = deps.metrics;
    const o = deps.options;
    const filterProblems = ingestFilterProblems(o.ingestTopicFilter);
    if (filterProblems.length > 0) throw new Error(filterProblems.join('; '));
    this.throttle = new LogThrottle(this.log);
    this.limiter = new ConnectionLimiter({
      maxConnections: o.maxConnections ?? DEFAULT_CONNECTION_LIMITS.maxConnections,
      maxConnectionsPerAddress: o.maxConnectionsPerAddress ?? DEFAULT_CONNECTION_LIMITS.maxConnectionsPerAddress,
      maxConnectionsPerKey: o.maxConnectionsPerKey ?? DEFAULT_CONNECTION_LIMITS.maxConnectionsPerKey,
    });
    this.keepalive = {
      minSeconds: o.keepaliveMinSeconds ?? DEFAULT_KEEPALIVE_BOUNDS.minSeconds,
      maxSeconds: o.keepaliveMaxSeconds ?? DEFAULT_KEEPALIVE_BOUNDS.maxSeconds,
    };
    this.connectTimeoutMs = o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.status = new StatusChannel({
      logger: this.log,
      metrics: deps.metrics,
      throttle: this.throttle,
      identityOf: (client) => this.hooks.sessionOf(client)?.identity,
      transportOf: (client) => this.connectionInfo(client),
      hasSubscriber: (topic) => this.statusSubscribers.has(topic),
    });
    this.authenticator = deps.authenticator;
    this.hooks = createBrokerHooks({
      logger: this.log,
      metrics: deps.metrics,
      authenticator: deps.authenticator,
      sink: this.status.wrapSink(deps.sink),
      matchesIngestTopic: compileTopicFilterList(o.ingestTopicFilter),
      inflight: this.inflight,
      connectionInfo: (client) => this.connectionInfo(client),
      isDraining: () => this.draining,
      throttle:
        deps.publishLimit && new PublishThrottle(deps.publishLimit.limiter, deps.publishLimit.options, this.log, () => this.draining),
      // Aedes keeps its registry of connected clients untyped.
      clientHoldingId: (clientId) => (this.aedes as unknown as { clients?: Record<string, Client | undefined> } | null)?.clients?.[clientId],
    });
  }

  async start(): Promise<void> {
    if (this.aedes) throw new Error('MqttBroker already started');
    const aedes = await Aedes.createBroker(this.aedesOptions());
    this.aedes = aedes;
    this.status.attach(aedes);
    this.statusSubscribers.watch(aedes);
    this.watch(aedes);
    this.stopListeningForRevocations = this.authenticator.onKeysInvalidated?.((keyIds) => this.dropKeys(keyIds)) ?? null;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.options.maxPacketBytes + FIXED_HEADER_MAX_BYTES,
    });
    if (this.options.tcpEnabled) await this.listenTcp();
    if (this.options.tls) await this.listenTls(this.options.tls);
    this.accepting = true;
    this.log.info(
      {
        wsPath: this.options.wsPath,
        tcp: this.tcpAddress,
        tls: this.tlsAddress,
        ingestTopicFilter: this.options.ingestTopicFilter,
        maxPacketBytes: this.options.maxPacketBytes,
        maxConnections: this.limiter.limits.maxConnections,
        maxConnectionsPerAddress: this.limiter.limits.maxConnectionsPerAddress,
        maxConnectionsPerKey: this.limiter.limits.maxConnectionsPerKey,
        keepalive: this.keepalive,
        connectTimeoutMs: this.connectTimeoutMs,
      },
      'mqtt: broker started',
    );
  }

  /**
   * Called by the HTTP server for upgrade requests on wsPath. `clientAddress` is the address the
   * HTTP server resolved (behind a trusted proxy, from X-Forwarded-For): connection caps and
   * failed-login throttling then count the phone, not the proxy every phone shares.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, clientAddress: string | undefined = req.socket.remoteAddress): void {
    const wss = this.wss;
    if (!this.accepting || !wss) return refuseUpgrade(socket);
    const info: ConnectionInfo = { transport: 'mqtt-ws', remoteAddress: clientAddress };
    // Counted and timed from the upgrade request on, so the WebSocket handshake is inside both.
    if (!this.admitSocket(socket, info)) return refuseUpgrade(socket);
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (!this.accepting) return ws.terminate();
      this.attachWebSocket(ws, req, info);
    });
  }

  get tcpAddress(): { host: string; port: number } | null {
    const address = this.tcpServer?.address();
    if (!address || typeof address === 'string') return null;
    return { host: address.address, port: address.port };
  }

  get tlsAddress(): { host: string; port: number } | null {
    const address = this.tlsServer?.address();
    if (!address || typeof address === 'string') return null;
    return { host: address.address, port: address.port };
  }

  /** New MQTT-over-TLS connections use this certificate (after a reload); open ones keep theirs. */
  setSecureContext(context: SecureContextOptions): void {
    this.tlsServer?.setSecureContext(context);
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
    const tlsServer = this.tlsServer;
    if (tlsServer?.listening) this.tlsClosed = new Promise((resolve) => tlsServer.close(() => resolve()));
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
    await this.tlsClosed;
    this.wss?.close();
    this.log.info('mqtt: broker stopped');
  }

  private aedesOptions(): AedesOptions {
    // Every hook is defined: Aedes merges options with Object.assign, so a key present with the
    // value undefined would replace its default and crash on first use.
    const { preConnect, authenticate, authorizePublish } = this.hooks;
    const maxInflight = this.options.maxInflightPerClient ?? DEFAULT_MAX_INFLIGHT_PER_CLIENT;
    return {
      connectTimeout: this.connectTimeoutMs + AEDES_CONNECT_TIMEOUT_MARGIN_MS,
      preConnect: (client, packet, done) => {
        const { requestedKeepalive, keepalive } = applySessionPolicy(packet, this.keepalive);
        if (requestedKeepalive !== keepalive) {
          this.log.debug({ clientId: packet.clientId, requestedKeepalive, keepalive }, 'mqtt: keep-alive clamped');
        }
        preConnect(client, packet, done);
      },
      authenticate: (client, username, password, done) =>
        authenticate(client, username, password, (err, ok) => (err || !ok ? done(err, ok) : this.admitKey(client, done))),
      authorizePublish: limitPublishesPerClient(authorizePublish, maxInflight, (client) =>
        this.metrics.mqttPublishesHeld.inc({ transport: this.connectionInfo(client).transport }),
      ),
      authorizeSubscribe: this.status.authorizeSubscribe,
      authorizeForward: this.status.authorizeForward,
    };
  }

  /** Takes a slot for the socket, freed when it closes; false when refused (counted and logged). */
  private admitSocket(socket: Duplex, info: ConnectionInfo): boolean {
    const admission = this.limiter.admitSocket(info.remoteAddress);
    if (!admission.ok) {
      this.refused(info, admission.reason);
      return false;
    }
    this.metrics.mqttSockets.inc({ transport: info.transport });
    socket.once('close', () => {
      admission.release();
      this.metrics.mqttSockets.dec({ transport: info.transport });
    });
    this.armConnectDeadline(socket, info);
    return true;
  }

  /** Per-key cap, after the key is verified: CONNACK 3 (server unavailable) says "try later". */
  private admitKey(client: Client, done: (err: AuthenticateError | null, ok: boolean | null) => void): void {
    const identity = this.hooks.sessionOf(client)?.identity;
    const conn = client.conn;
    if (!identity || conn.destroyed) return done(refusal('connection closed during authentication'), false);
    const admission = this.limiter.admitKey(identity.keyId);
    if (!admission.ok) {
      this.refused(this.connectionInfo(client), admission.reason, { clientId: client.id, user: identity.userName, keyPrefix: identity.keyPrefix });
      return done(refusal(`connection refused: ${admission.reason}`), false);
    }
    conn.once('close', admission.release);
    done(null, true);
  }

  /** Closes a socket that has not completed CONNECT (up to CONNACK) in time. */
  private armConnectDeadline(socket: Duplex, info: ConnectionInfo): void {
    const timer = setTimeout(() => {
      const client = this.clientOf.get(socket);
      if (socket.destroyed || client?.connected) return;
      this.refused(info, 'connect_timeout', { clientId: client?.id ?? undefined });
      socket.destroy();
    }, this.connectTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  private refused(info: ConnectionInfo, reason: ConnectionRefusal | 'connect_timeout', fields: Record<string, unknown> = {}): void {
    this.metrics.mqttRefused.inc({ transport: info.transport, reason });
    this.throttle.warn(reason, { reason, ...info, ...fields }, 'mqtt: connection refused');
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
    const fields = { clientId: client.id, ...this.connectionInfo(client), error: errorSummary(err) };
    // Refused CONNECTs come back here too (errorCode 1..6) and were already logged with a reason.
    if (typeof (err as { errorCode?: unknown }).errorCode === 'number') return this.log.debug(fields, msg);
    // Before CONNECT anyone can cause these, as often as they like.
    if (!client.id) return this.throttle.warn('connection_error', fields, msg);
    this.log.warn(fields, msg);
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

  private async listenTls(tls: NonNullable<MqttBrokerOptions['tls']>): Promise<void> {
    // The handshake gets the same deadline as CONNECT, so an idle TLS socket is not kept for 120 s.
    const server = createTlsServer({ ...tls.context, handshakeTimeout: this.connectTimeoutMs }, (socket) => this.attachTcp(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tls.port, tls.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ error: errorSummary(err) }, 'mqtt: TLS listener error'));
    server.on('tlsClientError', (err) => this.log.debug({ error: errorSummary(err) }, 'mqtt: TLS handshake failed'));
    this.tlsServer = server;
  }

  private attachTcp(socket: Socket): void {
    if (!this.accepting) return void socket.destroy();
    const info: ConnectionInfo = { transport: 'mqtt-tcp', remoteAddress: socket.remoteAddress };
    // Refused before a byte is read: no parser, no Aedes client, no authentication.
    if (!this.admitSocket(socket, info)) return void socket.destroy();
    this.attach(socket, socket, info);
  }

  private attachWebSocket(ws: WebSocket, req: IncomingMessage, info: ConnectionInfo): void {
    const stream = mqttWebSocketStream(ws);
    // info.remoteAddress is what the HTTP server resolved (TRUST_PROXY), not always the TCP peer.
    this.attach(stream, req.socket, info, req);
  }

  private attach(stream: Duplex, socket: Duplex, info: ConnectionInfo, req?: IncomingMessage): void {
    const aedes = this.aedes;
    if (!aedes) return void stream.destroy();
    this.connections.set(stream, info);
    this.live.add(stream);
    stream.once('close', () => this.live.delete(stream));
    const client = aedes.handle(stream, req);
    this.clientOf.set(socket, client);
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

function refusal(message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: 3 as const });
}

function refuseUpgrade(socket: Duplex): void {
  socket.once('finish', () => socket.destroy());
  socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
}
