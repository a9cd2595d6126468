import { createGzip } from 'node:zlib';

/**
 * A gzip body that inflates to `decompressedBytes` of zeros (about 1,000:1). Built as a stream,
 * so the test process never holds the inflated size itself: the daemon runs in this process and
 * its memory is measured here.
 */
export async function gzipBomb(decompressedBytes: number): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gzip.on('data', (d: Buffer) => out.push(d));
  const ended = new Promise<void>((resolve, reject) => {
    gzip.once('end', resolve);
    gzip.once('error', reject);
  });
  const zeros = Buffer.alloc(1024 * 1024);
  for (let written = 0; written < decompressedBytes; written += zeros.length) {
    const chunk = zeros.subarray(0, Math.min(zeros.length, decompressedBytes - written));
    if (!gzip.write(chunk)) await new Promise((r) => gzip.once('drain', r));
  }
  gzip.end();
  await ended;
  return Buffer.concat(out);
}
