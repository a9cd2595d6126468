import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createConnection, type AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { MqttClient, connect as mqttConnect, type IClientOptions } from 'mqtt';
import { MqttBroker, type MqttBrokerOptions } from '../../broker/broker.js';
import type { AcceptOutcome, AuthContext, AuthOutcome, Authenticator, Identity, IngestRequest, IngestSink, ProcessingResult } from '../../broker/types.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';

/**
 * The broker alone, on ephemeral ports, with stand-ins for OUR interfaces (authenticator, ingest
 * sink): real sockets and real MQTT clients, no database.
 */

export const identities: Record<string, Identity> = {
  'alice-key': { userId: 'u-1', userName: 'alice', keyId: 'k-1', keyPrefix: 'alicekey01', scopes: ['ingest'] },
  'alice-phone2-key': { userId: 'u-1', userName: 'alice', keyId: 'k-2', keyPrefix: 'alicekey02', scopes: ['ingest'] },
  'bob-key': { userId: 'u-2', userName: 'bob', keyId: 'k-3', keyPrefix: 'bobkey0001', scopes: ['ingest'] },
};

export class TestAuthenticator implements Authenticator {
  async verify(presentedKey: string | undefined, _context: AuthContext): Promise<AuthOutcome> {
    const identity = presentedKey === undefined ? undefined : identities[presentedKey];
    return identity ? { ok: true, identity } : { ok: false, reason: 'unknown_key' };
  }
}

/** Stores in memory; a key prefix can be held so its accept() calls wait. */
export class TestSink implements IngestSink {
  readonly stored: IngestRequest[] = [];
  /** accept() calls running now, and the most seen at once, per key prefix. */
  readonly running = new Map<string, number>();
  readonly peak = new Map<string, number>();
  /** How often someone read an outcome's `processed` promise (to wait for the processing). */
  processedReads = 0;
  private readonly holds = new Map<string, { promise: Promise<void>; release: () => void }>();

  hold(keyPrefix: string): () => void {
    let release = (): void => undefined;
    const promise = new Promise<void>((resolve) => (release = resolve));
    this.holds.set(keyPrefix, { promise, release });
    return () => {
      this.holds.delete(keyPrefix);
      release();
    };
  }

  callsOf(keyPrefix: string): number {
    return this.stored.filter((r) => r.identity.keyPrefix === keyPrefix).length + (this.running.get(keyPrefix) ?? 0);
  }

  async accept(request: IngestRequest): Promise<AcceptOutcome> {
    const prefix = request.identity.keyPrefix;
    const now = (this.running.get(prefix) ?? 0) + 1;
    this.running.set(prefix, now);
    this.peak.set(prefix, Math.max(this.peak.get(prefix) ?? 0, now));
    try {
      const hold = this.holds.get(prefix);
      if (hold) await hold.promise;
      this.stored.push(request);
      const ingestionId = `ing-${this.stored.length}`;
      const result: ProcessingResult = {
        ingestionId,
        counts: { quantity: { received: 2, inserted: 2, updated: 0, unchanged: 0, rejected: 0 } },
        rejections: [],
        notStored: [],
      };
      const processed = Promise.resolve(result);
      const reads = (): void => void this.processedReads++;
      return {
        kind: 'stored',
        ingestionId,
        duplicatePayload: false,
        get processed() {
          reads();
          return processed;
        },
      };
    } finally {
      this.running.set(prefix, (this.running.get(prefix) ?? 1) - 1);
    }
  }
}

export interface BrokerFixture<S extends IngestSink = TestSink> {
  broker: MqttBroker;
  sink: S;
  metrics: Metrics;
  logs: string[];
  wsUrl: string;
  tcpUrl: string;
  tcpPort: number;
  httpPort: number;
}

/**
 * The broker on ephemeral ports behind an HTTP server for WebSocket upgrades, stopped after the
 * test with every client made by mqttClient(). A test may bring its own sink and authenticator.
 */
export async function startBroker<S extends IngestSink = TestSink>(
  t: TestContext,
  overrides: Partial<MqttBrokerOptions> = {},
  deps: { sink?: S; authenticator?: Authenticator } = {},
): Promise<BrokerFixture<S>> {
  const logs: string[] = [];
  const logger = createLogger('debug', { write: (line: string) => void logs.push(line) });
  const metrics = new Metrics();
  const sink = deps.sink ?? (new TestSink() as IngestSink as S);
  const broker = new MqttBroker({
    options: {
      wsPath: '/mqtt',
      tcpHost: '127.0.0.1',
      tcpPort: 0,
      tcpEnabled: true,
      maxPacketBytes: 1024 * 1024,
      ingestTopicFilter: 'health/#',
      ...overrides,
    },
    logger,
    metrics,
    authenticator: deps.authenticator ?? new TestAuthenticator(),
    sink,
  });
  await broker.start();
  const http = await startHttp(broker);
  t.after(async () => {
    for (const c of clientsOf(t)) c.end(true);
    await broker.stop();
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });
  const tcpPort = broker.tcpAddress?.port ?? 0;
  const httpPort = (http.address() as AddressInfo).port;
  return { broker, sink, metrics, logs, wsUrl: `ws://127.0.0.1:${httpPort}/mqtt`, tcpUrl: `mqtt://127.0.0.1:${tcpPort}`, tcpPort, httpPort };
}

async function startHttp(broker: MqttBroker): Promise<HttpServer> {
  const server = createHttpServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname === '/mqtt') broker.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

const open = new WeakMap<TestContext, MqttClient[]>();
function clientsOf(t: TestContext): MqttClient[] {
  let list = open.get(t);
  if (!list) open.set(t, (list = []));
  return list;
}

export const quiet: IClientOptions = { reconnectPeriod: 0, connectTimeout: 5000 };

/**
 * An mqtt.js client (ended after the test). `localAddress` picks the source address (127.0.0.x),
 * so a test can act as several remote hosts.
 */
export function mqttClient(t: TestContext, url: string, opts: IClientOptions & { localAddress?: string } = {}): MqttClient {
  const { localAddress, ...rest } = opts;
  const options: IClientOptions = { username: 'phone', ...quiet, ...rest };
  let client: MqttClient;
  if (localAddress && url.startsWith('mqtt:')) {
    const { hostname, port } = new URL(url);
    client = new MqttClient(() => createConnection({ host: hostname, port: Number(port), localAddress }), { ...options, protocol: 'mqtt' });
  } else {
    client = mqttConnect(url, localAddress ? { ...options, wsOptions: { localAddress } } : options);
  }
  clientsOf(t).push(client);
  return client;
}

/** Resolves with the client once CONNACK accepted it. */
export async function connected(client: MqttClient): Promise<MqttClient> {
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
  return client;
}

/** Resolves with the CONNACK refusal code (or 'closed' when the socket closed without one). */
export function refusal(client: MqttClient): Promise<number | 'closed'> {
  return new Promise((resolve, reject) => {
    client.once('connect', () => reject(new Error('connection unexpectedly accepted')));
    client.once('error', (err) => resolve((err as { code?: number }).code ?? 'closed'));
    client.once('close', () => resolve('closed'));
  });
}

/** The SUBACK return codes for `topics` (mqtt.js turns 0x80 into an error; read the packet itself). */
export async function subackCodes(client: MqttClient, topics: string[]): Promise<number[]> {
  const suback = new Promise<number[]>((resolve) => {
    const onPacket = (p: { cmd: string; granted?: Array<number | object> }): void => {
      if (p.cmd !== 'suback') return;
      client.off('packetreceive', onPacket);
      resolve((p.granted ?? []).map((g) => (typeof g === 'number' ? g : -1)));
    };
    client.on('packetreceive', onPacket);
  });
  await client.subscribeAsync(topics, { qos: 1 }).catch(() => undefined);
  return suback;
}

export function closedWithin(client: MqttClient, timeoutMs: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    if (client.disconnected) return resolve(0);
    const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
    client.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

export async function waitUntil(condition: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Narrow view of a prom-client metric, enough to read one labelled value. */
interface Readable {
  get(): Promise<{ values: Array<{ labels: Partial<Record<string, string | number>>; value: number }> }>;
}

export async function metricValue(metric: Readable, labels: Record<string, string>): Promise<number> {
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value ?? 0;
}
