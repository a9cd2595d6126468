import path from 'node:path';
import { MqttBroker } from '../broker/broker.js';
import { AuthEventLog, DEFAULT_AUTH_EVENT_LOG_OPTIONS } from './auth/auth-events.js';
import { DEFAULT_THROTTLE_POLICY, KeyAuthenticator } from './auth/authenticator.js';
import { KeyManagement } from './auth/key-management.js';
import { KeyStore, type CreatedKey } from './auth/key-store.js';
import { AuthThrottle } from './auth/throttle.js';
import type { Config } from './config/schema.js';
import { ClientAddressResolver } from './http/client-address.js';
import { CorsPolicy } from './http/cors.js';
import { HttpRateLimits } from './http/rate-limit.js';
import { HttpServer, type ReadinessReport } from './http/server.js';
import { BatchProcessor } from './ingest/batch-processor.js';
import { PayloadProcessor } from './ingest/processor.js';
import { DatabaseOutage } from './ingest/outage.js';
import { InCommitProcessor } from './ingest/process-in-commit.js';
import { RawIngestionStore } from './ingest/raw-store.js';
import { IngestService } from './ingest/service.js';
import { SpoolMetrics } from './ingest/spool-metrics.js';
import { SpoolReplayer } from './ingest/spool-replayer.js';
import { Spool } from './ingest/spool.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { migrationsDir } from './paths.js';
import { openDatabaseTarget, type DatabaseTarget } from './store/database-url.js';
import { loadMigrations, migrate } from './store/migrator.js';
import { PartitionManager } from './store/partitions.js';
import { enablePostgisIfAvailable } from './store/postgis.js';
import { Database } from './store/pool.js';
import { MemoryRateLimiter } from './ratelimit/memory-limiter.js';
import { RateLimitMetrics } from './ratelimit/metrics.js';
import { KeyPublishLimiter } from './ratelimit/publish-limiter.js';
import { RedisRateLimiter } from './ratelimit/redis-limiter.js';
import type { RateLimiter } from './ratelimit/types.js';
import { TlsCertificates } from './tls/certificates.js';

export interface AppOptions {
  config: Config;
  logger: Logger;
  version: string;
  /** Called once when the daemon created the first API key (the only time it can be shown). */
  onBootstrapKey?: (key: CreatedKey) => void;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const MIB = 1024 * 1024;
/**
 * How long the group commit waits for a lock on a sample table (held by a long transaction,
 * VACUUM FULL, a manual LOCK) before it stores the group without its samples: the longest a
 * sample table can hold up acknowledgements.
 */
const GROUP_COMMIT_LOCK_TIMEOUT_MS = 1_000;

/**
 * The composition root: builds every component, hands each its dependencies, and starts and
 * stops them in order. Nothing here does I/O before start().
 */
export class App {
  readonly config: Config;
  readonly metrics = new Metrics();
  readonly #logger: Logger;
  readonly #options: AppOptions;
  #target: DatabaseTarget | null = null;
  #db: Database | null = null;
  #keys: KeyStore | null = null;
  #authenticator: KeyAuthenticator | null = null;
  #authEvents: AuthEventLog | null = null;
  #keyManagement: KeyManagement | null = null;
  #ingest: IngestService | null = null;
  #spool: Spool | null = null;
  #replayer: SpoolReplayer | null = null;
  #broker: MqttBroker | null = null;
  #http: HttpServer | null = null;
  #partitionTimer: NodeJS.Timeout | null = null;
  #rateLimiter: RateLimiter | null = null;
  #certificates: TlsCertificates | null = null;
  #ready = false;
  #starting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;

  constructor(options: AppOptions) {
    this.#options = options;
    this.config = options.config;
    this.#logger = options.logger;
  }

  get httpAddress(): { host: string; port: number } {
    if (!this.#http) throw new Error('not started');
    return this.#http.address;
  }

  get mqttTcpAddress(): { host: string; port: number } | null {
    return this.#broker?.tcpAddress ?? null;
  }

  get mqttTlsAddress(): { host: string; port: number } | null {
    return this.#broker?.tlsAddress ?? null;
  }

  /**
   * Reads TLS_CERT_FILE and TLS_KEY_FILE again (main wires this to SIGHUP); new connections
   * get the new pair. False when TLS is off or the new pair is unusable (the old one stays).
   */
  reloadTls(): boolean {
    return this.#certificates?.reload() ?? false;
  }

  get keys(): KeyStore {
    if (!this.#keys) throw new Error('not started');
    return this.#keys;
  }

  /** Key management as the HTTP API uses it: a revocation here takes effect at once. */
  get keyManagement(): KeyManagement {
    if (!this.#keyManagement) throw new Error('not started');
    return this.#keyManagement;
  }

  get authenticator(): KeyAuthenticator {
    if (!this.#authenticator) throw new Error('not started');
    return this.#authenticator;
  }

  get authEvents(): AuthEventLog {
    if (!this.#authEvents) throw new Error('not started');
    return this.#authEvents;
  }

  get database(): Database {
    if (!this.#db) throw new Error('not started');
    return this.#db;
  }

  get ingest(): IngestService {
    if (!this.#ingest) throw new Error('not started');
    return this.#ingest;
  }

  get spool(): Spool {
    if (!this.#spool) throw new Error('not started');
    return this.#spool;
  }

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const { config } = this;
    const log = this.#logger;
    // Checked before anything starts, so a wrong certificate path fails fast and clearly.
    if (config.tls) {
      this.#certificates = new TlsCertificates(config.tls, log.child({ component: 'tls' }));
      void this.#certificates.current;
    }
    this.#target = await openDatabaseTarget(config, log, { stopAdopted: true });
    const db = new Database(
      { connectionString: this.#target.connectionString, poolMax: config.database.poolMax, groupCommitLockTimeoutMs: GROUP_COMMIT_LOCK_TIMEOUT_MS },
      log.child({ component: 'db' }),
      this.metrics,
    );
    this.#db = db;
    await db.start();
    const report = await migrate(db.pool, await loadMigrations(migrationsDir), log.child({ component: 'migrator' }));
    log.info({ schemaVersion: report.current, applied: report.applied }, 'database schema ready');
    // PostGIS may have been installed since the migration ran: enable the spatial column then.
    await enablePostgisIfAvailable(db.pool, log.child({ component: 'postgis' }));

    const partitions = new PartitionManager(db.pool, log.child({ component: 'partitions' }));
    await partitions.ensureAhead(config.partitions.monthsAhead);
    this.#partitionTimer = setInterval(() => {
      partitions.ensureAhead(config.partitions.monthsAhead).catch((err: Error) => log.warn({ error: err.message }, 'creating partitions ahead failed'));
    }, DAY_MS);
    this.#partitionTimer.unref();

    this.#keys = new KeyStore(db.pool);
    const authLog = log.child({ component: 'auth' });
    this.#authEvents = new AuthEventLog({
      pool: db.pool,
      logger: authLog,
      metrics: this.metrics,
      options: { ...DEFAULT_AUTH_EVENT_LOG_OPTIONS, retentionDays: config.auth.eventsRetentionDays },
    });
    await this.#authEvents.start();
    const authenticator = new KeyAuthenticator({
      keys: this.#keys,
      options: config.auth,
      logger: authLog,
      metrics: this.metrics,
      throttle: new AuthThrottle({ ...DEFAULT_THROTTLE_POLICY, ...config.auth.throttle }),
      events: this.#authEvents,
    });
    this.#authenticator = authenticator;
    await authenticator.start();
    this.#keyManagement = new KeyManagement({ keys: this.#keys, onRevoked: (keyId) => authenticator.invalidate([keyId]) });

    // The spool keeps acknowledging while PostgreSQL is unreachable (invariant 1); see src/ingest/spool.ts.
    const spoolLog = log.child({ component: 'spool' });
    const spoolMetrics = new SpoolMetrics(this.metrics.registry);
    const outage = new DatabaseOutage(spoolLog);
    this.#spool = new Spool(
      {
        dir: path.resolve(config.dataDir, 'spool'),
        maxBytes: config.spool.maxBytes,
        segmentBytes: Math.max(64 * 1024, Math.min(16 * MIB, Math.floor(config.spool.maxBytes / 8))),
      },
      spoolLog,
    );
    const spool = this.#spool;
    spoolMetrics.observe(() => spool.stats());
    await spool.start();

    this.#ingest = new IngestService({
      pool: db.pool,
      raw: new RawIngestionStore(db.pool, {
        maxBatchBytes: config.ingest.rawBatchBytes,
        // Small payloads' samples are written by the group commit that stores them.
        inCommit: new InCommitProcessor({ pool: db.groupCommitPool, partitions, limits: config.validation, metrics: this.metrics, logger: log.child({ component: 'ingest' }) }),
      }),
      processor: new PayloadProcessor({
        pool: db.pool,
        partitions,
        chunkRows: config.ingest.chunkRows,
        limits: config.validation,
        // Two writers keep both PostgreSQL and Node busy; one connection stays free for acknowledgements.
        writeConnections: config.database.poolMax >= 3 ? 2 : 1,
      }),
      batches: new BatchProcessor({ pool: db.pool, partitions, chunkRows: config.ingest.chunkRows, limits: config.validation }),
      logger: log.child({ component: 'ingest' }),
      metrics: this.metrics,
      options: {
        maxAttempts: config.ingest.maxAttempts,
        retryBaseMs: 1_000,
        maxQueuedBytes: config.ingest.maxQueuedBytes,
        jsonLimits: config.json,
        // Each holds a connection while its JSON is parsed; the writers and the group commit keep theirs.
        maxStoresWhileParsing: config.database.poolMax >= 5 ? 2 : 0,
      },
      spool: { spool, outage, metrics: spoolMetrics },
    });
    await this.#ingest.start();

    this.#replayer = new SpoolReplayer({
      spool,
      outage,
      target: this.#ingest,
      probe: async () => (await db.check()).ok,
      metrics: spoolMetrics,
      logger: spoolLog,
      options: { intervalMs: 1_000, batchRecords: 500, batchBytes: 8 * MIB },
    });
    await this.#replayer.start();

    const limits = this.#buildRateLimits();
    const certificates = this.#certificates;
    this.#broker = new MqttBroker({
      options: {
        ...config.mqtt,
        tls: certificates && config.tls?.mqttEnabled ? { host: config.mqtt.tcpHost, port: config.tls.mqttPort, context: certificates.current } : undefined,
      },
      logger: log,
      metrics: this.metrics,
      authenticator: this.#authenticator,
      sink: this.#ingest,
      publishLimit: limits.publish,
    });
    await this.#broker.start();

    const broker = this.#broker;
    this.#http = new HttpServer({
      options: { ...config.http, wsPath: config.mqtt.wsPath },
      logger: log.child({ component: 'http' }),
      metrics: this.metrics,
      authenticator: this.#authenticator,
      sink: this.#ingest,
      readiness: () => this.readiness(),
      upgrade: (req, socket, head, clientAddress) => broker.handleUpgrade(req, socket, head, clientAddress),
      version: this.#options.version,
      hardening: {
        ...config.httpTimeouts,
        rateLimits: limits.http,
        cors: new CorsPolicy(config.cors.origins),
        clientAddress: new ClientAddressResolver(config.trustProxy),
        tls: certificates?.current,
      },
      keyManagement: this.#keyManagement,
    });
    await this.#http.start();
    const http = this.#http;
    certificates?.onReload((pair) => {
      http.setSecureContext(pair);
      broker.setSecureContext(pair);
    });
    this.#ready = true;
    this.metrics.ready.set(1);

    const httpAddress = this.#http.address;
    const tcp = this.#broker.tcpAddress;
    const mqttTls = this.#broker.tlsAddress;
    const secure = certificates !== null;
    log.info(
      {
        http: `${secure ? 'https' : 'http'}://${httpAddress.host}:${httpAddress.port}`,
        mqttWebSocket: `${secure ? 'wss' : 'ws'}://${httpAddress.host}:${httpAddress.port}${config.mqtt.wsPath}`,
        mqttTcp: tcp ? `mqtt://${tcp.host}:${tcp.port}` : 'off',
        mqttTls: mqttTls ? `mqtts://${mqttTls.host}:${mqttTls.port}` : 'off',
        rateLimits: config.rateLimit.redisUrl ? 'shared through Redis' : 'in memory',
        database: this.#target.embedded ? `embedded PostgreSQL on 127.0.0.1:${this.#target.embedded.port}` : 'DATABASE_URL',
      },
      'self-sensored is listening',
    );
    await this.#bootstrapKey();
  }

  /** One limiter for both transports, so a key has one budget whichever way it sends. */
  #buildRateLimits(): { http: HttpRateLimits; publish: ConstructorParameters<typeof MqttBroker>[0]['publishLimit'] } {
    const { rateLimit } = this.config;
    const metrics = new RateLimitMetrics(this.metrics.registry);
    const limiter: RateLimiter = rateLimit.redisUrl
      ? new RedisRateLimiter({ url: rateLimit.redisUrl, prefix: 'self-sensored:rl:' }, this.#logger.child({ component: 'ratelimit' }), metrics)
      : new MemoryRateLimiter();
    this.#rateLimiter = limiter;
    return {
      http: new HttpRateLimits(limiter, { key: rateLimit.key, address: rateLimit.address }, metrics),
      publish: rateLimit.key ? { limiter: new KeyPublishLimiter(limiter, rateLimit.key, metrics), options: rateLimit.mqtt } : undefined,
    };
  }

  async #bootstrapKey(): Promise<void> {
    const { bootstrap } = this.config;
    if (!bootstrap.enabled || !this.#keys) return;
    if ((await this.#keys.countUsable()) > 0) return;
    // Ingest only: this key is typed into a phone, where it is most exposed. An admin key is
    // created deliberately with `keys create --scope admin` (see docs/security.md).
    const created = await this.#keys.create({ userName: bootstrap.user, label: 'created at first start', scopes: ['ingest'] });
    this.#logger.info({ keyId: created.id, user: created.userName, prefix: created.prefix }, 'no API key existed: created the first one');
    this.#options.onBootstrapKey?.(created);
  }

  async readiness(): Promise<ReadinessReport> {
    const database = this.#db ? await this.#db.check() : { ok: false, detail: 'not started' };
    const broker = this.#broker?.isReady() ?? false;
    const ready = this.#ready && database.ok && broker;
    this.metrics.ready.set(ready ? 1 : 0);
    return {
      ready,
      checks: {
        database,
        broker: broker ? { ok: true } : { ok: false, detail: 'not listening' },
        started: this.#ready ? { ok: true } : { ok: false, detail: this.#stopping ? 'shutting down' : 'starting' },
      },
    };
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /**
   * Drains in order: stop accepting, let in-flight payloads reach the database, close the broker
   * and HTTP connections, let queued processing finish, close the pool, stop the embedded server.
   * Payloads still queued at the deadline are already stored and resume at the next start.
   */
  async #stop(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    const remaining = () => Math.max(0, deadline - Date.now());
    const log = this.#logger;
    this.#ready = false;
    this.metrics.ready.set(0);
    if (this.#partitionTimer) clearInterval(this.#partitionTimer);
    log.info({ timeoutMs: this.config.shutdownTimeoutMs }, 'shutting down');
    await Promise.all([this.#http?.stopAccepting(), this.#broker?.stopAccepting()]);
    await bounded(this.#broker?.stop(), remaining(), () => log.warn('broker did not close in time'));
    await bounded(this.#http?.stop(), remaining(), () => log.warn('HTTP requests still running at the deadline'));
    // No new appends can come now; what is not replayed yet stays on disk for the next start.
    await bounded(this.#replayer?.stop(), remaining(), () => log.warn('spool replay still running at the deadline; the rest is replayed at next start'));
    await bounded(this.#spool?.stop(), remaining(), () => log.warn('spool did not close in time'));
    if (this.#ingest) {
      const drained = await this.#ingest.drain(remaining());
      if (!drained) log.warn({ queued: this.#ingest.queueLength }, 'processing not finished; stored payloads resume at next start');
      await bounded(this.#ingest.stop(), remaining(), () => undefined);
    }
    await this.#authenticator?.stop();
    await this.#rateLimiter?.close();
    await this.#authEvents?.stop().catch((err: Error) => log.warn({ error: err.message }, 'writing the last auth events failed'));
    await this.#db?.stop().catch((err: Error) => log.warn({ error: err.message }, 'closing the pool failed'));
    await this.#target?.embedded?.stop();
    log.info('stopped');
  }
}

async function bounded(promise: Promise<unknown> | undefined, ms: number, onTimeout: () => void): Promise<void> {
  if (!promise) return;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    promise.then(
      () => false,
      () => false,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), ms);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) onTimeout();
}
