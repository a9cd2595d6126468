import { AppError } from '../errors.js';
import { ownKeyProblem } from './key-format.js';
import { parseExpiry, parseScopes } from './key-policy.js';
import type { ApiKeySummary, CreatedKey, KeyStore } from './key-store.js';

/** A request to create a key, as the CLI and the HTTP API receive it (not yet validated). */
export interface CreateKeyRequest {
  user: string;
  label?: string | null | undefined;
  scopes?: readonly string[] | undefined;
  /** A duration (90d) or an ISO date; absent or null: never expires. */
  expires?: string | null | undefined;
  /** A key of the user's own choosing; absent: a random key is generated. */
  key?: string | undefined;
}

const MAX_LABEL_CHARS = 200;

/**
 * Creating, listing and revoking keys: one code path for the CLI and the HTTP API. `onRevoked`
 * is set inside the daemon so that a revocation takes effect at once in that process (MQTT
 * connections made with the key are closed); other processes notice within AUTH_CACHE_REFRESH_MS.
 */
export class KeyManagement {
  readonly #keys: KeyStore;
  readonly #onRevoked: (keyId: string) => void;

  constructor(deps: { keys: KeyStore; onRevoked?: (keyId: string) => void }) {
    this.#keys = deps.keys;
    this.#onRevoked = deps.onRevoked ?? (() => undefined);
  }

  async create(request: CreateKeyRequest, now = new Date()): Promise<CreatedKey> {
    const scopes = parseScopes(request.scopes);
    const expiresAt = request.expires ? parseExpiry(request.expires, now) : null;
    const label = request.label?.trim() || null;
    if (label && label.length > MAX_LABEL_CHARS) throw new AppError('SS_KEY_REQUEST_INVALID', `a label may have at most ${MAX_LABEL_CHARS} characters`);
    if (request.key !== undefined) {
      const problem = ownKeyProblem(request.key);
      if (problem) throw new AppError('SS_KEY_TOO_WEAK', problem);
    }
    return this.#keys.create({
      userName: request.user,
      label,
      scopes,
      expiresAt,
      ...(request.key !== undefined ? { ownKey: request.key } : {}),
    });
  }

  list(filter: { user?: string | undefined } = {}): Promise<ApiKeySummary[]> {
    return this.#keys.list({ userName: filter.user });
  }

  /** Revokes by id or prefix; SS_KEY_NOT_FOUND when nothing matches. Revoking twice is harmless. */
  async revoke(idOrPrefix: string): Promise<{ id: string; alreadyRevoked: boolean }> {
    const result = await this.#keys.revokeReporting(idOrPrefix);
    if (!result) throw new AppError('SS_KEY_NOT_FOUND', `no key with id or prefix ${idOrPrefix}`);
    this.#onRevoked(result.id);
    return result;
  }
}
