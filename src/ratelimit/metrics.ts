import client from 'prom-client';

/**
 * Rate-limit metrics, on the daemon's registry. Labels are fixed words (route, scope, backend):
 * never a key, a key id or an address, which would leak and blow up cardinality.
 */
export class RateLimitMetrics {
  readonly limited: client.Counter<'route' | 'scope'>;
  readonly mqttDisconnects: client.Counter;
  readonly backendErrors: client.Counter<'backend'>;
  readonly backendUp: client.Gauge<'backend'>;

  constructor(registry: client.Registry) {
    this.limited = new client.Counter({
      name: 'self_sensored_rate_limited_total',
      help: 'Requests refused (HTTP 429) or delayed (MQTT publishes whose PUBACK waited) by a rate limit, by route (or mqtt) and scope (key, address)',
      labelNames: ['route', 'scope'] as const,
      registers: [registry],
    });
    this.mqttDisconnects = new client.Counter({
      name: 'self_sensored_rate_limit_mqtt_disconnects_total',
      help: 'MQTT clients disconnected for staying over their rate limit (MQTT_RATE_LIMIT_MAX_WAIT_MS or MQTT_RATE_LIMIT_MAX_WAITING)',
      registers: [registry],
    });
    this.backendErrors = new client.Counter({
      name: 'self_sensored_rate_limit_backend_errors_total',
      help: 'Rate-limit checks the shared backend (Redis) could not answer; this instance counted them alone',
      labelNames: ['backend'] as const,
      registers: [registry],
    });
    this.backendUp = new client.Gauge({
      name: 'self_sensored_rate_limit_backend_up',
      help: '1 while the shared rate-limit backend (Redis) answers, 0 while this instance counts alone',
      labelNames: ['backend'] as const,
      registers: [registry],
    });
  }
}
