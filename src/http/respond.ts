import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { AppError, type ErrorCode } from '../errors.js';

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Seconds a client should wait before retrying an answer that says "try again later". */
export const RETRY_AFTER_SECONDS = 5;

// Headers some error codes always carry, so no call site can forget them.
const headersByCode: Partial<Record<ErrorCode, OutgoingHttpHeaders>> = {
  SS_AUTH_MISSING: { 'WWW-Authenticate': 'Bearer' },
  SS_AUTH_INVALID: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
  SS_DB_UNAVAILABLE: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
  SS_NOT_READY: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
  SS_SHUTTING_DOWN: { 'Retry-After': String(RETRY_AFTER_SECONDS), Connection: 'close' },
};

/** Writes a complete JSON answer; a no-op when an answer was already started or the socket is gone. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) return;
  const payload = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, {
    ...headers,
    'Content-Type': JSON_CONTENT_TYPE,
    'Content-Length': payload.length,
    // Answers describe one request; a cache in between must never replay them.
    'Cache-Control': 'no-store',
  });
  res.end(payload);
}

export function sendError(res: ServerResponse, err: AppError, headers: OutgoingHttpHeaders = {}): void {
  // An error that knows when to come back (a throttled client) says so in the header too.
  const retryAfter = err.details?.retryAfterSeconds;
  const dynamic: OutgoingHttpHeaders = typeof retryAfter === 'number' ? { 'Retry-After': String(retryAfter) } : {};
  sendJson(res, err.status, err.toJSON(), { ...headersByCode[err.code], ...dynamic, ...headers });
}

/** Any thrown value as an AppError; unknown failures become SS_INTERNAL without leaking their text. */
export function toAppError(err: unknown): AppError {
  return err instanceof AppError ? err : new AppError('SS_INTERNAL', undefined, undefined, { cause: err });
}

/**
 * An error answer to a request whose body may not have been read. Node would drain an unread
 * body to keep the connection alive, reading up to the whole upload for nothing; closing is cheaper.
 */
export function refuse(req: IncomingMessage, res: ServerResponse, err: AppError, headers: OutgoingHttpHeaders = {}): void {
  if (!req.complete && !res.headersSent) res.setHeader('Connection', 'close');
  sendError(res, err, headers);
}
