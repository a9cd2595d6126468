import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJsonBody } from '../src/ingest/json-body.js';
import { jsonErrorPosition } from '../src/ingest/json-error-position.js';

test('points at the first character that breaks the JSON', () => {
  const cases: Array<[string, number]> = [
    ['{"data": {"metrics": [}', 22],
    ['{"a":1,}', 7],
    ['{"a" 1}', 5],
    ['[1, 2', 5],
    ['{"a": tru}', 6],
    ['{"a": "x\u0001"}', 8],
    ['{"a": "\\q"}', 7],
    ['[1] x', 4],
    ['', 0],
    ['{"a": 01}', 7],
  ];
  for (const [text, position] of cases) {
    assert.throws(() => JSON.parse(text));
    assert.equal(jsonErrorPosition(text), position, text);
  }
});

test('10,000 levels of nesting do not overflow the stack', () => {
  const deep = '['.repeat(10_000) + '}';
  assert.equal(jsonErrorPosition(deep), 10_000);
});

test('parseJsonBody strips a byte order mark and reports the position', () => {
  assert.deepEqual(parseJsonBody(Buffer.from('\ufeff{"data":{}}')), { ok: true, value: { data: {} } });
  const bad = parseJsonBody(Buffer.from('{"data": [1,,2]}'));
  assert.equal(bad.ok, false);
  assert.equal(!bad.ok && bad.position, 12);
});
