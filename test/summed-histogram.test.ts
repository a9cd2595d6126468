import assert from 'node:assert/strict';
import { test } from 'node:test';
import client from 'prom-client';
import { SummedHistogram } from '../src/summed-histogram.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 1, 10];

function withoutExemplars<M extends { values: object[] }>(metrics: M[]): M[] {
  return metrics.map((m) => ({ ...m, values: m.values.map((v) => Object.fromEntries(Object.entries(v).filter(([key]) => key !== 'exemplar'))) }));
}

/** The same histogram twice, in registries of their own: prom-client's and ours. */
function pair(labelNames: readonly string[]): { theirs: client.Histogram<string>; ours: SummedHistogram<string>; theirRegistry: client.Registry; ourRegistry: client.Registry } {
  const theirRegistry = new client.Registry();
  const ourRegistry = new client.Registry();
  const config = { name: 'test_duration_seconds', help: 'test', labelNames, buckets: BUCKETS };
  return {
    theirs: new client.Histogram({ ...config, registers: [theirRegistry] }),
    ours: new SummedHistogram({ ...config, registers: [ourRegistry] }),
    theirRegistry,
    ourRegistry,
  };
}

test('a scrape shows exactly what prom-client\'s Histogram shows for the same observations', async () => {
  const { theirs, ours, theirRegistry, ourRegistry } = pair(['transport', 'stage']);
  // Bounds themselves (le is inclusive), between them, past the last one, zero and below.
  const values = [0, 0.005, 0.0051, 0.01, 0.3, 1, 10, 10.5, 1e9, -2, 0.024999, 0.025];
  const labelSets = [
    { transport: 'mqtt-ws', stage: 'accept' },
    { transport: 'http', stage: 'accept' },
    { transport: 'mqtt-ws', stage: 'process' },
  ];
  values.forEach((value, i) => {
    const labels = labelSets[i % labelSets.length]!;
    theirs.observe(labels, value);
    ours.observe(labels, value);
  });
  assert.equal(await ourRegistry.metrics(), await theirRegistry.metrics());
  // The same values as JSON too; prom-client adds an empty exemplar to each, which a histogram without exemplars does not need.
  assert.deepEqual(await ourRegistry.getMetricsAsJSON(), withoutExemplars(await theirRegistry.getMetricsAsJSON()));
  // More observations after a scrape are added to the same series.
  theirs.observe(labelSets[0]!, 0.07);
  ours.observe(labelSets[0]!, 0.07);
  const text = await ourRegistry.metrics();
  assert.equal(text, await theirRegistry.metrics());
  assert.match(text, /test_duration_seconds_count\{transport="mqtt-ws",stage="accept"\} 5/);
});

test('without labels, and after a reset, it still matches prom-client', async () => {
  const { theirs, ours, theirRegistry, ourRegistry } = pair([]);
  for (const v of [1, 2, 5, 40, 0.001]) {
    theirs.observe(v);
    ours.observe({}, v);
  }
  assert.equal(await ourRegistry.metrics(), await theirRegistry.metrics());
  theirRegistry.resetMetrics();
  ourRegistry.resetMetrics();
  assert.equal(await ourRegistry.metrics(), await theirRegistry.metrics());
  theirs.observe(3);
  ours.observe({}, 3);
  assert.equal(await ourRegistry.metrics(), await theirRegistry.metrics());
  assert.equal((await ours.get()).values.find((v) => v.metricName.endsWith('_sum'))?.value, 3);
});

test('the labels are copied, and only a finite number can be observed', async () => {
  const { ours } = pair(['transport', 'stage']);
  const labels = { transport: 'mqtt-ws', stage: 'accept' };
  ours.observe(labels, 1);
  labels.stage = 'process';
  ours.observe({ transport: 'mqtt-ws', stage: 'accept' }, 2);
  const counts = (await ours.get()).values.filter((v) => v.metricName.endsWith('_count'));
  assert.deepEqual(counts, [{ labels: { transport: 'mqtt-ws', stage: 'accept' }, value: 2, metricName: 'test_duration_seconds_count' }]);
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) assert.throws(() => ours.observe({ transport: 'http', stage: 'accept' }, bad), TypeError);
  assert.throws(() => new SummedHistogram({ name: 'bad', help: 'x', buckets: [1, 1], registers: [] }), RangeError);
});
