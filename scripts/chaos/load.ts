import mqtt, { type MqttClient } from 'mqtt';
import type { Daemon, RssSampler } from './daemon.js';
import type { Ledger } from './ledger.js';
import { publishQos1 } from './publishers.js';
import { sleep, withTimeout, type Random } from './util.js';

export interface SoakResult {
  target: number;
  opened: number;
  failedToOpen: number;
  /** Connections that closed during the soak although nobody asked them to. */
  dropped: number;
  openAtEnd: number;
  seconds: number;
  published: number;
  acked: number;
  connectSeconds: number;
  rssStartKiB: number | null;
  rssEndKiB: number | null;
  rssPeakKiB: number;
}

const CONNECT_CONCURRENCY = 50;

/** One connection that stays open; never reconnects, so a drop is visible. */
function openOne(url: string, key: string, id: string): Promise<MqttClient | null> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { clientId: id, username: 'chaos', password: key, reconnectPeriod: 0, connectTimeout: 20_000, keepalive: 60 });
    client.once('connect', () => resolve(client));
    client.once('error', () => {
      client.end(true);
      resolve(null);
    });
    client.once('close', () => resolve(null));
  });
}

/** Opens `count` connections, half over TCP and half over WebSocket, a bounded number at a time. */
async function openAll(daemon: Daemon, key: string, count: number, deadline: number): Promise<{ clients: MqttClient[]; failed: number }> {
  const clients: MqttClient[] = [];
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < count && Date.now() < deadline) {
      const i = next++;
      const url = i % 2 === 0 ? daemon.tcpUrl : daemon.wsUrl;
      const client = await openOne(url, key, `chaos-load-${process.pid}-${i}`);
      if (client) clients.push(client);
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, worker));
  return { clients, failed };
}

/**
 * The load phase: many connections held open for the soak while a modest stream of payloads
 * goes through random ones, and the daemon's RSS is watched.
 */
export async function soak(opts: { daemon: Daemon; key: string; ledger: Ledger; rss: RssSampler; rng: Random; connections: number; seconds: number; perSecond: number }): Promise<SoakResult> {
  const { daemon, key, ledger, rss, rng } = opts;
  const connectStarted = Date.now();
  const { clients, failed } = await openAll(daemon, key, opts.connections, connectStarted + 120_000);
  const connectSeconds = (Date.now() - connectStarted) / 1000;
  let dropped = 0;
  let ending = false;
  for (const c of clients) c.on('close', () => !ending && dropped++);
  const rssStartKiB = rss.sample();

  const soakStarted = Date.now();
  const deadline = soakStarted + opts.seconds * 1000;
  const pending = new Set<Promise<boolean>>();
  let published = 0;
  let acked = 0;
  const intervalMs = opts.perSecond > 0 ? 1000 / opts.perSecond : Infinity;
  while (Date.now() < deadline && clients.length > 0 && opts.perSecond > 0) {
    const i = Math.floor(rng() * clients.length);
    const client = clients[i]!;
    if (client.connected) {
      // Mostly QoS 1 (acknowledged, so counted in "lost"); some QoS 0 as the app may send.
      const qos = rng() < 0.8 ? 1 : 0;
      const { record, body } = ledger.next(i % 2 === 0 ? 'mqtt-tcp' : 'mqtt-ws', qos);
      ledger.sent(record);
      published++;
      if (qos === 0) client.publish('health/chaos', body, { qos: 0 });
      else {
        const p = publishQos1(client, 'health/chaos', body).then((ok) => {
          if (ok) {
            record.acked = true;
            acked++;
          }
          return ok;
        });
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
    }
    await sleep(intervalMs);
  }
  if (opts.perSecond <= 0) await sleep(deadline - Date.now());
  await withTimeout(Promise.all(pending), 15_000, []);
  const seconds = (Date.now() - soakStarted) / 1000;
  const rssEndKiB = rss.sample();
  const openAtEnd = clients.filter((c) => c.connected).length;

  ending = true;
  await withTimeout(Promise.all(clients.map((c) => c.endAsync(true))), 15_000, []);
  return {
    target: opts.connections,
    opened: clients.length,
    failedToOpen: failed,
    dropped,
    openAtEnd,
    seconds,
    published,
    acked,
    connectSeconds,
    rssStartKiB,
    rssEndKiB,
    rssPeakKiB: rss.peaks.get('soak') ?? 0,
  };
}
