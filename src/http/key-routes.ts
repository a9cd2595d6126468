import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Authenticator } from '../../broker/types.js';
import { createdKeyToJson, keyToJson } from '../auth/key-json.js';
import type { KeyManagement } from '../auth/key-management.js';
import { SCOPES } from '../auth/key-policy.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { authenticateRequest } from './authenticate.js';
import { BodyAbortedError, isJsonContentType, parseContentEncoding, readBody } from './body.js';
import { refuse, sendJson } from './respond.js';

export const KEYS_PATH = '/api/v1/auth/keys';

export interface KeyRoutesDeps {
  authenticator: Authenticator;
  management: KeyManagement;
  logger: Logger;
  /** The client's address as resolved for rate limits and throttling. */
  remoteAddress: string | undefined;
  /** The per-key rate limit, checked once the admin key is known (absent: no limit). */
  admitKey?: ((keyId: string) => Promise<AppError | null>) | undefined;
}

// A key request is a few hundred bytes; nothing larger is read.
const MAX_BODY_BYTES = 16 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** POST /api/v1/auth/keys. Field names follow the rest of the API (camelCase, like the CLI's --json). */
export const createKeyBody = z.strictObject({
  user: z.string().min(1).max(100),
  label: z.string().max(200).nullish(),
  scopes: z.array(z.enum(SCOPES)).min(1).max(SCOPES.length).optional(),
  /** A duration (90d, 12h, 4w, 1y) or an ISO date / date-time; null or absent: never expires. */
  expiresAt: z.string().min(1).max(64).nullish(),
  /** A key of your own choosing (e.g. the UUID an app already sends); absent: a random key. */
  key: z.string().max(1024).optional(),
});

/**
 * Key management for keys with the `admin` scope: the same service as the CLI.
 *   POST   /api/v1/auth/keys        create (201, the key is in this answer and never again)
 *   GET    /api/v1/auth/keys[?user=NAME]   list (never keys or hashes)
 *   DELETE /api/v1/auth/keys/{id}   revoke (204; 404 for an unknown id)
 */
export async function handleKeyRoutes(deps: KeyRoutesDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    await route(deps, req, res);
  } catch (err) {
    if (err instanceof BodyAbortedError) return;
    // Anything else is a bug, answered and logged by the server as such.
    if (!(err instanceof AppError)) throw err;
    if (err.status >= 500) deps.logger.warn({ code: err.code, error: err.message }, 'key management request failed');
    const allow = err.code === 'SS_METHOD_NOT_ALLOWED' ? { Allow: (err.details?.allow as string[]).join(', ') } : {};
    refuse(req, res, err, allow);
  }
}

async function route(deps: KeyRoutesDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const rest = url.pathname.slice(KEYS_PATH.length).replace(/\/$/, '');
  const method = req.method ?? '';
  const allowed = rest === '' ? ['GET', 'POST'] : /^\/[^/]+$/.test(rest) ? ['DELETE'] : null;
  if (!allowed) throw new AppError('SS_NOT_FOUND', `No route for ${method} ${url.pathname}`);
  if (!allowed.includes(method)) {
    throw new AppError('SS_METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}; use ${allowed.join(' or ')}`, { allow: allowed });
  }
  // Before the body is read: an anonymous client cannot make the server read anything.
  const admin = await authenticateRequest(deps.authenticator, req, 'admin', deps.remoteAddress);
  const limited = await deps.admitKey?.(admin.keyId);
  if (limited) throw limited;
  const log = deps.logger.child({ admin: admin.userName, adminKeyId: admin.keyId });

  if (method === 'GET') {
    const user = url.searchParams.get('user') ?? undefined;
    const keys = await deps.management.list({ user });
    sendJson(res, 200, { keys: keys.map(keyToJson) });
    return;
  }
  if (method === 'POST') {
    const body = createKeyBody.safeParse(await readJson(req));
    if (!body.success) {
      const problems = body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`);
      throw new AppError('SS_KEY_REQUEST_INVALID', `The key request is not valid: ${problems.join('; ')}`, { problems });
    }
    const { user, label, scopes, expiresAt, key } = body.data;
    const created = await deps.management.create({ user, label, scopes, expires: expiresAt, ...(key !== undefined ? { key } : {}) });
    log.info({ keyId: created.id, prefix: created.prefix, user: created.userName, scopes: created.scopes, origin: created.origin }, 'API key created over HTTP');
    sendJson(res, 201, createdKeyToJson(created), { Location: `${KEYS_PATH}/${created.id}` });
    return;
  }
  const id = decodeURIComponent(rest.slice(1));
  if (!UUID.test(id)) throw new AppError('SS_KEY_NOT_FOUND', `no key with id ${id}`);
  const revoked = await deps.management.revoke(id);
  log.info({ keyId: revoked.id, alreadyRevoked: revoked.alreadyRevoked }, 'API key revoked over HTTP');
  res.writeHead(204, { 'Cache-Control': 'no-store' });
  res.end();
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const contentType = req.headers['content-type'];
  if (!isJsonContentType(contentType)) {
    throw new AppError('SS_UNSUPPORTED_MEDIA_TYPE', `The body must be JSON; send the header "Content-Type: application/json" (got "${contentType}")`);
  }
  const body = await readBody(req, { maxBytes: MAX_BODY_BYTES, coding: parseContentEncoding(req.headers['content-encoding']) });
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw new AppError('SS_INVALID_JSON', `The body is not valid JSON: ${(err as Error).message}`);
  }
}
