import assert from 'node:assert/strict';
import { test } from 'node:test';
import client from 'prom-client';
import { SummedCounter } from '../src/summed-counter.js';

function counterIn(registry: client.Registry): SummedCounter<'transport' | 'outcome'> {
  return new SummedCounter({ name: 'test_payloads_total', help: 'test', labelNames: ['transport', 'outcome'] as const, registers: [registry] });
}

/** The value of one series as the registry exposes it to a scrape. */
async function scraped(registry: client.Registry, labels: string): Promise<number | undefined> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`test_payloads_total{${labels}}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

test('increments reach a scrape, per label set, and are counted once however often it is read', async () => {
  const registry = new client.Registry();
  const counter = counterIn(registry);
  counter.inc({ transport: 'mqtt-ws', outcome: 'stored' });
  counter.inc({ transport: 'mqtt-ws', outcome: 'stored' }, 4);
  counter.inc({ transport: 'http', outcome: 'stored' }, 2);
  counter.inc({ transport: 'mqtt-ws', outcome: 'duplicate' });
  assert.equal(await scraped(registry, 'transport="mqtt-ws",outcome="stored"'), 5);
  assert.equal(await scraped(registry, 'transport="http",outcome="stored"'), 2);
  assert.equal(await scraped(registry, 'transport="mqtt-ws",outcome="duplicate"'), 1);
  // Read again with no increments in between: the sums were handed over once.
  assert.equal(await scraped(registry, 'transport="mqtt-ws",outcome="stored"'), 5);
  counter.inc({ transport: 'mqtt-ws', outcome: 'stored' }, 3);
  assert.equal(await scraped(registry, 'transport="mqtt-ws",outcome="stored"'), 8);
  const values = (await counter.get()).values;
  assert.equal(values.find((v) => v.labels.transport === 'http')?.value, 2);
});

test('the labels are copied: an object changed after the call does not move the counted series', async () => {
  const registry = new client.Registry();
  const counter = counterIn(registry);
  const labels = { transport: 'mqtt-ws', outcome: 'stored' };
  counter.inc(labels);
  labels.outcome = 'failed';
  counter.inc({ transport: 'mqtt-ws', outcome: 'stored' });
  assert.equal(await scraped(registry, 'transport="mqtt-ws",outcome="stored"'), 2);
  assert.equal(await scraped(registry, 'transport="mqtt-ws",outcome="failed"'), undefined);
});

test('a counter never goes down or by a non-finite amount', () => {
  const counter = counterIn(new client.Registry());
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => counter.inc({ transport: 'http', outcome: 'stored' }, bad), RangeError);
  }
});
