import crypto from 'node:crypto';
import { SMALL_PAYLOAD_BYTES } from './batch-processor.js';

// crypto.hash (Node 20.12 and later) digests a small buffer in one call, about twice as fast as
// a Hash object; Node's documentation keeps larger inputs on createHash.
const oneShotHash = typeof crypto.hash === 'function' ? crypto.hash : undefined;

/** The digest raw_ingestions keeps each user's payloads unique by. */
export function sha256Of(body: Buffer): Buffer {
  if (oneShotHash && body.length < SMALL_PAYLOAD_BYTES) return oneShotHash('sha256', body, 'buffer');
  return crypto.createHash('sha256').update(body).digest();
}
