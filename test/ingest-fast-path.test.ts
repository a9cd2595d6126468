import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { defaultLimits } from '../src/hae/limits.js';
import { parseJsonBody } from '../src/ingest/json-body.js';
import { parseJsonInPieces, parseJsonInPiecesYielding } from '../src/ingest/json-pieces.js';
import { ConstraintViolationError, PayloadProcessor } from '../src/ingest/processor.js';
import { createLogger } from '../src/log.js';
import { BinaryArrayWriter } from '../src/store/binary-array.js';
import { PartitionManager } from '../src/store/partitions.js';
import { createMigratedDatabase, type TestDatabase } from './helpers/database.js';

const log = createLogger('silent');
let db: TestDatabase;
let pool: pg.Pool;
let partitions: PartitionManager;

before(async () => {
  ({ db, pool } = await createMigratedDatabase(4));
  partitions = new PartitionManager(pool, log);
});
after(async () => {
  await pool?.end();
  await db?.drop();
});

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** HAE's `YYYY-MM-DD HH:MM:SS ±HHMM` for an instant seen with an offset (fractional ms are not in the format). */
function haeDate(epochMs: number, offsetMinutes: number): string {
  const d = new Date(epochMs + offsetMinutes * 60_000);
  const abs = Math.abs(offsetMinutes);
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ` +
    `${offsetMinutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`
  );
}

describe('columns travel as binary arrays', () => {
  test('instants, offsets, local dates, numbers, text and jsonb come back exactly as sent', async () => {
    const processor = new PayloadProcessor({ pool, partitions, chunkRows: 1_000, limits: defaultLimits });
    // ISO forms carry milliseconds: the edges of the stored range and odd milliseconds must survive.
    const instants = ['1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.001Z', '1999-12-31T23:59:59.999Z', '2000-01-01T00:00:00.000Z', '2024-02-29T12:34:56.789Z', '2025-07-19T03:14:08.123Z'];
    const texts = ['plain', 'quote " and backslash \\', 'comma, {brace} NULL', '', 'Anna\u2019s Apple\u00a0Watch \u{1F600}', 'NULL'];
    const data = instants.map((iso, i) => ({ date: iso, qty: i * 1.1 + 1e-9, source: texts[i], mealTime: `m"${i}\\` }));
    const quantity = { name: 'blood_glucose', units: 'mg/dL', data };
    const heart = { name: 'heart_rate', units: 'count/min', data: [{ date: '2024-03-10 01:59:59 -0800', Avg: 61.25, source: 'W' }, { date: '2024-03-10 03:00:00 -0700', Min: 50, Max: 190.5 }] };
    const { result } = await processor.process('1', '11', { data: { metrics: [quantity, heart] } }, { mayContainNul: false });
    assert.equal(result.counts.quantity?.inserted, instants.length, JSON.stringify(result));
    const { rows } = await pool.query<{ ms: string; off: number; day: string; qty: number; source: string; extra: unknown }>(
      `SELECT (extract(epoch FROM start_time) * 1000)::text AS ms, utc_offset_minutes AS off, local_date::text AS day, qty, source, extra
         FROM quantity_samples WHERE user_id = 11 ORDER BY start_time`,
    );
    assert.deepEqual(
      rows.map((r) => Number(r.ms)),
      instants.map((iso) => Date.parse(iso)),
    );
    rows.forEach((r, i) => {
      assert.equal(r.off, 0);
      assert.equal(r.day, instants[i]!.slice(0, 10));
      assert.equal(r.qty, data[i]!.qty);
      assert.equal(r.source, texts[i]);
      assert.deepEqual(r.extra, { mealTime: `m"${i}\\` });
    });
    const hr = await pool.query<{ ms: string; off: number; day: string; min: number | null; avg: number | null; max: number | null; source: string }>(
      `SELECT (extract(epoch FROM start_time) * 1000)::text AS ms, utc_offset_minutes AS off, local_date::text AS day, min_bpm AS min, avg_bpm AS avg, max_bpm AS max, source
         FROM heart_rate_samples WHERE user_id = 11 ORDER BY start_time`,
    );
    assert.deepEqual(hr.rows.map((r) => ({ ...r, ms: Number(r.ms) })), [
      { ms: Date.parse('2024-03-10T09:59:59Z'), off: -480, day: '2024-03-10', min: null, avg: 61.25, max: null, source: 'W' },
      { ms: Date.parse('2024-03-10T10:00:00Z'), off: -420, day: '2024-03-10', min: 50, avg: null, max: 190.5, source: '' },
    ]);
  });

  test('int8, uuid and bytea elements (the raw store\'s columns) come back exactly as sent, NULLs included', async () => {
    // Numbers and strings, both sides of each 32-bit half and of 2^53 (past it a string goes through BigInt).
    const int8Numbers = [0, 1, -1, 4_294_967_295, 4_294_967_296, -4_294_967_296, -4_294_967_297, 9_007_199_254_740_991, -9_007_199_254_740_991];
    const int8s = ['0', '1', '-1', '4294967296', '-4294967297', '9007199254740991', '9007199254740993', '-9223372036854775808', '9223372036854775807', '007', ...int8Numbers];
    // Repeats and returns: the writer remembers the last uuid's bytes.
    const uuids = ['00000000-0000-0000-0000-000000000000', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '00000000-0000-0000-0000-000000000000'];
    const bytes = [Buffer.alloc(0), Buffer.from([0, 0x5c, 0x27, 0xff]), Buffer.from('{"a":"\u0000"}'), Buffer.alloc(70_000, 0xab)];
    const int8 = new BinaryArrayWriter('int8', 8);
    for (const v of [...int8s, null]) int8.push(v);
    const uuid = new BinaryArrayWriter('uuid', 8);
    for (const v of [...uuids, null]) uuid.push(v);
    const bytea = new BinaryArrayWriter('bytea', 8);
    for (const v of [...bytes, null]) bytea.push(v);
    const { rows } = await pool.query<{ i: string[]; u: Array<string | null>; b: Array<Buffer | null> }>(
      'SELECT array(SELECT x::text FROM unnest($1::int8[]) x) AS i, $2::uuid[]::text[] AS u, $3::bytea[] AS b',
      [int8.finish(), uuid.finish(), bytea.finish()],
    );
    assert.deepEqual(rows[0]!.i, [...int8s.map((v) => String(BigInt(v))), null]);
    assert.deepEqual(rows[0]!.u, [...uuids.map((u) => u.toLowerCase()), null]);
    assert.deepEqual(rows[0]!.b, [...bytes, null]);
    assert.throws(() => new BinaryArrayWriter('uuid').push('not-a-uuid'), /not a uuid/);
    // Forms Number reads but BigInt refuses stay refused.
    for (const bad of ['1e3', '12abc']) assert.throws(() => new BinaryArrayWriter('int8').push(bad), SyntaxError);
  });

  test('int2, int4, float8 and timestamptz elements come back exactly as sent; an integer the type cannot hold is refused, not wrapped', async () => {
    const int2s = [0, 1, -1, 255, 256, -32_768, 32_767];
    const int4s = [0, 1, -1, 65_536, -2_147_483_648, 2_147_483_647];
    const float8s = [0, -0.5, 1e-300, 123.456, -1.7976931348623157e308, Number.MIN_VALUE];
    // Both sides of 2000-01-01 (PostgreSQL's epoch), and a value whose microseconds need the high 32 bits.
    const times = [Date.UTC(2000, 0, 1), Date.UTC(1999, 11, 31, 23, 59, 59, 999), Date.UTC(2026, 0, 1, 1, 5, 0, 123), Date.UTC(1970, 0, 1)];
    const int2 = new BinaryArrayWriter('int2', 8);
    for (const v of [...int2s, null]) int2.push(v);
    const int4 = new BinaryArrayWriter('int4', 8);
    for (const v of [...int4s, null]) int4.push(v);
    const float8 = new BinaryArrayWriter('float8', 8);
    for (const v of [...float8s, null]) float8.push(v);
    const timestamptz = new BinaryArrayWriter('timestamptz', 8);
    for (const v of [...times, null]) timestamptz.push(v);
    const { rows } = await pool.query<{ s: Array<number | null>; i: Array<number | null>; f: Array<number | null>; t: Array<string | null> }>(
      `SELECT $1::int2[] AS s, $2::int4[] AS i, $3::float8[] AS f,
              array(SELECT (extract(epoch FROM x) * 1000)::bigint::text FROM unnest($4::timestamptz[]) WITH ORDINALITY AS u(x, n) ORDER BY n) AS t`,
      [int2.finish(), int4.finish(), float8.finish(), timestamptz.finish()],
    );
    assert.deepEqual(rows[0]!.s, [...int2s, null]);
    assert.deepEqual(rows[0]!.i, [...int4s, null]);
    assert.deepEqual(rows[0]!.f, [...float8s, null]);
    assert.deepEqual(rows[0]!.t, [...times.map(String), null]);
    for (const bad of [32_768, -32_769, Number.NaN]) assert.throws(() => new BinaryArrayWriter('int2').push(bad), RangeError);
    for (const bad of [2_147_483_648, -2_147_483_649, Number.NaN]) assert.throws(() => new BinaryArrayWriter('int4').push(bad), RangeError);
  });

  test('jsonb elements: empty lists, objects and text come back as sent', async () => {
    const values = [[], {}, [1, 'a'], { k: [] }, '[]', null];
    const jsonb = new BinaryArrayWriter('jsonb', 8);
    for (const v of values) jsonb.push(v);
    const { rows } = await pool.query<{ j: unknown[] }>('SELECT $1::jsonb[] AS j', [jsonb.finish()]);
    assert.deepEqual(rows[0]!.j, [[], {}, [1, 'a'], { k: [] }, [], null]);
  });

  test('repeated text and jsonb values (copied from the element before, not encoded again) come back as sent', async () => {
    // Repeats around NULLs and an empty string, multi-byte text, a repeat that makes the buffer grow.
    const long = `Watch\u2019s ${'x'.repeat(300)}`;
    const texts = ['count/min', 'count/min', null, 'count/min', '', '', 'Anna\u2019s Apple\u00a0Watch', 'Anna\u2019s Apple\u00a0Watch', long, long, long, null, long, 'count/min'];
    const text = new BinaryArrayWriter('text', 24);
    for (const v of texts) text.push(v);
    const counts = { heart_rate: { received: 3, inserted: 3 } };
    const jsons = [counts, counts, '[]', '[]', null, [], { ...counts }, counts];
    const jsonb = new BinaryArrayWriter('jsonb', 8);
    for (const v of jsons) jsonb.push(v);
    const { rows } = await pool.query<{ t: Array<string | null>; j: unknown[] }>('SELECT $1::text[] AS t, $2::jsonb[] AS j', [text.finish(), jsonb.finish()]);
    assert.deepEqual(rows[0]!.t, texts);
    assert.deepEqual(rows[0]!.j, [counts, counts, [], [], null, [], counts, counts]);
  });

  test('millisecond epochs from 1970 to 2100 are exact timestamptz values (checked by the server)', async () => {
    const times = new BinaryArrayWriter('timestamptz');
    const expected = new BinaryArrayWriter('float8');
    let ms = 0;
    for (let i = 0; i < 200_000; i++) {
      times.push(ms);
      expected.push(ms);
      ms += 20_512_217 + (i % 1_000); // odd steps: every millisecond digit and both int64 halves vary
    }
    assert.ok(ms > Date.UTC(2100, 0, 1));
    const { rows } = await pool.query<{ n: number; bad: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE extract(epoch FROM t) * 1000 <> ms)::int AS bad FROM unnest($1::timestamptz[], $2::float8[]) AS u(t, ms)`,
      [times.finish(), expected.finish()],
    );
    assert.deepEqual(rows[0], { n: 200_000, bad: 0 });
  });
});

describe('a payload larger than one chunk', () => {
  const points = 2_500;
  const start = Date.UTC(2025, 0, 1);
  const payload = (qtyOf: (i: number) => number) => ({
    data: {
      metrics: [
        {
          name: 'step_count',
          units: 'count',
          data: Array.from({ length: points }, (_, i) => ({ date: haeDate(start + i * 60_000, i < 1_000 ? -300 : 120), qty: qtyOf(i), source: i % 2 ? 'Phone' : 'Watch' })),
        },
      ],
    },
  });
  const written = async (userId: string) =>
    (await pool.query<{ n: number; latest: string; total: number }>(`SELECT count(*)::int AS n, max(ingestion_id)::text AS latest, sum(qty)::float8 AS total FROM quantity_samples WHERE user_id = $1`, [userId])).rows[0]!;

  test('is written by two connections, counted exactly, and the latest export still wins', async () => {
    const processor = new PayloadProcessor({ pool, partitions, chunkRows: 100, limits: defaultLimits, writeConnections: 2 });
    const first = await processor.process('10', '21', payload((i) => i));
    assert.deepEqual(first.result.counts.quantity, { received: points, inserted: points, updated: 0, unchanged: 0, rejected: 0 });
    assert.equal((await written('21')).n, points);

    // A newer export changes every third value; the rest are unchanged.
    const changed = (i: number) => (i % 3 === 0 ? i + 0.5 : i);
    const newer = await processor.process('12', '21', payload(changed));
    const updated = Math.ceil(points / 3);
    assert.deepEqual(newer.result.counts.quantity, { received: points, inserted: 0, updated, unchanged: points - updated, rejected: 0 });

    // Re-processing the older export puts nothing back.
    const older = await processor.process('10', '21', payload((i) => i));
    assert.deepEqual(older.result.counts.quantity, { received: points, inserted: 0, updated: 0, unchanged: points, rejected: 0 });
    const after = await written('21');
    assert.equal(after.n, points);
    assert.equal(after.total, Array.from({ length: points }, (_, i) => changed(i)).reduce((a, b) => a + b, 0));
  });

  test('new keys first, stored keys later (a chunk holds both): every row is counted and written once', async () => {
    const processor = new PayloadProcessor({ pool, partitions, chunkRows: 100, limits: defaultLimits, writeConnections: 2 });
    // The older export holds the points from 1,550 on, in the middle of a 100-row chunk of the newer one.
    const stored = 1_550;
    const older = payload((i) => i);
    older.data.metrics[0]!.data = older.data.metrics[0]!.data.slice(stored);
    const first = await processor.process('30', '23', older);
    assert.equal(first.result.counts.quantity!.inserted, points - stored);

    const changed = (i: number) => (i % 4 === 0 ? i + 0.25 : i);
    const newer = await processor.process('31', '23', payload(changed));
    const updated = Array.from({ length: points - stored }, (_, k) => stored + k).filter((i) => i % 4 === 0).length;
    assert.deepEqual(newer.result.counts.quantity, { received: points, inserted: stored, updated, unchanged: points - stored - updated, rejected: 0 });
    const after = await written('23');
    assert.equal(after.n, points);
    assert.equal(after.total, Array.from({ length: points }, (_, i) => changed(i)).reduce((a, b) => a + b, 0));
    const byId = await pool.query<{ id: string; n: number }>(
      'SELECT ingestion_id::text AS id, count(*)::int AS n FROM quantity_samples WHERE user_id = 23 GROUP BY 1 ORDER BY 1',
    );
    assert.deepEqual(byId.rows, [
      { id: '30', n: points - stored - updated },
      { id: '31', n: stored + updated },
    ]);
    const revisions = await pool.query<{ revision: number; n: number }>('SELECT revision, count(*)::int AS n FROM quantity_samples WHERE user_id = 23 GROUP BY 1 ORDER BY 1');
    assert.deepEqual(revisions.rows, [
      { revision: 1, n: points - updated },
      { revision: 2, n: updated },
    ]);
  });

  test('fails as a whole when a late chunk is refused: no connection keeps its rows', async () => {
    const processor = new PayloadProcessor({ pool, partitions, chunkRows: 100, limits: defaultLimits, writeConnections: 2 });
    await pool.query(`CREATE FUNCTION test_refuse_late() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.user_id = 22 AND NEW.qty = ${points - 7} THEN RAISE EXCEPTION USING ERRCODE = '23514', MESSAGE = 'late row refused'; END IF;
        RETURN NEW;
      END $$`);
    await pool.query('CREATE TRIGGER test_refuse_late BEFORE INSERT ON quantity_samples FOR EACH ROW EXECUTE FUNCTION test_refuse_late()');
    try {
      await assert.rejects(processor.process('13', '22', payload((i) => i)), (err: unknown) => err instanceof ConstraintViolationError);
      assert.equal((await written('22')).n, 0);
    } finally {
      await pool.query('DROP TRIGGER test_refuse_late ON quantity_samples');
    }
  });
});

describe('duplicate keys inside one payload', () => {
  const day = (i: number, offset = '+0000') => `2025-02-01 ${pad(Math.floor(i / 60))}:${pad(i % 60)}:00 ${offset}`;

  test('collapse to the last one, whether or not the points are in time order', async () => {
    const processor = new PayloadProcessor({ pool, partitions, chunkRows: 50, limits: defaultLimits });
    const first = Array.from({ length: 300 }, (_, i) => ({ date: day(i), qty: i, source: 'P' }));
    const again = Array.from({ length: 300 }, (_, i) => ({ date: day(i), qty: i + 1_000, source: 'P' }));
    // The same metric twice (sorted runs), and heart rates from two watches at the same minutes.
    const heart = Array.from({ length: 200 }, (_, i) => ({ date: day(i >> 1), Avg: 60 + i, source: i % 2 ? 'A' : 'B' }));
    heart.push({ date: day(3), Avg: 150, source: 'A' }, { date: day(65, '+0100'), Avg: 151, source: 'B' });
    const { result } = await processor.process('30', '31', {
      data: {
        metrics: [
          { name: 'step_count', units: 'count', data: first },
          { name: 'active_energy', units: 'kcal', data: first },
          { name: 'step_count', units: 'count', data: again },
          { name: 'heart_rate', units: 'count/min', data: heart },
        ],
      },
    });
    assert.deepEqual(result.counts.quantity, { received: 900, inserted: 600, updated: 0, unchanged: 300, rejected: 0 });
    assert.deepEqual(result.counts.heart_rate, { received: 202, inserted: 200, updated: 0, unchanged: 2, rejected: 0 });
    const steps = await pool.query<{ total: number }>(`SELECT sum(qty)::float8 AS total FROM quantity_samples WHERE user_id = 31 AND metric = 'step_count'`);
    assert.equal(steps.rows[0]!.total, (299 * 300) / 2 + 300 * 1_000);
    const replaced = await pool.query<{ source: string; avg: number }>(
      `SELECT source, avg_bpm AS avg FROM heart_rate_samples
        WHERE user_id = 31 AND (start_time, source) IN (('2025-02-01 00:03:00+00', 'A'), ('2025-02-01 00:05:00+00', 'B')) ORDER BY source`,
    );
    assert.deepEqual(replaced.rows, [{ source: 'A', avg: 150 }, { source: 'B', avg: 151 }]);
  });
});

describe('large bodies are parsed in pieces', () => {
  const tricky = {
    data: {
      metrics: [
        { name: 'heart_rate', data: Array.from({ length: 3_000 }, (_, i) => ({ date: `2025-01-01 00:00:00 +0000`, Avg: i + 0.25, source: i % 2 ? 'a"b\\c' : 'Anna\u2019s \u{1F600}' })) },
        { name: 'x', units: null, data: [[1, [2, [3]]], {}, [], '', true, false, null, -1.5e-7, 'π'] },
      ],
      empty: { a: [], b: {} },
    },
    dup: 1,
  };

  test('the value equals JSON.parse, whatever the piece size', () => {
    const text = ` \n${JSON.stringify(tricky, null, 1)}\t`.replace('"dup": 1', '"dup": 0, "dup": 1').replace('"empty":', '"__proto__": {"polluted": true}, "empty":');
    const body = Buffer.from(text);
    const expected: unknown = JSON.parse(text);
    for (const pieceBytes of [1, 7, 64, 4096, 1 << 20]) {
      const parsed = parseJsonInPieces(body, 0, pieceBytes);
      assert.ok(parsed && 'value' in parsed, `piece size ${pieceBytes}`);
      assert.deepEqual(parsed.value, expected);
      const data = (parsed.value as { data: object }).data;
      assert.ok(Object.hasOwn(data, '__proto__'), '__proto__ stays an own key');
      assert.equal(Object.getPrototypeOf(data), Object.prototype);
    }
  });

  test('pieces decoded as Latin-1 give JSON.parse\'s value: UTF-8 text, invalid bytes, escapes, keys (order included)', () => {
    const raw = (text: string): Buffer => Buffer.from(text, 'latin1');
    // Each string below is written byte by byte (Latin-1 = the bytes); JSON.parse gets them as UTF-8.
    const member = raw(
      '{"k\xC3\xA9y":"caf\xC3\xA9","\xFF":1,"\xFE":2,"plain":"x","a":"\xC3\\"x","b":"x\\n\xA9",' +
        '"__proto__":{"\xC3\xA9":["\xE2\x80\x99",{"\xF0\x9F\x98\x80":"\xF0\x9F\x98"}]},' +
        '"arr":["\xC3","\xC3\xA9",1,null,true,{"x":"\xE2\x80"},[["\xC2\xB5"]]]}',
    );
    // `\u00e9` and a raw é look the same once decoded as Latin-1: stretches with `\u` are decoded as UTF-8.
    const escaped = raw('{"c":"\\u00e9 = \xC3\xA9","\\u00fc\xC3\xBC":"both"}');
    const items = Array.from({ length: 40 }, (_, i) => raw(i % 3 === 0 ? `{"source":"Anna\xE2\x80\x99s","i":${i}}` : i % 3 === 1 ? `"\\u2019 ${i}"` : `{"n":${i}}`));
    const body = Buffer.concat([raw('{"m":'), member, raw(',"u":'), escaped, raw(',"items":['), Buffer.concat(items.flatMap((b, i) => (i ? [raw(','), b] : [b]))), raw('],"tail":"\xC3\xA9"}')]);
    const expected: unknown = JSON.parse(body.toString('utf8'));
    for (const pieceBytes of [1, 7, 64, 300, 4096, 1 << 20]) {
      const parsed = parseJsonInPieces(body, 0, pieceBytes);
      assert.ok(parsed && 'value' in parsed, `piece size ${pieceBytes}`);
      assert.deepEqual(parsed.value, expected, `piece size ${pieceBytes}`);
      // Key order and the place of a key given twice (both invalid bytes become U+FFFD) are JSON.parse's.
      assert.equal(JSON.stringify(parsed.value), JSON.stringify(expected), `piece size ${pieceBytes}`);
      const m = (parsed.value as { m: object }).m;
      assert.ok(Object.hasOwn(m, '__proto__'), '__proto__ stays an own key');
      assert.equal(Object.getPrototypeOf(m), Object.prototype);
    }
  });

  test('parsed while the event loop runs: the same value, with turns of the loop between pieces', async () => {
    const text = JSON.stringify(tricky);
    const body = Buffer.from(text);
    for (const pieceBytes of [7, 4096]) {
      let turns = 0;
      const ticker = setInterval(() => turns++, 0);
      const immediate = (): void => {
        turns++;
        if (parsing) setImmediate(immediate);
      };
      let parsing = true;
      setImmediate(immediate);
      const parsed = await parseJsonInPiecesYielding(body, 0, pieceBytes);
      parsing = false;
      clearInterval(ticker);
      assert.ok(parsed && 'value' in parsed);
      assert.deepEqual(parsed.value, JSON.parse(text));
      assert.ok(turns > 3, `piece size ${pieceBytes}: ${turns} turns of the loop`);
    }
    assert.equal(await parseJsonInPiecesYielding(Buffer.from('[1,]'), 0, 2), undefined);
  });

  test('anything that is not one well-formed JSON value is left to JSON.parse', () => {
    for (const bad of ['[1,]', '[1 2]', '{"a" 1}', '{"a":1,}', '[1', '{"a":1}}', '[1]x', '{a:1}', '[01]', '[1,,2]', '{"a":[1}', '', '[', '["a]', '{"a":1 "b":2}']) {
      assert.equal(parseJsonInPieces(Buffer.from(bad), 0, 2), undefined, bad);
    }
  });

  test('a body over the threshold parses like JSON.parse, and a broken one still gets its position', () => {
    const items = Array.from({ length: 120_000 }, (_, i) => ({ date: `2025-01-01 00:00:00 +0100`, qty: i, source: 'Anna\u2019s iPhone' }));
    const text = JSON.stringify({ data: { metrics: [{ name: 'step_count', data: items }] } });
    assert.ok(text.length > 8 * 1024 * 1024);
    const good = parseJsonBody(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]));
    assert.ok(good.ok);
    assert.deepEqual(good.value, JSON.parse(text));
    const cut = text.lastIndexOf('"qty":') + 6;
    const broken = parseJsonBody(Buffer.from(`${text.slice(0, cut)}:${text.slice(cut)}`));
    assert.equal(broken.ok, false);
    assert.ok(!broken.ok && broken.position !== null && Math.abs(broken.position - cut) < 50, JSON.stringify(!broken.ok && broken.position));
  });
});

test('raw payloads are compressed with lz4 where the server has it', async () => {
  const { rows } = await pool.query<{ lz4: boolean; compression: string }>(
    `SELECT 'lz4' = ANY (enumvals) AS lz4, (SELECT attcompression::text FROM pg_attribute WHERE attrelid = 'raw_ingestions'::regclass AND attname = 'payload') AS compression
       FROM pg_settings WHERE name = 'default_toast_compression'`,
  );
  assert.equal(rows[0]!.compression, rows[0]!.lz4 ? 'l' : '');
});
