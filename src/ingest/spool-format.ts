import { createHash } from 'node:crypto';
import type { IngestRequest, Transport } from '../../broker/types.js';

/**
 * One spool record on disk:
 *
 *   magic "SSR1" (4 bytes) | body length (u32 BE) | checksum (8 bytes) | body
 *   body = meta length (u32 BE) | meta (UTF-8 JSON) | payload bytes
 *
 * The checksum is the first 8 bytes of SHA-256 over the body. A record whose header or body is
 * cut short, or whose checksum does not match, is torn (the daemon died while appending it).
 */
export const RECORD_MAGIC = Buffer.from('SSR1', 'ascii');
export const HEADER_BYTES = 16;
/** No record can be larger than this (the largest MQTT packet plus its metadata fits well under it). */
export const MAX_BODY_BYTES = 0x7fffffff;

interface RecordMeta {
  v: 1;
  userId: string;
  userName: string;
  keyId: string;
  keyPrefix: string;
  transport: Transport;
  topic: string | null;
  clientId: string | null;
  remoteAddress: string | null;
  receivedAt: string;
}

export function encodeRecord(request: IngestRequest): Buffer {
  const meta: RecordMeta = {
    v: 1,
    userId: request.identity.userId,
    userName: request.identity.userName,
    keyId: request.identity.keyId,
    keyPrefix: request.identity.keyPrefix,
    transport: request.transport,
    topic: request.topic,
    clientId: request.clientId ?? null,
    remoteAddress: request.remoteAddress ?? null,
    receivedAt: request.receivedAt.toISOString(),
  };
  const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
  const bodyLength = 4 + metaBytes.length + request.body.length;
  const header = Buffer.alloc(HEADER_BYTES + 4);
  RECORD_MAGIC.copy(header, 0);
  header.writeUInt32BE(bodyLength, 4);
  header.writeUInt32BE(metaBytes.length, HEADER_BYTES);
  const checksum = createHash('sha256').update(header.subarray(HEADER_BYTES)).update(metaBytes).update(request.body).digest();
  checksum.copy(header, 8, 0, 8);
  return Buffer.concat([header, metaBytes, request.body]);
}

export type HeaderCheck = { ok: true; bodyLength: number } | { ok: false; reason: string };

export function checkHeader(header: Buffer): HeaderCheck {
  if (header.length < HEADER_BYTES) return { ok: false, reason: 'header cut short' };
  if (!header.subarray(0, 4).equals(RECORD_MAGIC)) return { ok: false, reason: 'bad magic' };
  const bodyLength = header.readUInt32BE(4);
  if (bodyLength < 4 || bodyLength > MAX_BODY_BYTES) return { ok: false, reason: 'impossible length' };
  return { ok: true, bodyLength };
}

export type BodyDecode = { ok: true; request: IngestRequest } | { ok: false; reason: string };

/** Checks the body against the header's checksum, then rebuilds the request it holds. */
export function decodeBody(header: Buffer, body: Buffer): BodyDecode {
  const checksum = createHash('sha256').update(body).digest().subarray(0, 8);
  if (!checksum.equals(header.subarray(8, HEADER_BYTES))) return { ok: false, reason: 'checksum mismatch' };
  const metaLength = body.readUInt32BE(0);
  if (4 + metaLength > body.length) return { ok: false, reason: 'meta length past the body' };
  let meta: RecordMeta;
  try {
    meta = JSON.parse(body.subarray(4, 4 + metaLength).toString('utf8')) as RecordMeta;
  } catch {
    return { ok: false, reason: 'meta is not JSON' };
  }
  if (meta.v !== 1) return { ok: false, reason: `unknown record version ${String(meta.v)}` };
  return {
    ok: true,
    request: {
      // The key was checked for the ingest scope when the payload arrived; replay only stores it.
      identity: { userId: meta.userId, userName: meta.userName, keyId: meta.keyId, keyPrefix: meta.keyPrefix, scopes: ['ingest'] },
      transport: meta.transport,
      topic: meta.topic,
      body: body.subarray(4 + metaLength),
      receivedAt: new Date(meta.receivedAt),
      clientId: meta.clientId ?? undefined,
      remoteAddress: meta.remoteAddress ?? undefined,
    },
  };
}
