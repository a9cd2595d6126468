import type { AedesOptions, AedesPublishPacket, Client, PublishPacket } from 'aedes';
import type { Logger } from '../src/log.js';
import type { Metrics } from '../src/metrics.js';
import type { LogThrottle } from './log-throttle.js';
import { isValidTopicFilter, parseTopicFilterList, topicFiltersOverlap } from './topic-filter.js';
import type { AcceptOutcome, Identity, IngestRequest, IngestSink, ProcessingResult, Transport } from './types.js';

/**
 * Each API key has one status topic, `self-sensored/status/<key prefix>`, where the daemon tells
 * the key's own connections what became of each payload they published: the only thing any
 * client can ever receive from this broker.
 *
 * Per key rather than per user: the key prefix is 10 base32 characters, always safe as a topic
 * level, and a phone can work it out from the key it was given (`ss_<prefix>_…`). A user name is
 * free text that may contain `/`, `+` or `#`. It also means one leaked key shows only what was sent
 * with that key, not everything its user sends.
 */

export const STATUS_TOPIC_PREFIX = 'self-sensored/status';
/** Every status topic; the ingest filters must not overlap it. */
export const STATUS_TOPIC_FILTER = `${STATUS_TOPIC_PREFIX}/+`;

const SAFE_TOPIC_LEVEL = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_ERROR_CHARS = 300;

/**
 * Why an ingest filter list (MQTT_INGEST_TOPIC_FILTER) cannot be used, if it cannot: a publish to
 * a status topic must never count as health data.
 */
export function ingestFilterProblems(list: string): string[] {
  const filters = parseTopicFilterList(list);
  if (filters.length === 0) return ['MQTT_INGEST_TOPIC_FILTER names no topic filter'];
  const problems: string[] = [];
  for (const filter of filters) {
    if (!isValidTopicFilter(filter)) problems.push(`"${filter}" is not a valid MQTT topic filter`);
    else if (filter.startsWith('$')) problems.push(`"${filter}": topics starting with $ are reserved`);
    else if (topicFiltersOverlap(filter, STATUS_TOPIC_FILTER)) problems.push(`"${filter}" overlaps the status topics ${STATUS_TOPIC_FILTER}`);
  }
  return problems;
}

export function statusTopicFor(identity: Identity): string | null {
  return SAFE_TOPIC_LEVEL.test(identity.keyPrefix) ? `${STATUS_TOPIC_PREFIX}/${identity.keyPrefix}` : null;
}

export interface StatusBase {
  /** The topic the payload was published to, and when it arrived: to tell payloads apart. */
  topic: string | null;
  receivedAt: string;
}

/** The status message. Counts and ids only: no values from the payload. */
export type StatusMessage = StatusBase &
  (
    | {
        status: 'processed';
        ingestionId: string;
        duplicatePayload: boolean;
        counts: ProcessingResult['counts'];
        rejected: number;
        notStored: ProcessingResult['notStored'];
      }
    | { status: 'stored_not_processed'; ingestionId: string; duplicatePayload: boolean; error: string }
    | { status: 'spooled' }
    | { status: 'invalid_json'; position: number | null }
  );

export type StatusKind = StatusMessage['status'];

/** The message for an outcome, once its processing (if any) has settled. */
export async function statusMessageFor(base: StatusBase, outcome: AcceptOutcome): Promise<StatusMessage> {
  if (outcome.kind === 'spooled') return { ...base, status: 'spooled' };
  // The parser's message quotes the payload; its position is enough to find the fault.
  if (outcome.kind === 'invalid_json') return { ...base, status: 'invalid_json', position: outcome.position };
  const result = await outcome.processed;
  const stored = { ingestionId: outcome.ingestionId, duplicatePayload: outcome.duplicatePayload };
  if ('error' in result) {
    return { ...base, status: 'stored_not_processed', ...stored, error: result.error.slice(0, MAX_ERROR_CHARS) };
  }
  const rejected = Object.values(result.counts).reduce((sum, c) => sum + c.rejected, 0);
  return { ...base, status: 'processed', ...stored, counts: result.counts, rejected, notStored: result.notStored };
}

type AuthorizeSubscribe = NonNullable<AedesOptions['authorizeSubscribe']>;
type AuthorizeForward = NonNullable<AedesOptions['authorizeForward']>;

export interface StatusChannelDeps {
  logger: Logger;
  metrics: Metrics;
  throttle: LogThrottle;
  identityOf(client: Client): Identity | undefined;
  transportOf(client: Client): { transport: Transport; remoteAddress: string | undefined };
  /** Whether some connection could receive a message on this topic (StatusSubscribers). */
  hasSubscriber(topic: string): boolean;
}

interface Publisher {
  publish(packet: PublishPacket, callback: (error?: Error) => void): void;
  closed: boolean;
}

/**
 * Publishes status messages and decides, for subscriptions and for every message Aedes would
 * deliver, whether the connection may have it.
 */
export class StatusChannel {
  /** Payload buffers of the messages this class published: nothing else is ever delivered. */
  private readonly ours = new WeakSet<object>();
  private broker: Publisher | null = null;

  constructor(private readonly deps: StatusChannelDeps) {}

  attach(broker: Publisher): void {
    this.broker = broker;
  }

  /**
   * The sink the broker uses: the real one, plus a status message once the outcome is known.
   * Whether anyone is subscribed is decided when the payload is stored, before its PUBACK: a
   * client that has its SUBACK gets the status of every payload it publishes from then on.
   */
  wrapSink(sink: IngestSink): IngestSink {
    return {
      // A reaction of the sink's promise, not an async function around it: one promise fewer per publish.
      accept: (request) =>
        sink.accept(request).then((outcome) => {
          const topic = statusTopicFor(request.identity);
          // Nobody to tell: no message is built, not even the wait for processing.
          if (topic !== null && this.deps.hasSubscriber(topic)) this.report(topic, request, outcome);
          return outcome;
        }),
    };
  }

  private report(topic: string, request: IngestRequest, outcome: AcceptOutcome): void {
    // Only these two fields are kept while processing runs: never the request and its body.
    const base: StatusBase = { topic: request.topic, receivedAt: request.receivedAt.toISOString() };
    statusMessageFor(base, outcome).then(
      (message) => this.publish(topic, message),
      (err: unknown) => this.deps.logger.warn({ error: String(err), topic }, 'mqtt: status message not built'),
    );
  }

  private publish(topic: string, message: StatusMessage): void {
    const broker = this.broker;
    if (!broker || broker.closed) return;
    const payload = Buffer.from(JSON.stringify(message));
    this.ours.add(payload);
    broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, (err) => {
      if (err) this.deps.logger.warn({ error: err.message, topic }, 'mqtt: status message not published');
      else this.deps.metrics.mqttStatusMessages.inc({ status: message.status });
    });
  }

  /** Only the client's own status topic, spelled out: no wildcard, not even one that would match it. */
  readonly authorizeSubscribe: AuthorizeSubscribe = (client, subscription, done) => {
    const identity = this.deps.identityOf(client);
    const own = identity ? statusTopicFor(identity) : null;
    if (own !== null && subscription.topic === own) {
      // Status messages are sent at QoS 1; a QoS 2 grant would promise more than that.
      return done(null, { ...subscription, qos: subscription.qos === 2 ? 1 : subscription.qos });
    }
    const { transport, remoteAddress } = this.deps.transportOf(client);
    this.deps.metrics.mqttRefused.inc({ transport, reason: 'subscribe' });
    this.deps.throttle.warn(
      'subscribe',
      { clientId: client.id, transport, remoteAddress, topic: subscription.topic.slice(0, 200), user: identity?.userName },
      'mqtt: subscription refused (only the own status topic may be subscribed)',
    );
    done(null, null); // null negates: SUBACK 0x80
  };

  /** Called by Aedes for every message and every subscribed connection. */
  readonly authorizeForward: AuthorizeForward = (client, packet: AedesPublishPacket) => {
    if (typeof packet.payload === 'string' || !this.ours.has(packet.payload)) return null; // a client's publish
    const identity = this.deps.identityOf(client);
    return identity && statusTopicFor(identity) === packet.topic ? packet : null;
  };
}
