import { createHash } from 'node:crypto';
import type { AuthContext, AuthOutcome, Authenticator, Identity } from '../../broker/types.js';
import type { Component } from '../lifecycle.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { parseKey } from './key-format.js';
import { verifySecret, type KeyStore } from './key-store.js';

export interface KeyAuthenticatorOptions {
  /** How long a verified key is trusted without argon2 again. */
  cacheTtlMs: number;
  /** How often cached keys are re-checked for revocation and expiry (cheap: no argon2). */
  cacheRefreshMs: number;
}

interface CacheEntry {
  identity: Identity;
  verifiedAt: number;
}

const LAST_USED_WRITE_INTERVAL_MS = 60_000;

/**
 * Verifies API keys with argon2id once, then serves them from memory keyed by the SHA-256 of the
 * presented key (never the key itself). Revocation still takes effect within cacheRefreshMs,
 * because a timer drops cached keys that are no longer usable, also when another process (the
 * CLI) revoked them.
 */
export class KeyAuthenticator implements Authenticator, Component {
  readonly #keys: KeyStore;
  readonly #options: KeyAuthenticatorOptions;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inFlight = new Map<string, Promise<AuthOutcome>>();
  readonly #lastUsedWritten = new Map<string, number>();
  readonly #usedSinceWrite = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #refreshing = false;

  constructor(deps: { keys: KeyStore; options: KeyAuthenticatorOptions; logger: Logger; metrics: Metrics }) {
    this.#keys = deps.keys;
    this.#options = deps.options;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
  }

  async start(): Promise<void> {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#refresh(), this.#options.cacheRefreshMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#flushLastUsed().catch(() => undefined);
    this.#cache.clear();
  }

  async verify(presentedKey: string | undefined, context: AuthContext): Promise<AuthOutcome> {
    const outcome = await this.#verify(presentedKey);
    this.#metrics.authAttempts.inc({ transport: context.transport, outcome: outcome.ok ? 'ok' : outcome.reason });
    if (outcome.ok) this.#noteUse(outcome.identity.keyId);
    return outcome;
  }

  async #verify(presentedKey: string | undefined): Promise<AuthOutcome> {
    if (presentedKey === undefined || presentedKey.trim() === '') return { ok: false, reason: 'missing' };
    const parsed = parseKey(presentedKey);
    if (!parsed) return { ok: false, reason: 'malformed' };
    const digest = createHash('sha256').update(presentedKey.trim()).digest('base64');
    const cached = this.#cache.get(digest);
    if (cached && Date.now() - cached.verifiedAt < this.#options.cacheTtlMs) return { ok: true, identity: cached.identity };
    // Many connections with the same key arrive together after a reconnect storm: verify once.
    let pending = this.#inFlight.get(digest);
    if (!pending) {
      pending = this.#verifyAgainstStore(presentedKey.trim(), parsed.prefix, digest).finally(() => this.#inFlight.delete(digest));
      this.#inFlight.set(digest, pending);
    }
    return pending;
  }

  async #verifyAgainstStore(key: string, prefix: string, digest: string): Promise<AuthOutcome> {
    const record = await this.#keys.findByPrefix(prefix);
    if (!record) return { ok: false, reason: 'unknown_key' };
    if (!(await verifySecret(record, key))) return { ok: false, reason: 'wrong_secret' };
    if (record.revokedAt) return { ok: false, reason: 'revoked' };
    if (record.expiresAt && record.expiresAt.getTime() <= Date.now()) return { ok: false, reason: 'expired' };
    const identity: Identity = { userId: record.userId, userName: record.userName, keyId: record.id, keyPrefix: record.prefix };
    this.#cache.set(digest, { identity, verifiedAt: Date.now() });
    return { ok: true, identity };
  }

  #noteUse(keyId: string): void {
    const last = this.#lastUsedWritten.get(keyId) ?? 0;
    if (Date.now() - last >= LAST_USED_WRITE_INTERVAL_MS) this.#usedSinceWrite.add(keyId);
  }

  async #flushLastUsed(): Promise<void> {
    if (this.#usedSinceWrite.size === 0) return;
    const ids = [...this.#usedSinceWrite];
    this.#usedSinceWrite.clear();
    const now = Date.now();
    for (const id of ids) this.#lastUsedWritten.set(id, now);
    await this.#keys.touch(ids);
  }

  async #refresh(): Promise<void> {
    if (this.#refreshing) return;
    this.#refreshing = true;
    try {
      const now = Date.now();
      for (const [digest, entry] of this.#cache) {
        if (now - entry.verifiedAt >= this.#options.cacheTtlMs) this.#cache.delete(digest);
      }
      const ids = [...new Set([...this.#cache.values()].map((e) => e.identity.keyId))];
      if (ids.length > 0) {
        const usable = await this.#keys.usableAmong(ids);
        for (const [digest, entry] of this.#cache) {
          if (!usable.has(entry.identity.keyId)) {
            this.#cache.delete(digest);
            this.#logger.info({ keyId: entry.identity.keyId, user: entry.identity.userName }, 'key no longer usable; dropped from cache');
          }
        }
      }
      await this.#flushLastUsed();
    } catch (err) {
      // Keep serving from cache while the database is away; the next tick retries.
      this.#logger.warn({ error: err instanceof Error ? err.message : String(err) }, 'key cache refresh failed');
    } finally {
      this.#refreshing = false;
    }
  }
}
