import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AcceptOutcome, Authenticator, Identity, IngestSink, ProcessingResult } from '../../broker/types.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { BodyAbortedError, isJsonContentType, parseContentEncoding, readBody, tooLarge, type ContentCoding } from './body.js';
import { authenticateRequest } from './authenticate.js';
import { lineAndColumn } from './json-position.js';
import { refuse, sendError, sendJson, toAppError } from './respond.js';

export interface IngestRouteDeps {
  authenticator: Authenticator;
  sink: IngestSink;
  logger: Logger;
  maxBodyBytes: number;
  /** The client's address (behind a trusted proxy, the forwarded one). */
  remoteAddress: string | undefined;
  /** The per-key rate limit: the 429 to send, or null to go on. */
  admitKey?: ((keyId: string) => Promise<AppError | null>) | undefined;
}

/** Fields of the one log line written per ingest request. Never holds the key or raw headers. */
interface IngestLog {
  remoteAddress?: string | undefined;
  user?: string;
  keyId?: string;
  ingestionId?: string;
  bytes?: number;
  duplicatePayload?: boolean;
  spooled?: boolean;
  counts?: { received: number; inserted: number; updated: number; unchanged: number; rejected: number };
  processingError?: string;
  aborted?: boolean;
  err?: unknown;
}

type Stored = Extract<AcceptOutcome, { kind: 'stored' }>;

/** POST /api/v1/ingest: authenticate, read the bounded body, store it, answer with what was written. */
export async function handleIngest(deps: IngestRouteDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const log: IngestLog = {};
  try {
    await ingest(deps, req, res, log);
  } catch (err) {
    if (err instanceof BodyAbortedError) {
      log.aborted = true;
    } else {
      if (!(err instanceof AppError)) log.err = err;
      refuse(req, res, toAppError(err));
    }
  } finally {
    writeLog(deps.logger, log, res, performance.now() - started);
  }
}

async function ingest(deps: IngestRouteDeps, req: IncomingMessage, res: ServerResponse, log: IngestLog): Promise<void> {
  const remoteAddress = deps.remoteAddress;
  log.remoteAddress = remoteAddress;
  // Credentials first: an anonymous client must not be able to make the server read tens of MB.
  const identity = await authenticateRequest(deps.authenticator, req, 'ingest', deps.remoteAddress, (err) => {
    log.err = err;
  });
  log.user = identity.userName;
  log.keyId = identity.keyId;
  const limited = await deps.admitKey?.(identity.keyId);
  if (limited) throw limited;

  const contentType = req.headers['content-type'];
  if (!isJsonContentType(contentType)) {
    throw new AppError(
      'SS_UNSUPPORTED_MEDIA_TYPE',
      `The body must be JSON; send the header "Content-Type: application/json" (got "${contentType}")`,
      { contentType },
    );
  }
  const coding = parseContentEncoding(req.headers['content-encoding']);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > deps.maxBodyBytes) throw tooLarge(deps.maxBodyBytes);

  const outcome = await readAndAccept(deps, req, res, { identity, coding, remoteAddress }, log);
  if (outcome === null) return;
  log.ingestionId = outcome.ingestionId;
  log.duplicatePayload = outcome.duplicatePayload;
  await answerStored(res, outcome, log);
}

/**
 * Reads and stores the body; answers here unless it was stored. A function of its own so that
 * the body (up to HTTP_MAX_BODY_BYTES) is no longer referenced while the answer waits for the
 * payload to be processed.
 */
async function readAndAccept(
  deps: IngestRouteDeps,
  req: IncomingMessage,
  res: ServerResponse,
  request: { identity: Identity; coding: ContentCoding; remoteAddress: string | undefined },
  log: IngestLog,
): Promise<Stored | null> {
  const { identity, coding, remoteAddress } = request;
  const body = await readBody(req, { maxBytes: deps.maxBodyBytes, coding });
  log.bytes = body.length;

  let outcome: AcceptOutcome;
  try {
    outcome = await deps.sink.accept({ identity, transport: 'http', topic: null, body, receivedAt: new Date(), remoteAddress });
  } catch (err) {
    // Not stored: answer with something the client retries instead of a 500 it may give up on.
    if (err instanceof AppError) throw err;
    log.err = err;
    throw new AppError('SS_DB_UNAVAILABLE', 'The payload could not be stored; retry later', undefined, { cause: err });
  }
  if (outcome.kind === 'invalid_json') {
    answerInvalidJson(res, body, outcome);
    return null;
  }
  if (outcome.kind === 'spooled') {
    // Durable on local disk while the database is away; it is stored and processed once it is back.
    log.spooled = true;
    sendJson(res, 202, { status: 'spooled' });
    return null;
  }
  return outcome;
}

function answerInvalidJson(res: ServerResponse, body: Buffer, outcome: Extract<AcceptOutcome, { kind: 'invalid_json' }>): void {
  const where = outcome.position === null ? { line: null, column: null } : lineAndColumn(body, outcome.position);
  const code = outcome.code ?? 'SS_INVALID_JSON';
  const message = code === 'SS_INVALID_JSON' ? `The body is not valid JSON: ${outcome.message}` : `The body was refused, nothing was stored: ${outcome.message}`;
  sendError(res, new AppError(code, message, { position: outcome.position, ...where }));
}

async function answerStored(res: ServerResponse, outcome: Stored, log: IngestLog): Promise<void> {
  const result = await outcome.processed;
  if ('error' in result) {
    // The raw payload is durable and is processed again later, so this is "accepted", not a failure.
    log.processingError = result.error;
    sendJson(res, 202, { ingestionId: result.ingestionId, status: 'stored_not_processed', error: result.error });
    return;
  }
  log.counts = totals(result);
  sendJson(res, 200, successBody(outcome, result));
}

function successBody(outcome: Stored, result: ProcessingResult): Record<string, unknown> {
  const stored: Record<string, number> = {};
  let duplicatesSkipped = 0;
  for (const [type, counts] of Object.entries(result.counts)) {
    stored[type] = counts.inserted + counts.updated;
    duplicatesSkipped += counts.unchanged;
  }
  return {
    ingestionId: result.ingestionId,
    duplicatePayload: outcome.duplicatePayload,
    stored,
    counts: result.counts,
    duplicatesSkipped,
    rejected: result.rejections,
    notStored: result.notStored,
  };
}

function totals(result: ProcessingResult): NonNullable<IngestLog['counts']> {
  const sum = { received: 0, inserted: 0, updated: 0, unchanged: 0, rejected: 0 };
  for (const c of Object.values(result.counts)) {
    sum.received += c.received;
    sum.inserted += c.inserted;
    sum.updated += c.updated;
    sum.unchanged += c.unchanged;
    sum.rejected += c.rejected;
  }
  return sum;
}

function writeLog(logger: Logger, log: IngestLog, res: ServerResponse, durationMs: number): void {
  const status = res.headersSent ? res.statusCode : null;
  const line = { ...log, status, durationMs: Math.round(durationMs) };
  if (log.aborted) logger.warn(line, 'ingest request aborted by the client');
  // The client hung up while its payload was stored and processed (a timeout of its own): nothing
  // failed here, and with an ingestion id the payload is stored; an error would send the operator
  // looking for lost data.
  else if (status === null && res.destroyed) logger.warn(line, log.ingestionId ? 'client closed the connection before the answer; the payload is stored' : 'client closed the connection before the answer');
  else if (status === null || status >= 500) logger.error(line, 'ingest request failed');
  else if (status >= 400) logger.warn(line, 'ingest request refused');
  else logger.info(line, 'ingest request');
}
