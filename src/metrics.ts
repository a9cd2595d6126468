import client from 'prom-client';
import { SummedCounter } from './summed-counter.js';
import { SummedHistogram } from './summed-histogram.js';

/**
 * Every metric the daemon exports, built once and handed to the components that update it.
 * A registry per instance keeps tests that build several daemons in one process apart.
 */
export class Metrics {
  readonly registry = new client.Registry();

  readonly payloads = new SummedCounter({
    name: 'self_sensored_ingest_payloads_total',
    help: 'Payloads received, by transport and outcome (stored, duplicate, invalid_json, json_limit, topic_refused, failed)',
    labelNames: ['transport', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly payloadBytes = new SummedCounter({
    name: 'self_sensored_ingest_payload_bytes_total',
    help: 'Bytes of payloads received, by transport',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });

  readonly samples = new SummedCounter({
    name: 'self_sensored_ingest_samples_total',
    help: 'Samples written, by transport, data type and result (inserted, updated, unchanged)',
    labelNames: ['transport', 'type', 'result'] as const,
    registers: [this.registry],
  });

  readonly rejections = new SummedCounter({
    name: 'self_sensored_ingest_rejections_total',
    help: 'Items rejected inside payloads, by data type and reason',
    labelNames: ['transport', 'type', 'reason'] as const,
    registers: [this.registry],
  });

  readonly ingestDuration = new SummedHistogram({
    name: 'self_sensored_ingest_duration_seconds',
    help: 'Time to store a raw payload (stage=accept) and to write its samples (stage=process)',
    labelNames: ['transport', 'stage'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });

  readonly processingQueue = new client.Gauge({
    name: 'self_sensored_ingest_processing_queue',
    help: 'Stored payloads waiting to be turned into samples',
    registers: [this.registry],
  });

  readonly processingQueueBytes = new client.Gauge({
    name: 'self_sensored_ingest_processing_queue_bytes',
    help: 'Bytes of stored payloads waiting to be turned into samples; over INGEST_MAX_QUEUED_BYTES, new payloads wait before they are stored',
    registers: [this.registry],
  });

  readonly batchPayloads = new SummedHistogram({
    name: 'self_sensored_ingest_batch_payloads',
    help: 'Payloads turned into samples per processing transaction (small payloads are processed together, by their group commit or after it)',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500],
    registers: [this.registry],
  });

  readonly batchFallbacks = new client.Counter({
    name: 'self_sensored_ingest_batch_fallbacks_total',
    help: 'Batches of payloads rolled back by a permanent error and then processed one payload at a time',
    registers: [this.registry],
  });

  readonly inCommitConflicts = new client.Counter({
    name: 'self_sensored_ingest_in_commit_conflicts_total',
    help: 'Groups of small payloads first written with plain inserts that met data already stored (re-sent or overlapping exports), and were written again with upserts',
    registers: [this.registry],
  });

  readonly inCommitFallbacks = new client.Counter({
    name: 'self_sensored_ingest_in_commit_fallbacks_total',
    help: 'Groups of small payloads stored without their samples (processed in the background instead), because the statement that stores and processes them together refused or failed',
    registers: [this.registry],
  });

  readonly processingFailures = new client.Counter({
    name: 'self_sensored_ingest_processing_failures_total',
    help: 'Payloads whose processing failed (they stay in raw_ingestions with their error)',
    registers: [this.registry],
  });

  readonly mqttConnections = new client.Gauge({
    name: 'self_sensored_mqtt_connections',
    help: 'Open MQTT connections, by transport',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });

  readonly authAttempts = new client.Counter({
    name: 'self_sensored_auth_attempts_total',
    help: 'API key checks, by transport and outcome (ok or the failure reason)',
    labelNames: ['transport', 'outcome'] as const,
    registers: [this.registry],
  });

  // Authentication: throttling of failed attempts and the auth_events log.
  readonly authThrottled = new client.Counter({
    name: 'self_sensored_auth_throttled_total',
    help: 'Authentication attempts slowed down (action=delayed) or refused without checking the key (action=refused) after repeated failures',
    labelNames: ['transport', 'action'] as const,
    registers: [this.registry],
  });

  readonly authBlocks = new client.Counter({
    name: 'self_sensored_auth_blocks_total',
    help: 'Temporary blocks started after too many failed attempts, by scope (address or key)',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });

  #blockedSource: (() => { address: number; key: number }) | null = null;

  readonly authBlocked = new client.Gauge({
    name: 'self_sensored_auth_blocked',
    help: 'Remote addresses (scope=address) and key prefixes (scope=key) blocked right now',
    labelNames: ['scope'] as const,
    registers: [this.registry],
    collect: () => {
      const counts = this.#blockedSource?.() ?? { address: 0, key: 0 };
      this.authBlocked.set({ scope: 'address' }, counts.address);
      this.authBlocked.set({ scope: 'key' }, counts.key);
    },
  });

  observeAuthBlocked(source: () => { address: number; key: number }): void {
    this.#blockedSource = source;
  }

  readonly authEventsDropped = new client.Counter({
    name: 'self_sensored_auth_events_dropped_total',
    help: 'Authentication events not written to auth_events because the in-memory queue was full',
    registers: [this.registry],
  });

  readonly authKeyDisconnects = new client.Counter({
    name: 'self_sensored_auth_key_disconnects_total',
    help: 'MQTT connections closed because their key was revoked or expired while connected',
    registers: [this.registry],
  });

  #poolSource: (() => { total: number; idle: number; waiting: number }) | null = null;

  readonly dbPool = new client.Gauge({
    name: 'self_sensored_db_pool_connections',
    help: 'Database pool connections, by state (total, idle, waiting)',
    labelNames: ['state'] as const,
    registers: [this.registry],
    // Sampled on scrape rather than tracked on every checkout.
    collect: () => {
      const counts = this.#poolSource?.();
      if (!counts) return;
      this.dbPool.set({ state: 'total' }, counts.total);
      this.dbPool.set({ state: 'idle' }, counts.idle);
      this.dbPool.set({ state: 'waiting' }, counts.waiting);
    },
  });

  observePool(source: () => { total: number; idle: number; waiting: number }): void {
    this.#poolSource = source;
  }

  readonly dbErrors = new client.Counter({
    name: 'self_sensored_db_errors_total',
    help: 'Database errors seen by the ingest path, by kind (transient, permanent)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly httpRequests = new client.Counter({
    name: 'self_sensored_http_requests_total',
    help: 'HTTP requests answered, by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new client.Histogram({
    name: 'self_sensored_http_request_duration_seconds',
    help: 'HTTP request duration, by route',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 90],
    registers: [this.registry],
  });

  readonly mqttRefused = new client.Counter({
    name: 'self_sensored_mqtt_refused_total',
    help:
      'MQTT connections or packets refused, by transport and reason (max_connections, max_connections_per_address, max_connections_per_key, connect_timeout, packet_too_large, malformed_packet, topic, subscribe, client_id_taken)',
    labelNames: ['transport', 'reason'] as const,
    registers: [this.registry],
  });

  readonly mqttSockets = new client.Gauge({
    name: 'self_sensored_mqtt_sockets',
    help: 'Open MQTT sockets, by transport, including those not yet authenticated (what MQTT_MAX_CONNECTIONS counts)',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });

  readonly mqttPublishesHeld = new client.Counter({
    name: 'self_sensored_mqtt_publishes_held_total',
    help: 'Publishes that waited because their client already had MQTT_MAX_INFLIGHT_PER_CLIENT being stored, by transport',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });

  readonly mqttStatusMessages = new client.Counter({
    name: 'self_sensored_mqtt_status_messages_total',
    help: 'Status messages published on the per-key status topics (only while a connection is subscribed), by status (processed, stored_not_processed, spooled, invalid_json)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });

  readonly ready = new client.Gauge({
    name: 'self_sensored_ready',
    help: '1 when the database and the broker are ready, else 0',
    registers: [this.registry],
  });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'self_sensored_' });
    // Present from the start, so that dashboards and alerts see 0 rather than no series.
    for (const transport of ['mqtt-ws', 'mqtt-tcp']) {
      this.mqttConnections.set({ transport }, 0);
      this.mqttSockets.set({ transport }, 0);
    }
  }
}
