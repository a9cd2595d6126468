import { z } from 'zod';
import { defaultLimits, type ValidationLimits } from '../hae/limits.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_CONNECTION_LIMITS } from '../../broker/connection-limits.js';
import { DEFAULT_MAX_INFLIGHT_PER_CLIENT } from '../../broker/publish-window.js';
import { DEFAULT_KEEPALIVE_BOUNDS } from '../../broker/session-policy.js';
import { ingestFilterProblems } from '../../broker/status-topic.js';
import { isAddressOrRange } from '../http/client-address.js';
import { DEFAULT_JSON_LIMITS } from '../ingest/json-limits.js';

// Environment variables arrive as strings; these helpers turn them into typed values with
// messages a person can act on.
const port = (name: string) =>
  z.coerce.number({ error: `${name} must be a port number` }).int().min(0).max(65535);
const positiveInt = (name: string) =>
  z.coerce.number({ error: `${name} must be a whole number` }).int().positive();
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const MIB = 1024 * 1024;

// HTTP hardening and rate limits
const nonNegativeInt = (name: string) =>
  z.coerce.number({ error: `${name} must be a whole number` }).int().min(0);
const commaList = z.string().transform((v) => v.split(',').map((item) => item.trim()).filter((item) => item !== ''));
const hardeningShape = {
  HTTP_HEADERS_TIMEOUT_MS: positiveInt('HTTP_HEADERS_TIMEOUT_MS').default(10_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: positiveInt('HTTP_KEEP_ALIVE_TIMEOUT_MS').default(5_000),
  JSON_MAX_DEPTH: positiveInt('JSON_MAX_DEPTH').max(10_000).default(DEFAULT_JSON_LIMITS.maxDepth),
  JSON_MAX_STRING_BYTES: positiveInt('JSON_MAX_STRING_BYTES').default(DEFAULT_JSON_LIMITS.maxStringBytes),
  // The browser origins allowed to call the API; empty (the default) sends no CORS headers at all.
  CORS_ORIGINS: commaList.pipe(
    z.array(
      z
        .string()
        .refine((o) => o !== '*', { error: 'CORS_ORIGINS cannot be *: list each origin (e.g. https://dash.example.org)' })
        .refine((o) => o === '*' || /^https?:\/\/[^/\s]+$/.test(o), { error: 'CORS_ORIGINS entries must be origins like https://host[:port], without a path' }),
    ),
  ).default([]),
  // Proxies whose X-Forwarded-For is believed (addresses or CIDR ranges); empty: none is.
  TRUST_PROXY: commaList
    .pipe(z.array(z.string().refine(isAddressOrRange, { error: 'TRUST_PROXY entries must be IP addresses or CIDR ranges (e.g. 127.0.0.1, 10.0.0.0/8, ::1)' })))
    .default([]),
  RATE_LIMIT_KEY_PER_MINUTE: nonNegativeInt('RATE_LIMIT_KEY_PER_MINUTE').default(1200),
  RATE_LIMIT_KEY_BURST: positiveInt('RATE_LIMIT_KEY_BURST').default(600),
  RATE_LIMIT_ADDRESS_PER_MINUTE: nonNegativeInt('RATE_LIMIT_ADDRESS_PER_MINUTE').default(2400),
  RATE_LIMIT_ADDRESS_BURST: positiveInt('RATE_LIMIT_ADDRESS_BURST').default(1200),
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'REDIS_URL must be a redis:// or rediss:// URL' }).optional(),
  MQTT_RATE_LIMIT_MAX_WAIT_MS: positiveInt('MQTT_RATE_LIMIT_MAX_WAIT_MS').default(60_000),
  MQTT_RATE_LIMIT_MAX_WAITING: positiveInt('MQTT_RATE_LIMIT_MAX_WAITING').default(100),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  MQTT_TLS_PORT: port('MQTT_TLS_PORT').optional(),
};

type HardeningSettings = z.output<z.ZodObject<typeof hardeningShape>>;

function checkHardening(s: HardeningSettings, ctx: z.RefinementCtx): void {
  if ((s.TLS_CERT_FILE === undefined) !== (s.TLS_KEY_FILE === undefined)) {
    ctx.addIssue({ code: 'custom', path: [s.TLS_CERT_FILE ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'], message: 'TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither' });
  }
  if (s.TLS_CERT_FILE === undefined && s.MQTT_TLS_PORT !== undefined && s.MQTT_TLS_PORT !== 0) {
    ctx.addIssue({ code: 'custom', path: ['MQTT_TLS_PORT'], message: 'MQTT_TLS_PORT needs TLS_CERT_FILE and TLS_KEY_FILE' });
  }
}

function hardeningConfig(s: HardeningSettings) {
  const tls = s.TLS_CERT_FILE && s.TLS_KEY_FILE ? { certFile: s.TLS_CERT_FILE, keyFile: s.TLS_KEY_FILE } : null;
  const mqttTlsPort = tls ? (s.MQTT_TLS_PORT ?? 8883) : 0;
  const rule = (perMinute: number, burst: number) => (perMinute === 0 ? null : { perMinute, burst });
  return {
    httpTimeouts: { headersTimeoutMs: s.HTTP_HEADERS_TIMEOUT_MS, keepAliveTimeoutMs: s.HTTP_KEEP_ALIVE_TIMEOUT_MS },
    cors: { origins: s.CORS_ORIGINS },
    trustProxy: s.TRUST_PROXY,
    json: { maxDepth: s.JSON_MAX_DEPTH, maxStringBytes: s.JSON_MAX_STRING_BYTES },
    rateLimit: {
      key: rule(s.RATE_LIMIT_KEY_PER_MINUTE, s.RATE_LIMIT_KEY_BURST),
      address: rule(s.RATE_LIMIT_ADDRESS_PER_MINUTE, s.RATE_LIMIT_ADDRESS_BURST),
      redisUrl: s.REDIS_URL,
      mqtt: { maxWaitMs: s.MQTT_RATE_LIMIT_MAX_WAIT_MS, maxWaiting: s.MQTT_RATE_LIMIT_MAX_WAITING },
    },
    tls: tls && { ...tls, mqttPort: mqttTlsPort, mqttEnabled: mqttTlsPort !== 0 },
  };
}

// A range setting may narrow its default but not widen it: the defaults are also the database's
// CHECK constraints, and a value the database refuses would fail its whole payload.
const within = (name: string, bounds: { min: number; max: number }) =>
  z.coerce
    .number({ error: `${name} must be a number` })
    .min(bounds.min, { error: `${name} cannot be below ${bounds.min} (the database refuses such values)` })
    .max(bounds.max, { error: `${name} cannot be above ${bounds.max} (the database refuses such values)` });

const limitSettings = {
  VALIDATION_HEART_RATE_MIN_BPM: ['heartRate', 'min'],
  VALIDATION_HEART_RATE_MAX_BPM: ['heartRate', 'max'],
  VALIDATION_SYSTOLIC_MIN_MMHG: ['systolic', 'min'],
  VALIDATION_SYSTOLIC_MAX_MMHG: ['systolic', 'max'],
  VALIDATION_DIASTOLIC_MIN_MMHG: ['diastolic', 'min'],
  VALIDATION_DIASTOLIC_MAX_MMHG: ['diastolic', 'max'],
  VALIDATION_BLOOD_OXYGEN_MIN_PERCENT: ['bloodOxygen', 'min'],
  VALIDATION_BLOOD_OXYGEN_MAX_PERCENT: ['bloodOxygen', 'max'],
  VALIDATION_BODY_TEMPERATURE_MIN_C: ['bodyTemperatureC', 'min'],
  VALIDATION_BODY_TEMPERATURE_MAX_C: ['bodyTemperatureC', 'max'],
  VALIDATION_LATITUDE_MIN: ['latitude', 'min'],
  VALIDATION_LATITUDE_MAX: ['latitude', 'max'],
  VALIDATION_LONGITUDE_MIN: ['longitude', 'min'],
  VALIDATION_LONGITUDE_MAX: ['longitude', 'max'],
} as const satisfies Record<string, [keyof ValidationLimits, 'min' | 'max']>;

type LimitSetting = keyof typeof limitSettings;

const limitShape = Object.fromEntries(
  Object.entries(limitSettings).map(([name, [limit, end]]) => [name, within(name, defaultLimits[limit]).default(defaultLimits[limit][end])]),
) as Record<LimitSetting, z.ZodDefault<z.ZodCoercedNumber<unknown>>>;

function limitsFrom(s: Record<LimitSetting, number>): ValidationLimits {
  const limits = structuredClone(defaultLimits);
  for (const [name, [limit, end]] of Object.entries(limitSettings) as Array<[LimitSetting, [keyof ValidationLimits, 'min' | 'max']]>) {
    limits[limit][end] = s[name];
  }
  return limits;
}

/**
 * Every setting, by the environment variable that sets it. The config file (CONFIG_FILE) uses
 * the same names; the environment wins over the file.
 */
export const settingsSchema = z
  .object({
    DATABASE_URL: z.url({ error: 'DATABASE_URL must be a postgres:// URL' }).optional(),
    DATA_DIR: z.string().min(1).default('./data'),
    EMBEDDED_PG_PORT: port('EMBEDDED_PG_PORT').default(54329),
    PG_POOL_MAX: positiveInt('PG_POOL_MAX').max(100).default(8),

    HTTP_HOST: z.string().min(1).default('0.0.0.0'),
    HTTP_PORT: port('HTTP_PORT').default(8080),
    HTTP_MAX_BODY_BYTES: positiveInt('HTTP_MAX_BODY_BYTES').default(128 * MIB),
    HTTP_REQUEST_TIMEOUT_MS: positiveInt('HTTP_REQUEST_TIMEOUT_MS').default(90_000),

    MQTT_WS_PATH: z.string().startsWith('/', { error: 'MQTT_WS_PATH must start with /' }).default('/mqtt'),
    MQTT_TCP_HOST: z.string().min(1).default('0.0.0.0'),
    MQTT_TCP_PORT: port('MQTT_TCP_PORT').default(1884),
    MQTT_INGEST_TOPIC_FILTER: z.string().min(1).default('health/#'),

    // MQTT limits
    MQTT_MAX_PACKET_BYTES: positiveInt('MQTT_MAX_PACKET_BYTES').max(268_435_455).default(128 * MIB),
    MQTT_MAX_CONNECTIONS: positiveInt('MQTT_MAX_CONNECTIONS').default(DEFAULT_CONNECTION_LIMITS.maxConnections),
    MQTT_MAX_CONNECTIONS_PER_ADDRESS: positiveInt('MQTT_MAX_CONNECTIONS_PER_ADDRESS').default(DEFAULT_CONNECTION_LIMITS.maxConnectionsPerAddress),
    MQTT_MAX_CONNECTIONS_PER_KEY: positiveInt('MQTT_MAX_CONNECTIONS_PER_KEY').default(DEFAULT_CONNECTION_LIMITS.maxConnectionsPerKey),
    MQTT_MAX_INFLIGHT_PER_CLIENT: positiveInt('MQTT_MAX_INFLIGHT_PER_CLIENT').max(65_535).default(DEFAULT_MAX_INFLIGHT_PER_CLIENT),
    MQTT_KEEPALIVE_MIN_SECONDS: positiveInt('MQTT_KEEPALIVE_MIN_SECONDS').max(65_535).default(DEFAULT_KEEPALIVE_BOUNDS.minSeconds),
    MQTT_KEEPALIVE_MAX_SECONDS: positiveInt('MQTT_KEEPALIVE_MAX_SECONDS').max(65_535).default(DEFAULT_KEEPALIVE_BOUNDS.maxSeconds),
    MQTT_CONNECT_TIMEOUT_MS: positiveInt('MQTT_CONNECT_TIMEOUT_MS').max(10 * 60_000).default(DEFAULT_CONNECT_TIMEOUT_MS),

    // Authentication (docs/security.md, "Keys and authentication", explains every default)
    AUTH_CACHE_TTL_MS: positiveInt('AUTH_CACHE_TTL_MS').default(10 * 60_000),
    // Capped so that a revoked or expired key always stops working within 5 seconds.
    AUTH_CACHE_REFRESH_MS: positiveInt('AUTH_CACHE_REFRESH_MS').max(5_000).default(2_000),
    AUTH_THROTTLE_FREE_FAILURES: z.coerce.number({ error: 'AUTH_THROTTLE_FREE_FAILURES must be a whole number' }).int().min(0).max(1_000).default(5),
    AUTH_THROTTLE_MAX_DELAY_MS: positiveInt('AUTH_THROTTLE_MAX_DELAY_MS').max(60_000).default(5_000),
    AUTH_THROTTLE_WINDOW_SECONDS: positiveInt('AUTH_THROTTLE_WINDOW_SECONDS').max(7 * 86_400).default(15 * 60),
    AUTH_BLOCK_AFTER_FAILURES: positiveInt('AUTH_BLOCK_AFTER_FAILURES').max(100_000).default(20),
    AUTH_BLOCK_SECONDS: positiveInt('AUTH_BLOCK_SECONDS').max(7 * 86_400).default(15 * 60),
    AUTH_EVENTS_RETENTION_DAYS: positiveInt('AUTH_EVENTS_RETENTION_DAYS').max(36_500).default(90),

    INGEST_CHUNK_ROWS: positiveInt('INGEST_CHUNK_ROWS').max(1_000_000).default(20_000),
    INGEST_RAW_BATCH_BYTES: positiveInt('INGEST_RAW_BATCH_BYTES').default(64 * MIB),
    PARTITION_MONTHS_AHEAD: positiveInt('PARTITION_MONTHS_AHEAD').max(36).default(3),
    INGEST_MAX_ATTEMPTS: positiveInt('INGEST_MAX_ATTEMPTS').max(100).default(5),
    INGEST_MAX_QUEUED_BYTES: positiveInt('INGEST_MAX_QUEUED_BYTES').default(256 * MIB),
    SPOOL_MAX_BYTES: positiveInt('SPOOL_MAX_BYTES').default(1024 * MIB),

    SHUTDOWN_TIMEOUT_MS: positiveInt('SHUTDOWN_TIMEOUT_MS').default(30_000),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    PUBLIC_HOST: z.string().min(1).optional(),
    BOOTSTRAP_USER: z.string().min(1).max(100).default('me'),
    BOOTSTRAP_KEY: bool.default(true),
    ...limitShape,
    ...hardeningShape,
  })
  .superRefine((s, ctx) => {
    checkHardening(s, ctx);
    for (const problem of ingestFilterProblems(s.MQTT_INGEST_TOPIC_FILTER)) {
      ctx.addIssue({ code: 'custom', path: ['MQTT_INGEST_TOPIC_FILTER'], message: problem });
    }
    if (s.MQTT_KEEPALIVE_MIN_SECONDS > s.MQTT_KEEPALIVE_MAX_SECONDS) {
      ctx.addIssue({ code: 'custom', path: ['MQTT_KEEPALIVE_MIN_SECONDS'], message: 'MQTT_KEEPALIVE_MIN_SECONDS must not be above MQTT_KEEPALIVE_MAX_SECONDS' });
    }
    if (s.AUTH_BLOCK_AFTER_FAILURES <= s.AUTH_THROTTLE_FREE_FAILURES) {
      ctx.addIssue({ code: 'custom', path: ['AUTH_BLOCK_AFTER_FAILURES'], message: 'AUTH_BLOCK_AFTER_FAILURES must be above AUTH_THROTTLE_FREE_FAILURES' });
    }
    for (const [name, [limit, end]] of Object.entries(limitSettings) as Array<[LimitSetting, [keyof ValidationLimits, 'min' | 'max']]>) {
      if (end !== 'min') continue;
      const maxName = (Object.keys(limitSettings) as LimitSetting[]).find((n) => limitSettings[n][0] === limit && limitSettings[n][1] === 'max')!;
      if (s[name] >= s[maxName]) ctx.addIssue({ code: 'custom', path: [name], message: `${name} must be below ${maxName}` });
    }
  })
  .transform((s) => ({
    database: { url: s.DATABASE_URL, poolMax: s.PG_POOL_MAX },
    dataDir: s.DATA_DIR,
    embeddedPostgres: { port: s.EMBEDDED_PG_PORT },
    http: {
      host: s.HTTP_HOST,
      port: s.HTTP_PORT,
      maxBodyBytes: s.HTTP_MAX_BODY_BYTES,
      requestTimeoutMs: s.HTTP_REQUEST_TIMEOUT_MS,
    },
    mqtt: {
      wsPath: s.MQTT_WS_PATH,
      tcpHost: s.MQTT_TCP_HOST,
      tcpEnabled: s.MQTT_TCP_PORT !== 0,
      tcpPort: s.MQTT_TCP_PORT,
      maxPacketBytes: s.MQTT_MAX_PACKET_BYTES,
      ingestTopicFilter: s.MQTT_INGEST_TOPIC_FILTER,
      maxConnections: s.MQTT_MAX_CONNECTIONS,
      maxConnectionsPerAddress: s.MQTT_MAX_CONNECTIONS_PER_ADDRESS,
      maxConnectionsPerKey: s.MQTT_MAX_CONNECTIONS_PER_KEY,
      maxInflightPerClient: s.MQTT_MAX_INFLIGHT_PER_CLIENT,
      keepaliveMinSeconds: s.MQTT_KEEPALIVE_MIN_SECONDS,
      keepaliveMaxSeconds: s.MQTT_KEEPALIVE_MAX_SECONDS,
      connectTimeoutMs: s.MQTT_CONNECT_TIMEOUT_MS,
    },
    auth: {
      cacheTtlMs: s.AUTH_CACHE_TTL_MS,
      cacheRefreshMs: s.AUTH_CACHE_REFRESH_MS,
      throttle: {
        freeFailures: s.AUTH_THROTTLE_FREE_FAILURES,
        maxDelayMs: s.AUTH_THROTTLE_MAX_DELAY_MS,
        windowMs: s.AUTH_THROTTLE_WINDOW_SECONDS * 1000,
        blockAfterFailures: s.AUTH_BLOCK_AFTER_FAILURES,
        blockMs: s.AUTH_BLOCK_SECONDS * 1000,
      },
      eventsRetentionDays: s.AUTH_EVENTS_RETENTION_DAYS,
    },
    ingest: {
      chunkRows: s.INGEST_CHUNK_ROWS,
      rawBatchBytes: s.INGEST_RAW_BATCH_BYTES,
      maxAttempts: s.INGEST_MAX_ATTEMPTS,
      maxQueuedBytes: s.INGEST_MAX_QUEUED_BYTES,
    },
    spool: { maxBytes: s.SPOOL_MAX_BYTES },
    partitions: { monthsAhead: s.PARTITION_MONTHS_AHEAD },
    shutdownTimeoutMs: s.SHUTDOWN_TIMEOUT_MS,
    log: { level: s.LOG_LEVEL },
    publicHost: s.PUBLIC_HOST,
    bootstrap: { user: s.BOOTSTRAP_USER, enabled: s.BOOTSTRAP_KEY },
    validation: limitsFrom(s),
    ...hardeningConfig(s),
  }));

export type Config = z.output<typeof settingsSchema>;
export type SettingName = keyof z.input<typeof settingsSchema>;
