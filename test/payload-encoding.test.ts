import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { COMPRESSED_FROM_BYTES, decodePayload, encodePayload } from '../src/store/payload-encoding.js';

describe('stored payload encoding', () => {
  test('below the threshold the bytes are stored as sent; from it on, brotli that decodes to them exactly', async () => {
    const line = Buffer.from('{"date":"2025-03-01 00:00:00 +0100","qty":1,"source":"Anna\u2019s iPhone"},');
    const sized = (n: number): Buffer => Buffer.concat(Array.from({ length: Math.ceil(n / line.length) }, () => line)).subarray(0, n);
    const small = sized(COMPRESSED_FROM_BYTES - 1);
    const kept = await encodePayload(small);
    assert.equal(kept.encoding, 'identity');
    assert.equal(kept.bytes, small, 'the same Buffer, not a copy');
    assert.equal(decodePayload(kept.bytes, kept.encoding), small);

    // Every byte value, so that nothing depends on the payload being text.
    const large = Buffer.concat([sized(COMPRESSED_FROM_BYTES - 256), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]);
    const compressed = await encodePayload(large);
    assert.equal(compressed.encoding, 'br');
    assert.ok(compressed.bytes.length < large.length / 4, `${compressed.bytes.length} bytes for ${large.length}`);
    assert.ok(decodePayload(compressed.bytes, compressed.encoding).equals(large));
  });

  test('bytes that do not compress are stored as sent', async () => {
    const random = randomBytes(COMPRESSED_FROM_BYTES);
    const kept = await encodePayload(random);
    assert.equal(kept.encoding, 'identity');
    assert.equal(kept.bytes, random);
  });

  test('an encoding it does not know is an error, not bytes passed on', () => {
    assert.throws(() => decodePayload(Buffer.from('{}'), 'zstd'), /unknown encoding "zstd"/);
  });
});
