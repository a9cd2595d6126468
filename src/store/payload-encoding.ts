import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type pg from 'pg';

/** How raw_ingestions.payload holds a payload's bytes (migration 0006). */
export type PayloadEncoding = 'identity' | 'br';

/**
 * From this size on a payload is stored brotli-compressed. Below it, the bytes stay as sent, so
 * that a user can read them with SQL alone; at it, PostgreSQL's own receipt and lz4 compression
 * of the bytes cost ten times brotli's (see migration 0006).
 */
export const COMPRESSED_FROM_BYTES = 8 * 1024 * 1024;

/** Compressed bytes are stored only when they save at least an eighth. */
const KEPT_COMPRESSED_RATIO = 7 / 8;

const brotliCompress = promisify(zlib.brotliCompress);

/**
 * Output produced by one step of the compressor on the thread pool. Each step ends with a
 * callback on the main thread, which is busy parsing the same payload and takes callbacks only
 * between pieces: with zlib's 16 kB default, a 100 MB payload's compression took as long as its
 * parse (500 steps); in steps this size it is a handful.
 */
const COMPRESSION_STEP_BYTES = 4 * 1024 * 1024;

/**
 * The bytes to store for `body`, and their encoding. Compression runs on libuv's thread pool, so
 * the main thread goes on parsing the same payload meanwhile. Quality 0: a large export is
 * mostly repeated keys, dates and source names, and higher qualities buy a few per cent of size
 * for several times the time.
 */
export async function encodePayload(body: Buffer): Promise<{ bytes: Buffer; encoding: PayloadEncoding }> {
  if (body.length < COMPRESSED_FROM_BYTES) return { bytes: body, encoding: 'identity' };
  const bytes = await brotliCompress(body, {
    chunkSize: COMPRESSION_STEP_BYTES,
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: 0,
      [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length,
    },
  });
  // Bytes that do not compress (not what Health Auto Export sends, but a body may be anything) are
  // kept as sent: readable with SQL, and no decompression to read them back.
  if (bytes.length > body.length * KEPT_COMPRESSED_RATIO) return { bytes: body, encoding: 'identity' };
  return { bytes, encoding: 'br' };
}

/** The payload as it was sent, from what raw_ingestions holds. */
export function decodePayload(bytes: Buffer, encoding: string): Buffer {
  if (encoding === 'identity') return bytes;
  if (encoding === 'br') return zlib.brotliDecompressSync(bytes);
  throw new Error(`a stored payload has the unknown encoding ${JSON.stringify(encoding)}`);
}

/** The payloads of these raw ingestions as they were sent, by id; ids that do not exist are absent. */
export async function readStoredPayloads(db: pg.Pool | pg.ClientBase, ids: readonly string[]): Promise<Map<string, Buffer>> {
  const { rows } = await db.query<{ id: string; payload: Buffer; payload_encoding: string }>(
    'SELECT id::text, payload, payload_encoding FROM raw_ingestions WHERE id = ANY($1::int8[])',
    [ids],
  );
  return new Map(rows.map((row) => [row.id, decodePayload(row.payload, row.payload_encoding)]));
}

/** One raw ingestion's payload as it was sent; throws when there is no such ingestion. */
export async function readStoredPayload(db: pg.Pool | pg.ClientBase, id: string): Promise<Buffer> {
  const payload = (await readStoredPayloads(db, [id])).get(id);
  if (!payload) throw new Error(`raw ingestion ${id} does not exist`);
  return payload;
}
