import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { jsonLimitRefusal, parseJsonBody, parseJsonBodyYielding } from '../src/ingest/json-body.js';
import { parseJsonInPieces } from '../src/ingest/json-pieces.js';
import { DEFAULT_JSON_LIMITS, findJsonLimitViolation } from '../src/ingest/json-limits.js';
import { count, startTestApp, waitFor, type TestApp } from './helpers/app.js';
import { allFixtures, readFixture } from './helpers/fixtures.js';

const limits = { maxDepth: 4, maxStringBytes: 8 };
const scan = (text: string) => findJsonLimitViolation(Buffer.from(text, 'utf8'), limits);

test('depth: at the limit passes, one deeper is refused where it crosses', () => {
  assert.equal(scan('[[[[1]]]]'), null);
  assert.equal(scan('{"a":{"b":[{"c":1}]}}'), null);
  assert.deepEqual(scan('[[[[[1]]]]]'), { code: 'SS_JSON_TOO_DEEP', message: 'Objects and arrays are nested deeper than the limit of 4 levels', byteOffset: 4 });
  // Siblings do not add up: depth goes back down after each closing bracket.
  assert.equal(scan(`[${'[[[1]]],'.repeat(1000)}[]]`), null);
});

test('brackets and quotes inside strings are text, not structure', () => {
  assert.equal(scan('["[[[[[", "{{{{{"]'), null);
  assert.equal(scan('["\\"[[[[[", 1]'), null, 'an escaped quote does not end the string');
  assert.equal(scan('["\\\\", [[[1]]]]'), null, 'an escaped backslash ends before the quote');
  assert.equal(scan('["\\\\", [[[[1]]]]]')?.code, 'SS_JSON_TOO_DEEP', 'structure after an escaped backslash is still counted');
});

test('string length: bytes as sent, keys too, escapes included', () => {
  assert.equal(scan('{"12345678":"abcdefgh"}'), null);
  assert.deepEqual(scan('{"k":"abcdefghi"}'), { code: 'SS_JSON_STRING_TOO_LONG', message: 'A string is longer than the limit of 8 bytes', byteOffset: 5 });
  assert.equal(scan('{"123456789":1}')?.code, 'SS_JSON_STRING_TOO_LONG');
  assert.equal(scan('["\\u00e9\\u00e9"]')?.code, 'SS_JSON_STRING_TOO_LONG', 'two escapes are 12 bytes as sent');
  assert.equal(scan('["éééé"]'), null, '4 two-byte characters are 8 bytes');
  assert.equal(scan('["ééééé"]')?.code, 'SS_JSON_STRING_TOO_LONG');
  assert.equal(scan('["abcdefghijklmnop')?.code, 'SS_JSON_STRING_TOO_LONG', 'an unterminated string counts to the end');
});

test('a short body with few brackets is within the limits; one with more is walked and judged as before', () => {
  // Bodies no longer than maxStringBytes, so only the count of '{' and '[' decides whether the walk runs.
  const short = { maxDepth: 4, maxStringBytes: 64 };
  const check = (text: string) => findJsonLimitViolation(Buffer.from(text, 'utf8'), short);
  assert.equal(check('[[[[1]]]]'), null, 'four brackets cannot nest five deep');
  assert.deepEqual(check('[[[[[1]]]]]'), { code: 'SS_JSON_TOO_DEEP', message: 'Objects and arrays are nested deeper than the limit of 4 levels', byteOffset: 4 });
  assert.deepEqual(check('{"a":{"b":{"c":{"d":{}}}}}')?.byteOffset, 20, 'five objects, the fifth one level too deep');
  assert.equal(check('{"a":[1],"b":[2],"c":[3],"d":[4]}'), null, 'five brackets, nested two deep');
  assert.equal(check('["[[[[[", 1]'), null, 'brackets in a string counted, then the walk clears them');
  assert.equal(check(`["${'x'.repeat(65)}"]`)?.code, 'SS_JSON_STRING_TOO_LONG', 'a body longer than maxStringBytes is walked');
  assert.equal(check(`["${'x'.repeat(62)}"]`), null);
});

test('10,000 and 1,000,000 levels are refused at the limit, without a stack overflow', () => {
  for (const levels of [10_000, 1_000_000]) {
    const body = Buffer.from(`${'['.repeat(levels)}${']'.repeat(levels)}`);
    const parsed = parseJsonBody(body, DEFAULT_JSON_LIMITS);
    assert.equal(parsed.ok, false);
    assert.ok(!parsed.ok && parsed.code === 'SS_JSON_TOO_DEEP' && parsed.position === DEFAULT_JSON_LIMITS.maxDepth);
  }
});

test('parseJsonBody reports the position as a text offset (byte order mark and multi-byte text before it)', () => {
  const parsed = parseJsonBody(Buffer.from(`\ufeff{"é":"${'x'.repeat(9)}"}`, 'utf8'), limits);
  assert.deepEqual(parsed, { ok: false, code: 'SS_JSON_STRING_TOO_LONG', message: 'A string is longer than the limit of 8 bytes', position: 5 });
  const invalid = parseJsonBody(Buffer.from('{"a":'), limits);
  assert.equal(!invalid.ok && invalid.code, 'SS_INVALID_JSON');
  // Without limits (payloads already stored), only JSON.parse decides.
  assert.equal(parseJsonBody(Buffer.from('[[[[[[1]]]]]]')).ok, true);
});

test('the piecewise parse finds the first limit crossed where the byte scan does, whatever the piece size', () => {
  const items = Array.from({ length: 300 }, (_, i) => JSON.stringify({ d: `2025-01-${i % 28}`, q: i, s: i % 3 ? 'a]"' : 'b\\' }));
  const list = `[${items.join(',')}]`;
  const withElement = (at: number, element: string) => `[${[...items.slice(0, at), element, ...items.slice(at)].join(',')}]`;
  const cases = [
    '[[[[1]]]]',
    '[[[[[1]]]]]',
    '{"a":{"b":[{"c":[1]}]}}',
    '{"k":"abcdefghi"}',
    '{"123456789":1}',
    '["\\u00e9\\u00e9"]',
    '["\\"[[[[[", 1]',
    '["\\\\", [[[[1]]]]]',
    `{"data":${list}}`,
    `{"data":${withElement(40, '[[[[1]]]]')}}`,
    `{"data":${withElement(120, '"abcdefghij"')}}`,
    `{"data":${list},"abcdefghijk":[[[[[]]]]]}`,
  ];
  for (const text of cases) {
    const body = Buffer.from(text);
    JSON.parse(text); // every case is well-formed: only the limits can refuse it
    const expected = findJsonLimitViolation(body, limits);
    for (const pieceBytes of [1, 5, 64, 1_000, 1 << 20]) {
      const pieces = parseJsonInPieces(body, 0, pieceBytes, limits);
      assert.deepEqual(pieces, expected ? { overLimit: expected } : { value: JSON.parse(text) }, `${text.slice(0, 60)} in pieces of ${pieceBytes}`);
    }
  }
});

test('a large body over the limits is refused by parseJsonBody as by the byte scan, and a broken one is checked too', async () => {
  const items = Array.from({ length: 130_000 }, (_, i) => ({ date: '2025-01-01 00:00:00 +0100', qty: i, source: 'Anna\u2019s iPhone' }));
  const text = JSON.stringify({ data: { metrics: [{ name: 'step_count', data: items }] } });
  const at = text.length - 1_000;
  const cut = text.lastIndexOf('{', at);
  for (const body of [
    Buffer.from(`${text.slice(0, cut)}${'['.repeat(80)}${']'.repeat(80)},${text.slice(cut)}`),
    Buffer.from(`${text.slice(0, cut)}"${'é'.repeat(600_000)}",${text.slice(cut)}`),
    // Not well-formed after the limit is crossed: the whole-body path checks the limits first.
    Buffer.from(`${text.slice(0, cut)}${'['.repeat(80)}}${text.slice(cut)}`),
  ]) {
    assert.ok(body.length > 8 * 1024 * 1024);
    const expected = jsonLimitRefusal(body, DEFAULT_JSON_LIMITS);
    assert.ok(expected);
    assert.deepEqual(parseJsonBody(body, DEFAULT_JSON_LIMITS), expected);
    assert.deepEqual(await parseJsonBodyYielding(body, DEFAULT_JSON_LIMITS), expected);
  }
  const fine = Buffer.from(text);
  assert.deepEqual(parseJsonBody(fine, DEFAULT_JSON_LIMITS), { ok: true, value: JSON.parse(text) });
});

test('every fixture is within the default limits', () => {
  for (const fixture of allFixtures()) assert.equal(findJsonLimitViolation(readFixture(fixture), DEFAULT_JSON_LIMITS), null, fixture);
});

describe('JSON limits on both transports', () => {
  let t: TestApp;
  let key: string;
  before(async () => {
    t = await startTestApp({ JSON_MAX_DEPTH: '10', JSON_MAX_STRING_BYTES: '100' });
    key = await t.createKey('deep');
  });
  after(async () => t?.close());

  const deep = `{"data":{"metrics":[{"name":"step_count","units":"count","data":[{"date":"2025-04-01 12:00:00 +0200","qty":1,"source":"Watch","m":${'['.repeat(20)}${']'.repeat(20)}}]}]}}`;
  const longString = JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: [{ date: '2025-04-01 12:00:00 +0200', qty: 1, source: 'W'.repeat(101) }] }] } });

  test('REST: 400 with the code and where; nothing stored', async () => {
    for (const [body, code] of [
      [deep, 'SS_JSON_TOO_DEEP'],
      [`\n${longString}`, 'SS_JSON_STRING_TOO_LONG'],
    ] as const) {
      const res = await fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
      assert.equal(res.status, 400);
      const answer = (await res.json()) as { error: { code: string; position: number; line: number; column: number } };
      assert.equal(answer.error.code, code);
      assert.equal(answer.error.line, code === 'SS_JSON_TOO_DEEP' ? 1 : 2);
      assert.ok(answer.error.position > 0 && answer.error.column > 0);
    }
    assert.equal(await count(t.sql, 'raw_ingestions'), 0);
  });

  test('MQTT: acknowledged (retrying cannot help), not stored, counted', async () => {
    const client = await mqtt.connectAsync(t.tcpUrl, { username: 'deep', password: key, reconnectPeriod: 0 });
    try {
      await client.publishAsync('health/deep', deep, { qos: 1 });
      await client.publishAsync('health/deep', longString, { qos: 1 });
    } finally {
      await client.endAsync();
    }
    assert.equal(await count(t.sql, 'raw_ingestions'), 0);
    const metrics = await (await fetch(`${t.httpUrl}/metrics`)).text();
    assert.match(metrics, /self_sensored_ingest_payloads_total\{transport="mqtt-tcp",outcome="json_limit"\} 2/);
    // A payload within the limits still goes through on the same connection settings.
    const ok = await fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: longString.replace('W'.repeat(101), 'Watch') });
    assert.equal(ok.status, 200);
    await waitFor(async () => (await count(t.sql, 'raw_ingestions')) === 1, 5_000, 'stored');
  });
});
