import type { IncomingMessage } from 'node:http';
import type { Authenticator, Identity, Scope } from '../../broker/types.js';
import { AppError } from '../errors.js';
import { extractApiKey } from './credentials.js';

/**
 * The identity behind a request's API key, for a route that needs `scope`; otherwise the
 * AppError to answer with: 401 (no key / not valid), 400 (two different keys), 403 (valid key without the scope), 429 with
 * Retry-After (too many failures from this address or for this key), 503 (database down).
 * `onError` sees infrastructure failures for the request's log line. `remoteAddress` is the
 * client's address as resolved for rate limits (behind a trusted proxy: from X-Forwarded-For), so
 * throttling blocks the attacker and not the proxy everyone shares.
 */
export async function authenticateRequest(
  authenticator: Authenticator,
  req: IncomingMessage,
  scope: Scope,
  remoteAddress: string | undefined,
  onError: (err: unknown) => void = () => undefined,
): Promise<Identity> {
  const presented = extractApiKey(req.headersDistinct);
  const key = presented.kind === 'key' ? presented.key : undefined;
  const ambiguousKey = presented.kind === 'ambiguous';
  let outcome;
  try {
    outcome = await authenticator.verify(key, { transport: 'http', remoteAddress, requiredScope: scope, ambiguousKey });
  } catch (err) {
    onError(err);
    throw new AppError('SS_DB_UNAVAILABLE', 'The API key could not be checked; retry later', undefined, { cause: err });
  }
  if (outcome.ok) return outcome.identity;
  switch (outcome.reason) {
    case 'missing':
      throw new AppError('SS_AUTH_MISSING', 'An API key is required: send "Authorization: Bearer <key>", "X-API-Key: <key>" or "api-key: <key>"');
    case 'insufficient_scope':
      throw new AppError('SS_AUTH_FORBIDDEN', `This API key does not have the "${scope}" scope`, { requiredScope: scope });
    case 'throttled':
      throw new AppError('SS_AUTH_THROTTLED', undefined, { retryAfterSeconds: outcome.retryAfterSeconds ?? 1 });
    case 'ambiguous':
      throw new AppError('SS_AUTH_AMBIGUOUS', 'The request carries two different API keys; send exactly one');
    default:
      // One message for every other reason, so the answer tells an attacker nothing about the key.
      throw new AppError('SS_AUTH_INVALID');
  }
}
