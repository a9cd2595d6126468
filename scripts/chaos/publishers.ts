import mqtt, { type MqttClient } from 'mqtt';
import type { Ledger } from './ledger.js';
import { sleep, withTimeout } from './util.js';

export interface Publisher {
  readonly name: string;
  run(deadline: number): Promise<void>;
  /** Asks the loop to end; in-flight messages get `graceMs` to be acknowledged. */
  stop(graceMs: number): Promise<void>;
}

let clientSeq = 0;

/** An mqtt.js client that reconnects by itself (and re-sends unacknowledged QoS 1 messages, as mqtt.js does). */
export function reconnectingClient(url: string, key: string, name: string): MqttClient {
  const client = mqtt.connect(url, {
    clientId: `chaos-${process.pid}-${name}-${++clientSeq}`,
    username: 'chaos',
    password: key,
    reconnectPeriod: 300,
    connectTimeout: 5_000,
    keepalive: 30,
    clean: true,
  });
  // A refused or dropped connection is expected while the daemon is down; mqtt.js retries.
  client.on('error', () => undefined);
  return client;
}

/** Publishes at QoS 1; resolves true on PUBACK, false on an error (the message was given up). */
export function publishQos1(client: MqttClient, topic: string, body: Buffer): Promise<boolean> {
  return new Promise((resolve) => client.publish(topic, body, { qos: 1 }, (err) => resolve(!err)));
}

/** A steady MQTT stream over one connection: QoS 1 with a window of messages in flight, or QoS 0. */
export class MqttStream implements Publisher {
  readonly name: string;
  readonly transport: 'mqtt-tcp' | 'mqtt-ws';
  readonly #client: MqttClient;
  readonly #ledger: Ledger;
  readonly #qos: 0 | 1;
  readonly #intervalMs: number;
  readonly #window: number;
  readonly #inflight = new Set<Promise<boolean>>();
  #stopped = false;

  constructor(opts: { url: string; key: string; transport: 'mqtt-tcp' | 'mqtt-ws'; qos: 0 | 1; perSecond: number; window: number; ledger: Ledger }) {
    this.name = `${opts.transport} qos${opts.qos}`;
    this.#client = reconnectingClient(opts.url, opts.key, this.name.replace(' ', '-'));
    this.#ledger = opts.ledger;
    this.#qos = opts.qos;
    this.#intervalMs = 1000 / opts.perSecond;
    this.#window = opts.window;
    this.transport = opts.transport;
  }

  async run(deadline: number): Promise<void> {
    while (!this.#stopped && Date.now() < deadline) {
      // Only publish into a live connection: what piles up in mqtt.js's queue while the daemon is
      // down would all be sent at once on reconnect, which is not the steady stream we want.
      if (this.#client.connected && this.#inflight.size < this.#window) this.#publishOne();
      await sleep(this.#intervalMs);
    }
  }

  #publishOne(): void {
    const { record, body } = this.#ledger.next(this.transport, this.#qos);
    this.#ledger.sent(record);
    if (this.#qos === 0) {
      this.#client.publish('health/chaos', body, { qos: 0 });
      return;
    }
    const p = publishQos1(this.#client, 'health/chaos', body).then((ok) => {
      if (ok) record.acked = true;
      return ok;
    });
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
  }

  async stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    await withTimeout(Promise.all(this.#inflight), graceMs, []);
    await withTimeout(this.#client.endAsync(true), 5_000, undefined);
  }
}

/** POSTs payloads to /api/v1/ingest one after another; a 2xx (200 stored, 202 spooled) is the acknowledgement. */
export class RestPoster implements Publisher {
  readonly name = 'rest';
  readonly statuses = new Map<string, number>();
  readonly #url: string;
  readonly #key: string;
  readonly #ledger: Ledger;
  readonly #intervalMs: number;
  #stopped = false;
  #current: Promise<void> | null = null;

  constructor(opts: { httpUrl: string; key: string; perSecond: number; ledger: Ledger }) {
    this.#url = `${opts.httpUrl}/api/v1/ingest`;
    this.#key = opts.key;
    this.#ledger = opts.ledger;
    this.#intervalMs = 1000 / opts.perSecond;
  }

  async run(deadline: number): Promise<void> {
    while (!this.#stopped && Date.now() < deadline) {
      this.#current = this.#postOne();
      await this.#current;
      await sleep(this.#intervalMs);
    }
  }

  async #postOne(): Promise<void> {
    const { record, body } = this.#ledger.next('rest', null);
    let status: string;
    try {
      this.#ledger.sent(record);
      const res = await fetch(this.#url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.#key}`, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(15_000),
      });
      await res.arrayBuffer();
      status = String(res.status);
      if (res.status >= 200 && res.status < 300) record.acked = true;
    } catch {
      status = 'network error';
    }
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
  }

  async stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    if (this.#current) await withTimeout(this.#current, graceMs, undefined);
  }
}

/**
 * Sends one large payload at a time on its own connection, when the kill injector asks: the
 * kill then lands while its bytes are on the way, or while the daemon turns it into rows.
 */
export class LargeSender {
  readonly #client: MqttClient;
  readonly #ledger: Ledger;
  readonly #points: number;
  readonly #pending = new Set<Promise<boolean>>();

  constructor(opts: { url: string; key: string; points: number; ledger: Ledger }) {
    this.#client = reconnectingClient(opts.url, opts.key, 'large');
    this.#ledger = opts.ledger;
    this.#points = opts.points;
  }

  async connected(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#client.connected && Date.now() < deadline) await sleep(50);
    return this.#client.connected;
  }

  /** Publishes a large QoS 1 payload; the promise is its PUBACK (true) or its failure. */
  send(): Promise<boolean> {
    const { record, body } = this.#ledger.next('mqtt-tcp', 1, this.#points);
    this.#ledger.sent(record);
    const p = publishQos1(this.#client, 'health/chaos', body).then((ok) => {
      if (ok) record.acked = true;
      return ok;
    });
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
    return p;
  }

  async stop(graceMs: number): Promise<void> {
    await withTimeout(Promise.all(this.#pending), graceMs, []);
    await withTimeout(this.#client.endAsync(true), 5_000, undefined);
  }
}
