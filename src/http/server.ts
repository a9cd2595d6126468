import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Authenticator, IngestSink } from '../../broker/types.js';
import type { Config } from '../config/schema.js';
import { AppError, errorMessage } from '../errors.js';
import type { Component } from '../lifecycle.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ClientAddressResolver } from './client-address.js';
import type { CorsPolicy } from './cors.js';
import type { KeyManagement } from '../auth/key-management.js';
import { handleIngest } from './ingest-route.js';
import { KEYS_PATH, handleKeyRoutes } from './key-routes.js';
import { handleHealth, handleMetrics, handleReady, type ReadinessReport } from './probes.js';
import type { HttpRateLimits } from './rate-limit.js';
import { JSON_CONTENT_TYPE, refuse } from './respond.js';

export type { ReadinessReport } from './probes.js';

export interface HttpServerDeps {
  options: Config['http'] & { wsPath: string };
  logger: Logger;
  metrics: Metrics;
  authenticator: Authenticator;
  sink: IngestSink;
  readiness: () => Promise<ReadinessReport>;
  /** MQTT over WebSocket, for upgrade requests whose path is wsPath. */
  upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer, clientAddress: string | undefined) => void;
  version: string;
  hardening?: HttpHardening;
  /** Key management over HTTP (admin keys only); absent: those routes answer 404. */
  keyManagement?: KeyManagement;
}

/** Limits, CORS, the client address behind a proxy, and TLS; each optional (tests build without). */
export interface HttpHardening {
  headersTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  rateLimits?: HttpRateLimits;
  cors?: CorsPolicy;
  clientAddress?: ClientAddressResolver;
  /** Certificate and key: the server then speaks HTTPS and WSS on the same port. */
  tls?: SecureContextOptions;
}

const HEADERS_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Node checks the request and headers deadlines on this tick at most (its default is 30 s). */
const MAX_TIMEOUT_CHECK_MS = 1_000;

type Route = '/api/v1/ingest' | '/health' | '/ready' | '/metrics' | typeof KEYS_PATH;
/** Metric label: a fixed set, never the raw URL, so scanners cannot blow up label cardinality. */
type RouteLabel = Route | 'other';

const allowedMethods: Record<Route, readonly string[]> = {
  '/api/v1/ingest': ['POST'],
  '/health': ['GET', 'HEAD'],
  '/ready': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  // Key management: the methods per sub-path are checked by the key routes themselves.
  [KEYS_PATH]: ['GET', 'POST', 'DELETE'],
};

/** Probes are never rate limited: a monitor or orchestrator must always get through. */
const unlimitedRoutes: ReadonlySet<RouteLabel> = new Set(['/health', '/ready', '/metrics']);

/** The HTTP sidecar: REST ingest, probes, metrics, and the WebSocket upgrade for MQTT. */
export class HttpServer implements Component {
  readonly #deps: HttpServerDeps;
  readonly #server: Server | HttpsServer;
  /** Requests whose handler has not finished; stop() waits for them. */
  readonly #active = new Set<ServerResponse>();
  readonly #drainWaiters: Array<() => void> = [];
  /** The response a socket is serving, so a client error (timeout) knows whether it may still answer. */
  readonly #responseBySocket = new WeakMap<Duplex, ServerResponse>();
  #closing = false;
  #stopping: Promise<void> | null = null;
  #address: { host: string; port: number } | null = null;

  constructor(deps: HttpServerDeps) {
    this.#deps = deps;
    const hardening = deps.hardening ?? {};
    const requestTimeout = deps.options.requestTimeoutMs;
    // Node refuses a headers timeout longer than the request timeout.
    const headersTimeout = Math.min(hardening.headersTimeoutMs ?? HEADERS_TIMEOUT_MS, requestTimeout);
    const keepAliveTimeout = hardening.keepAliveTimeoutMs ?? KEEP_ALIVE_TIMEOUT_MS;
    const options: ServerOptions = {
      requestTimeout,
      headersTimeout,
      keepAliveTimeout,
      // Deadlines are only as precise as this tick: a slowloris must be cut near its deadline.
      connectionsCheckingInterval: Math.max(10, Math.min(MAX_TIMEOUT_CHECK_MS, Math.floor(headersTimeout / 4))),
    };
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => this.#onRequest(req, res);
    this.#server = hardening.tls ? createHttpsServer({ ...options, ...hardening.tls, handshakeTimeout: headersTimeout }, onRequest) : createServer(options, onRequest);
    this.#server.requestTimeout = requestTimeout;
    this.#server.headersTimeout = headersTimeout;
    this.#server.keepAliveTimeout = keepAliveTimeout;
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#onClientError(err, socket));
  }

  async start(): Promise<void> {
    if (this.#address) return;
    const { host, port } = this.#deps.options;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new Error(`HTTP server cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    const bound = this.#server.address() as AddressInfo;
    this.#address = { host: bound.address, port: bound.port };
    const scheme = this.#deps.hardening?.tls ? 'https' : 'http';
    this.#deps.logger.info({ host: bound.address, port: bound.port, scheme, wsPath: this.#deps.options.wsPath }, 'HTTP server listening');
  }

  /** Serves new TLS connections with this certificate (after a reload); open ones keep theirs. */
  setSecureContext(tls: SecureContextOptions): void {
    if (!('setSecureContext' in this.#server)) throw new Error('the HTTP server was started without TLS');
    this.#server.setSecureContext(tls);
  }

  get address(): { host: string; port: number } {
    if (!this.#address) throw new Error('the HTTP server has not been started');
    return this.#address;
  }

  async stopAccepting(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    // Requests already running finish, but their connections must not be reused afterwards.
    for (const res of this.#active) if (!res.headersSent) res.setHeader('Connection', 'close');
    if (!this.#server.listening) return;
    // The callback only fires once every connection is gone (including upgraded WebSockets,
    // which the upgrade owner closes), so do not wait for it: the listener is closed already.
    this.#server.close();
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    await this.stopAccepting();
    while (this.#active.size > 0) await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
    this.#server.closeIdleConnections();
    this.#server.closeAllConnections();
    this.#deps.logger.info('HTTP server stopped');
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const route = routeOf(req.url);
    this.#track(req, res, route ?? 'other', started);
    if (this.#closing) {
      refuse(req, res, new AppError('SS_SHUTTING_DOWN'));
      return;
    }
    this.#active.add(res);
    this.#deps.hardening?.cors?.decorate(req, res);
    this.#dispatch(route, req, res)
      .catch((err: unknown) => this.#internalError(err, req, res))
      .finally(() => this.#settled(res));
  }

  #track(req: IncomingMessage, res: ServerResponse, route: RouteLabel, started: number): void {
    const { metrics } = this.#deps;
    this.#responseBySocket.set(req.socket, res);
    res.once('close', () => {
      if (this.#responseBySocket.get(req.socket) === res) this.#responseBySocket.delete(req.socket);
      const status = res.writableFinished ? String(res.statusCode) : 'aborted';
      metrics.httpRequests.inc({ route, status });
      metrics.httpDuration.observe({ route }, (performance.now() - started) / 1000);
    });
  }

  #settled(res: ServerResponse): void {
    this.#active.delete(res);
    if (this.#active.size > 0) return;
    for (const wake of this.#drainWaiters.splice(0)) wake();
  }

  async #dispatch(route: Route | null, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const limits = this.#deps.hardening?.rateLimits;
    const label: RouteLabel = route ?? 'other';
    if (limits && !unlimitedRoutes.has(label)) {
      // Before authentication, so an anonymous flood is bounded too.
      const refused = await limits.admitAddress(res, label, this.#clientAddress(req));
      if (refused) return refuse(req, res, refused);
    }
    if (route !== null && this.#deps.hardening?.cors?.answerPreflight(req, res, allowedMethods[route])) return;
    if (route === null) return refuse(req, res, new AppError('SS_NOT_FOUND', `No route for ${req.method} ${pathOf(req.url)}`));
    // Key management checks its methods per sub-path itself.
    if (route === KEYS_PATH) return this.#keyRoutes(req, res, route);
    const allowed = allowedMethods[route];
    if (!allowed.includes(req.method ?? '')) {
      const message = `${req.method} is not allowed on ${route}; use ${allowed.join(' or ')}`;
      return refuse(req, res, new AppError('SS_METHOD_NOT_ALLOWED', message), { Allow: allowed.join(', ') });
    }
    const deps = this.#deps;
    switch (route) {
      case '/health':
        return handleHealth(res, deps.version);
      case '/ready':
        return handleReady(res, deps.readiness, deps.logger);
      case '/metrics':
        return handleMetrics(res, deps.metrics);
      case '/api/v1/ingest':
        return handleIngest(
          {
            authenticator: deps.authenticator,
            sink: deps.sink,
            logger: deps.logger,
            maxBodyBytes: deps.options.maxBodyBytes,
            remoteAddress: this.#clientAddress(req),
            admitKey: limits ? (keyId) => limits.admitKey(res, route, keyId) : undefined,
          },
          req,
          res,
        );
    }
  }

  #clientAddress(req: IncomingMessage): string | undefined {
    return this.#deps.hardening?.clientAddress?.resolve(req) ?? req.socket.remoteAddress;
  }
  // --- Key management (src/http/key-routes.ts) ---
  #keyRoutes(req: IncomingMessage, res: ServerResponse, route: typeof KEYS_PATH): Promise<void> {
    const { keyManagement, authenticator, logger } = this.#deps;
    if (!keyManagement) return Promise.resolve(refuse(req, res, new AppError('SS_NOT_FOUND', `No route for ${req.method} ${pathOf(req.url)}`)));
    const limits = this.#deps.hardening?.rateLimits;
    const admitKey = limits ? (keyId: string) => limits.admitKey(res, route, keyId) : undefined;
    return handleKeyRoutes({ authenticator, management: keyManagement, logger, remoteAddress: this.#clientAddress(req), admitKey }, req, res);
  }
  // --- end of key management ---

  #internalError(err: unknown, req: IncomingMessage, res: ServerResponse): void {
    this.#deps.logger.error({ err, method: req.method, route: routeOf(req.url) ?? 'other' }, 'unexpected error in HTTP handler');
    if (res.headersSent) res.destroy();
    else refuse(req, res, new AppError('SS_INTERNAL'));
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const limits = this.#deps.hardening?.rateLimits;
    if (!limits || this.#closing) return this.#upgrade(req, socket, head);
    const route = routeOf(req.url) ?? 'other';
    // A throwaway answer only collects the rate-limit headers for the raw 429.
    const scratch = new ServerResponseHeaders();
    limits.admitAddress(scratch as unknown as ServerResponse, 'upgrade', this.#clientAddress(req)).then(
      (refused) => {
        if (!refused) return this.#upgrade(req, socket, head);
        this.#deps.metrics.httpRequests.inc({ route, status: '429' });
        const body = JSON.stringify(refused.toJSON());
        const headers = Object.entries(scratch.headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
        endRaw(socket, `HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n${headers}Content-Type: ${JSON_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      },
      (err: unknown) => {
        this.#deps.logger.error({ error: errorMessage(err) }, 'rate limit check failed on upgrade');
        socket.destroy();
      },
    );
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { upgrade, options, logger } = this.#deps;
    if (!this.#closing && upgrade && pathOf(req.url) === options.wsPath) {
      try {
        upgrade(req, socket, head, this.#clientAddress(req));
      } catch (err) {
        logger.error({ err }, 'WebSocket upgrade handler failed');
        socket.destroy();
      }
      return;
    }
    this.#deps.metrics.httpRequests.inc({ route: 'other', status: this.#closing ? '503' : '404' });
    endRaw(socket, this.#closing ? 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 404 Not Found\r\n\r\n');
  }

  /** Malformed requests and timeouts, which Node reports before (or instead of) a 'request'. */
  #onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const res = this.#responseBySocket.get(socket);
    if (err.code === 'ECONNRESET' || !socket.writable || res?.headersSent) {
      socket.destroy();
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      this.#deps.logger.warn({ remoteAddress: (socket as Socket).remoteAddress }, 'request did not arrive within the request timeout');
      const body = JSON.stringify(new AppError('SS_REQUEST_TIMEOUT').toJSON());
      endRaw(
        socket,
        `HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: ${JSON_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return;
    }
    this.#deps.logger.debug({ code: err.code }, 'malformed HTTP request');
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    endRaw(socket, `HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
  }
}

/** Collects the headers HttpRateLimits sets, for an answer written by hand on a raw socket. */
class ServerResponseHeaders {
  readonly headers: Record<string, string> = {};
  readonly headersSent = false;
  setHeader(name: string, value: string): void {
    this.headers[name] = value;
  }
}

/** Writes a last raw answer on a socket that never became an HTTP exchange, then drops it. */
function endRaw(socket: Duplex, text: string): void {
  socket.on('error', () => socket.destroy());
  socket.once('finish', () => socket.destroy());
  socket.end(text);
}

function pathOf(url: string | undefined): string {
  return (url ?? '/').split('?', 1)[0]!;
}

function routeOf(url: string | undefined): Route | null {
  let path = pathOf(url);
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  // Key management: /api/v1/auth/keys/{id} shares the route (and its metric label).
  if (path.startsWith(`${KEYS_PATH}/`)) return KEYS_PATH;
  return Object.hasOwn(allowedMethods, path) ? (path as Route) : null;
}
