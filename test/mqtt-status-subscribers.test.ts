import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client, Subscription } from 'aedes';
import type { MqttClient } from 'mqtt';
import { StatusSubscribers } from '../broker/status-subscribers.js';
import { connected, metricValue, mqttClient, startBroker, subackCodes, type BrokerFixture } from './helpers/mqtt-broker.js';

/**
 * A status message is built and published only while some connection is subscribed to the key's
 * status topic; every subscriber still gets the status of each payload published after its SUBACK.
 */

const limit = { timeout: 20_000 };
const ALICE_TOPIC = 'self-sensored/status/alicekey01';
// Long enough for a status of an acknowledged payload to be published and delivered (processing is instant here).
const SETTLE_MS = 200;

const published = (f: BrokerFixture): Promise<number> => metricValue(f.metrics.mqttStatusMessages, { status: 'processed' });

function collect(client: MqttClient): string[] {
  const got: string[] = [];
  client.on('message', (topic, payload) => got.push(`${topic} ${JSON.parse(payload.toString('utf8')).topic}`));
  return got;
}

/** Publishes at QoS 1 (resolves at the PUBACK) and leaves time for a status to arrive. */
async function publish(client: MqttClient, topic: string): Promise<void> {
  await client.publishAsync(topic, '{"data":{}}', { qos: 1 });
  await delay(SETTLE_MS);
}

/** Until the broker counts `n` TCP connections: a closed connection's subscriptions are gone by then. */
async function tcpConnections(f: BrokerFixture, n: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while ((await metricValue(f.metrics.mqttConnections, { transport: 'mqtt-tcp' })) !== n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} TCP connections`);
    await delay(10);
  }
}

test('no subscriber: the payload is stored and acknowledged; no status is built or published', limit, async (t) => {
  const f = await startBroker(t);
  const alice = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key' }));
  // Refused subscriptions are no subscriptions, even to the topic a wildcard would cover.
  assert.deepEqual(await subackCodes(alice, ['#', 'self-sensored/status/+', 'self-sensored/status/bobkey0001']), [128, 128, 128]);
  const bob = await connected(mqttClient(t, f.tcpUrl, { password: 'bob-key' }));
  await publish(alice, 'health/alice');
  await publish(bob, 'health/bob');
  assert.deepEqual(f.sink.stored.map((r) => r.topic), ['health/alice', 'health/bob']);
  assert.equal(await published(f), 0);
  assert.equal(f.sink.processedReads, 0, 'the processing was not even waited for');
});

test('a subscriber gets the status of its next payload; after UNSUBSCRIBE nothing more is published', limit, async (t) => {
  const f = await startBroker(t);
  const phone = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key' }));
  const got = collect(phone);
  // Twice: Aedes keeps one subscription per topic and connection, so one UNSUBSCRIBE ends it.
  assert.deepEqual(await subackCodes(phone, [ALICE_TOPIC]), [1]);
  assert.deepEqual(await subackCodes(phone, [ALICE_TOPIC]), [1]);
  await publish(phone, 'health/one');
  assert.deepEqual(got, [`${ALICE_TOPIC} health/one`]);
  assert.equal(await published(f), 1);
  assert.equal(f.sink.processedReads, 1);

  await phone.unsubscribeAsync(ALICE_TOPIC);
  await publish(phone, 'health/two');
  assert.deepEqual(got, [`${ALICE_TOPIC} health/one`]);
  assert.equal(await published(f), 1, 'nothing published after the UNSUBSCRIBE');
  assert.equal(f.sink.processedReads, 1);

  assert.deepEqual(await subackCodes(phone, [ALICE_TOPIC]), [1]);
  await publish(phone, 'health/three');
  assert.deepEqual(got, [`${ALICE_TOPIC} health/one`, `${ALICE_TOPIC} health/three`]);
  assert.equal(await published(f), 2);
  assert.equal(f.sink.stored.length, 3, 'every payload was stored');
});

test('per topic, not per connection: one of two subscribers leaving keeps the statuses flowing; the last one stops them', limit, async (t) => {
  const f = await startBroker(t);
  const first = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'first' }));
  const second = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'second' }));
  assert.deepEqual(await subackCodes(first, [ALICE_TOPIC]), [1]);
  assert.deepEqual(await subackCodes(second, [ALICE_TOPIC]), [1]);
  const secondGot = collect(second);
  const phone = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'phone' }));

  await first.unsubscribeAsync(ALICE_TOPIC);
  await publish(phone, 'health/one');
  assert.deepEqual(secondGot, [`${ALICE_TOPIC} health/one`]);
  assert.equal(await published(f), 1);

  // A clean session going away without DISCONNECT (socket closed): its subscription ends with it.
  second.end(true);
  await tcpConnections(f, 2);
  await publish(phone, 'health/two');
  assert.equal(await published(f), 1, 'nothing published once the last subscriber left');
  assert.equal(f.sink.stored.length, 2);
});

test('a clean session that disconnects stops the statuses; a takeover of its client id keeps the new subscription', limit, async (t) => {
  const f = await startBroker(t);
  const phone = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'phone' }));
  const listener = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'listener' }));
  assert.deepEqual(await subackCodes(listener, [ALICE_TOPIC]), [1]);
  await publish(phone, 'health/one');
  assert.equal(await published(f), 1);

  await listener.endAsync(); // DISCONNECT
  await tcpConnections(f, 1);
  await publish(phone, 'health/two');
  assert.equal(await published(f), 1, 'nothing published after the subscriber disconnected');

  // The same client id twice: the old connection's subscription ends, the new one's stays.
  const old = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'listener' }));
  assert.deepEqual(await subackCodes(old, [ALICE_TOPIC]), [1]);
  const taking = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'listener' }));
  assert.deepEqual(await subackCodes(taking, [ALICE_TOPIC]), [1]);
  await tcpConnections(f, 2);
  const got = collect(taking);
  await publish(phone, 'health/three');
  assert.deepEqual(got, [`${ALICE_TOPIC} health/three`]);
  assert.equal(await published(f), 2);
});

test('clean = false is made clean: nothing is published or queued while the phone is away, statuses resume once it subscribes again', limit, async (t) => {
  const f = await startBroker(t);
  const sessionPresent: boolean[] = [];
  const away = mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'persistent', clean: false });
  away.on('connect', (connack) => sessionPresent.push(connack.sessionPresent));
  await connected(away);
  assert.deepEqual(await subackCodes(away, [ALICE_TOPIC]), [1]);
  await away.endAsync();
  await tcpConnections(f, 0);

  const publisher = await connected(mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'publisher' }));
  await publish(publisher, 'health/while-away');
  assert.equal(await published(f), 0, 'no status was built for the absent session');

  const back = mqttClient(t, f.tcpUrl, { password: 'alice-key', clientId: 'persistent', clean: false });
  back.on('connect', (connack) => sessionPresent.push(connack.sessionPresent));
  const got = collect(back);
  await connected(back);
  await publish(publisher, 'health/back-not-subscribed');
  assert.deepEqual(sessionPresent, [false, false], 'no session was kept');
  assert.deepEqual(got, [], 'nothing was queued, and the subscription was not restored');
  assert.equal(await published(f), 0);

  assert.deepEqual(await subackCodes(back, [ALICE_TOPIC]), [1]);
  await publish(publisher, 'health/subscribed-again');
  assert.deepEqual(got, [`${ALICE_TOPIC} health/subscribed-again`]);
  assert.equal(await published(f), 1);
});

// ---------------------------------------------------------------- the registry alone

function fakeClient(clean: boolean, closed = false): Client {
  return { clean, closed } as unknown as Client;
}

const granted = (topic: string, qos: number): Subscription => ({ topic, qos }) as Subscription;

test('registry: refused subscriptions and clients closed mid-SUBSCRIBE do not count; a clean client counts until it leaves', limit, () => {
  const events = new EventEmitter();
  const subscribers = new StatusSubscribers();
  subscribers.watch(events);
  events.emit('subscribe', [granted('a', 128)], fakeClient(true));
  events.emit('subscribe', [granted('b', 1)], fakeClient(true, true));
  assert.equal(subscribers.has('a'), false);
  assert.equal(subscribers.has('b'), false);

  const one = fakeClient(true);
  const two = fakeClient(true);
  events.emit('subscribe', [granted('c', 1), granted('d', 0)], one);
  events.emit('subscribe', [granted('c', 1)], two);
  events.emit('unsubscribe', ['c'], one);
  assert.equal(subscribers.has('c'), true, 'the other client is still subscribed');
  events.emit('clientDisconnect', two);
  assert.equal(subscribers.has('c'), false);
  assert.equal(subscribers.has('d'), true);
  events.emit('unsubscribe', ['d', 'never-subscribed'], one);
  assert.equal(subscribers.has('d'), false);
});

test('registry: a persistent session\'s topic counts for good (Aedes keeps and queues for it while it is away)', limit, () => {
  const events = new EventEmitter();
  const subscribers = new StatusSubscribers();
  subscribers.watch(events);
  const persistent = fakeClient(false);
  events.emit('subscribe', [granted('p', 1)], persistent);
  events.emit('clientDisconnect', persistent);
  assert.equal(subscribers.has('p'), true, 'after a disconnect');
  events.emit('unsubscribe', ['p'], persistent);
  assert.equal(subscribers.has('p'), true, 'erring towards publishing');
});
