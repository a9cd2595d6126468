import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { AppError } from '../errors.js';

export type ContentCoding = 'identity' | 'gzip';

/** The client went away before the body was complete; there is nobody left to answer. */
export class BodyAbortedError extends Error {
  constructor() {
    super('the client closed the connection before the request body was complete');
    this.name = 'BodyAbortedError';
  }
}

export function tooLarge(maxBytes: number): AppError {
  return new AppError('SS_BODY_TOO_LARGE', `The request body is larger than the limit of ${maxBytes} bytes`, { limitBytes: maxBytes });
}

/** The Content-Encoding header as a coding this server can undo, or 415. */
export function parseContentEncoding(header: string | undefined): ContentCoding {
  const coding = (header ?? '').trim().toLowerCase();
  if (coding === '' || coding === 'identity') return 'identity';
  if (coding === 'gzip' || coding === 'x-gzip') return 'gzip';
  throw new AppError('SS_UNSUPPORTED_ENCODING', `Content-Encoding "${coding}" is not supported; send gzip or no encoding`);
}

/**
 * Media types this server parses as JSON: application/json or any +json type, with any
 * parameters. A missing Content-Type is accepted because some HTTP clients omit it for JSON.
 */
export function isJsonContentType(header: string | undefined): boolean {
  const mediaType = (header ?? '').split(';', 1)[0]!.trim().toLowerCase();
  return mediaType === '' || mediaType === 'application/json' || /^[a-z0-9!#$&^_.-]+\/[a-z0-9!#$&^_.+-]+\+json$/.test(mediaType);
}

export interface ReadBodyOptions {
  maxBytes: number;
  coding: ContentCoding;
}

/**
 * Reads a whole request body into one Buffer, decompressing gzip on the way. Both the bytes on
 * the wire and the decompressed bytes are bounded by maxBytes, and reading stops the moment
 * either crosses it, so neither a huge upload nor a gzip bomb is ever held in memory.
 *
 * On failure the source is paused but not destroyed: destroying an IncomingMessage destroys its
 * socket, and the caller still has to write the 413 or 400 answer on it.
 */
export function readBody(source: Readable, options: ReadBodyOptions): Promise<Buffer> {
  const { maxBytes } = options;
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let outputBytes = 0;
    let wireBytes = 0;
    let settled = false;
    const gunzip = options.coding === 'gzip' ? createGunzip() : null;

    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onAbort);
      source.off('close', onClose);
      if (err) {
        source.pause();
        gunzip?.destroy();
        reject(err);
      } else {
        resolve(Buffer.concat(chunks, outputBytes));
      }
    };
    const collect = (chunk: Buffer): void => {
      if (settled) return;
      outputBytes += chunk.length;
      if (outputBytes > maxBytes) return finish(tooLarge(maxBytes));
      chunks.push(chunk);
    };
    const onData = (chunk: Buffer): void => {
      wireBytes += chunk.length;
      if (wireBytes > maxBytes) return finish(tooLarge(maxBytes));
      if (!gunzip) return collect(chunk);
      // Let zlib set the pace, so a slow inflate never buffers the compressed stream unbounded.
      if (!gunzip.write(chunk)) {
        source.pause();
        gunzip.once('drain', () => {
          if (!settled) source.resume();
        });
      }
    };
    const onEnd = (): void => {
      if (gunzip) gunzip.end();
      else finish(null);
    };
    const onAbort = (): void => finish(new BodyAbortedError());
    const onClose = (): void => {
      if (!source.readableEnded) onAbort();
    };

    if (gunzip) {
      gunzip.on('data', collect);
      gunzip.on('end', () => finish(null));
      gunzip.on('error', (err) =>
        finish(new AppError('SS_BAD_GZIP', `The gzip body could not be decompressed: ${err.message}`, undefined, { cause: err })),
      );
    }
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onAbort);
    source.on('close', onClose);
    // The client may have gone while credentials were checked; 'close' will not fire again.
    if (source.destroyed) onAbort();
  });
}
