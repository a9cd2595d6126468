import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import type { IngestRequest } from '../broker/types.js';
import { createLogger } from '../src/log.js';
import { encodeRecord } from '../src/ingest/spool-format.js';
import { Spool, SpoolFullError, type SpooledRecord } from '../src/ingest/spool.js';

function capture(): { logs: string[]; logger: ReturnType<typeof createLogger> } {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { logs, logger: createLogger('info', sink) };
}

const request = (n: number, bytes = 40): IngestRequest => ({
  identity: { userId: '1', userName: 'me', keyId: '7', keyPrefix: 'ss_x', scopes: ['ingest'] },
  transport: 'mqtt-tcp',
  topic: 'health/me',
  body: Buffer.from(JSON.stringify({ n, pad: 'x'.repeat(Math.max(0, bytes - 20)) })),
  receivedAt: new Date(1_700_000_000_000 + n * 1000),
  clientId: 'phone',
  remoteAddress: '127.0.0.1',
});

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await fsp.rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ss-spool-'));
  dirs.push(dir);
  return dir;
}

async function readAll(spool: Spool): Promise<SpooledRecord[]> {
  const out: SpooledRecord[] = [];
  for (const segment of spool.sealedSegments()) for await (const r of spool.read(segment)) out.push(r);
  return out;
}

test('append then read back: every field survives, in order; stats count them', async () => {
  const dir = await tempDir();
  const spool = new Spool({ dir, maxBytes: 1024 * 1024, segmentBytes: 1024 * 1024 }, createLogger('silent'));
  await spool.start();
  await Promise.all([1, 2, 3].map((n) => spool.append(request(n))));
  assert.equal(spool.stats().records, 3);
  assert.equal(spool.stats().oldestAt, request(1).receivedAt.getTime());
  await spool.seal();
  const records = await readAll(spool);
  assert.deepEqual(records.map((r) => JSON.parse(r.request.body.toString()).n), [1, 2, 3]);
  const first = records[0]!.request;
  const original = request(1);
  assert.deepEqual({ ...first, body: first.body.toString() }, { ...original, body: original.body.toString() });
  await spool.stop();
  const mode = (await fsp.stat(path.join(dir, '000000000001.seg'))).mode & 0o777;
  assert.equal(mode, 0o600);
});

test('segments rotate at segmentBytes; a restart finds them; remove() deletes a segment and frees its bytes', async () => {
  const dir = await tempDir();
  const spool = new Spool({ dir, maxBytes: 1024 * 1024, segmentBytes: 300 }, createLogger('silent'));
  await spool.start();
  for (let n = 1; n <= 6; n++) await spool.append(request(n, 150));
  await spool.stop();
  const files = (await fsp.readdir(dir)).sort();
  assert.ok(files.length >= 3, `several segments: ${files.join(',')}`);

  const again = new Spool({ dir, maxBytes: 1024 * 1024, segmentBytes: 300 }, createLogger('silent'));
  await again.start();
  assert.equal(again.stats().records, 6);
  const segments = again.sealedSegments();
  const firstCount = segments[0]!.records;
  const before = again.stats().bytes;
  await again.remove(segments[0]!);
  assert.equal(again.stats().records, 6 - firstCount);
  assert.ok(again.stats().bytes < before);
  assert.equal((await fsp.readdir(dir)).length, files.length - 1);
  assert.deepEqual((await readAll(again)).map((r) => JSON.parse(r.request.body.toString()).n), [1, 2, 3, 4, 5, 6].slice(firstCount));
  // New appends go to a new segment, numbered after the old ones.
  await again.append(request(7));
  await again.seal();
  assert.ok(again.sealedSegments().at(-1)!.seq > segments.at(-1)!.seq);
  await again.stop();
});

test('a torn last record is truncated at start and logged; the complete ones are kept', async () => {
  const dir = await tempDir();
  const good = [request(1), request(2)].map(encodeRecord);
  const torn = encodeRecord(request(3)).subarray(0, 30);
  await fsp.writeFile(path.join(dir, '000000000001.seg'), Buffer.concat([...good, torn]));
  const { logs, logger } = capture();
  const spool = new Spool({ dir, maxBytes: 1024 * 1024, segmentBytes: 1024 * 1024 }, logger);
  await spool.start();
  assert.equal(spool.stats().records, 2);
  assert.equal((await fsp.stat(path.join(dir, '000000000001.seg'))).size, good[0]!.length + good[1]!.length);
  assert.ok(logs.some((l) => l.includes('torn record')), logs.join('\n'));
  assert.deepEqual((await readAll(spool)).map((r) => JSON.parse(r.request.body.toString()).n), [1, 2]);
  await spool.stop();
});

test('a record with a wrong checksum counts as torn', async () => {
  const dir = await tempDir();
  const bad = encodeRecord(request(2));
  bad[bad.length - 2] ^= 0xff;
  await fsp.writeFile(path.join(dir, '000000000001.seg'), Buffer.concat([encodeRecord(request(1)), bad]));
  const spool = new Spool({ dir, maxBytes: 1024 * 1024, segmentBytes: 1024 * 1024 }, createLogger('silent'));
  await spool.start();
  assert.equal(spool.stats().records, 1);
  await spool.stop();
});

test('full: append rejects with SpoolFullError, logged once; room again after remove()', async () => {
  const dir = await tempDir();
  const size = encodeRecord(request(1)).length;
  const { logs, logger } = capture();
  const spool = new Spool({ dir, maxBytes: size * 2, segmentBytes: size }, logger);
  let refused = 0;
  spool.onRefused = () => refused++;
  await spool.start();
  await spool.append(request(1));
  await spool.append(request(2));
  await assert.rejects(spool.append(request(3)), SpoolFullError);
  await assert.rejects(spool.append(request(4)), SpoolFullError);
  assert.equal(refused, 2);
  assert.equal(logs.filter((l) => l.includes('spool is full')).length, 1);
  await spool.seal();
  await spool.remove(spool.sealedSegments()[0]!);
  assert.ok(logs.some((l) => l.includes('room again')));
  await spool.append(request(5));
  assert.equal(spool.stats().records, 2);
  await spool.stop();
});

test('an empty spool is empty; records left on disk make it not empty after a restart', async () => {
  const dir = await tempDir();
  const spool = new Spool({ dir, maxBytes: 1024 * 1024, segmentBytes: 1024 * 1024 }, createLogger('silent'));
  await spool.start();
  assert.equal(spool.isEmpty, true);
  const pending = spool.append(request(1));
  assert.equal(spool.isEmpty, false, 'an append under way counts');
  await pending;
  await spool.stop();
  const again = new Spool({ dir, maxBytes: 1024 * 1024, segmentBytes: 1024 * 1024 }, createLogger('silent'));
  await again.start();
  assert.equal(again.isEmpty, false);
  await again.stop();
});
