import { createHash, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuthContext, AuthFailureReason, AuthOutcome, Authenticator, Identity } from '../../broker/types.js';
import type { Component } from '../lifecycle.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { AuthEventSink } from './auth-events.js';
import { lookupOf, parseKey } from './key-format.js';
import { verifySecret, type ApiKeyRecord, type KeyStore } from './key-store.js';
import { Semaphore } from './semaphore.js';
import { AuthThrottle, throttleAddress, type Refusal, type ThrottlePolicy } from './throttle.js';
import { errorMessage } from '../errors.js';

export interface KeyAuthenticatorOptions {
  /** How long a verified key is trusted without argon2 again. */
  cacheTtlMs: number;
  /** How often cached keys are re-checked for revocation and expiry (cheap: no argon2). */
  cacheRefreshMs: number;
}

export const DEFAULT_THROTTLE_POLICY: ThrottlePolicy = {
  freeFailures: 5,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  blockAfterFailures: 20,
  blockMs: 15 * 60_000,
  windowMs: 15 * 60_000,
  maxEntries: 50_000,
};

interface CacheEntry {
  /** The full SHA-256 of the key; the map is keyed by half of it and this half is compared in constant time. */
  digest: Buffer;
  identity: Identity;
  expiresAt: number | null;
  verifiedAt: number;
}

/** What the store said about a key that was not in memory. */
type StoreVerdict =
  | { ok: true; record: ApiKeyRecord }
  | { ok: false; reason: Exclude<AuthFailureReason, 'throttled'>; record: ApiKeyRecord | null }
  | { ok: false; reason: 'throttled'; refusal: Refusal; record: null };

/** What one attempt learnt, for the auth_events row and the log line. */
interface Attempt {
  keyPrefix: string | null;
  record: Pick<Identity, 'keyId' | 'userId'> | null;
}

const LAST_USED_WRITE_INTERVAL_MS = 60_000;
// argon2id with the library defaults takes 64 MiB and ~100 ms of one core per check: two at a
// time bound both memory and CPU, and a queue longer than 64 is refused rather than grown.
const ARGON2_CONCURRENCY = 2;
const ARGON2_MAX_WAITING = 64;
const ARGON2_BUSY_RETRY_MS = 1_000;
// Longer than any key (generated: 57 characters; own: at most 256) with room for stray spaces.
const MAX_PRESENTED_KEY_CHARS = 1_024;
// A revocation committed just before the previous refresh read the clock is still found.
const INVALIDATION_LOOKBACK_MS = 5_000;
// Failures that say nothing about guessing (no key sent, or a valid key used for the wrong thing)
// do not count towards throttling.
const NOT_THROTTLED: ReadonlySet<AuthFailureReason> = new Set(['missing', 'insufficient_scope', 'throttled']);

/**
 * Verifies API keys with argon2id once, then serves them from memory keyed by the SHA-256 of the
 * presented key (never the key itself). Revocation and expiry take effect within cacheRefreshMs,
 * also when another process (the CLI) revoked the key, and listeners (the MQTT broker) are told
 * so that they can close connections made with it. Failed attempts are throttled per remote
 * address and per key prefix, and every attempt is reported to the auth event log.
 */
export class KeyAuthenticator implements Authenticator, Component {
  readonly #keys: KeyStore;
  readonly #options: KeyAuthenticatorOptions;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #throttle: AuthThrottle;
  readonly #events: AuthEventSink | null;
  readonly #argon2 = new Semaphore(ARGON2_CONCURRENCY, ARGON2_MAX_WAITING);
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inFlight = new Map<string, Promise<StoreVerdict>>();
  readonly #lastUsedWritten = new Map<string, number>();
  readonly #usedSinceWrite = new Set<string>();
  readonly #listeners = new Set<(keyIds: readonly string[]) => void>();
  #invalidationClock: Date | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** The refresh round in progress, which stop() waits for so that no query outlives it. */
  #refreshing: Promise<void> | null = null;

  constructor(deps: {
    keys: KeyStore;
    options: KeyAuthenticatorOptions;
    logger: Logger;
    metrics: Metrics;
    throttle?: AuthThrottle;
    events?: AuthEventSink;
  }) {
    this.#keys = deps.keys;
    this.#options = deps.options;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    this.#throttle = deps.throttle ?? new AuthThrottle(DEFAULT_THROTTLE_POLICY);
    this.#events = deps.events ?? null;
    const throttle = this.#throttle;
    this.#metrics.observeAuthBlocked(() => throttle.blockedCounts());
  }

  async start(): Promise<void> {
    if (this.#timer) return;
    // Only revocations from now on matter: no connection made with an older one exists.
    this.#invalidationClock = (await this.#keys.invalidatedSince(null)).now;
    this.#timer = setInterval(() => void this.refresh(), this.#options.cacheRefreshMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#refreshing;
    await this.#flushLastUsed().catch(() => undefined);
    this.#cache.clear();
  }

  onKeysInvalidated(listener: (keyIds: readonly string[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Forgets the given keys at once and tells the listeners (used when this process revokes a key). */
  invalidate(keyIds: readonly string[]): void {
    if (keyIds.length === 0) return;
    const ids = new Set(keyIds);
    for (const [slot, entry] of this.#cache) if (ids.has(entry.identity.keyId)) this.#cache.delete(slot);
    for (const listener of this.#listeners) {
      try {
        listener(keyIds);
      } catch (err) {
        this.#logger.error({ error: errorMessage(err) }, 'key invalidation listener failed');
      }
    }
  }

  async verify(presentedKey: string | undefined, context: AuthContext): Promise<AuthOutcome> {
    const attempt: Attempt = { keyPrefix: null, record: null };
    let outcome: AuthOutcome;
    try {
      outcome = await this.#check(presentedKey, context, attempt);
    } catch (err) {
      this.#report(context, attempt, 'failure', 'unavailable');
      throw err;
    }
    this.#metrics.authAttempts.inc({ transport: context.transport, outcome: outcome.ok ? 'ok' : outcome.reason });
    if (outcome.ok) {
      this.#noteUse(outcome.identity.keyId);
      this.#report(context, attempt, 'success', null);
    } else {
      this.#report(context, attempt, outcome.reason === 'throttled' ? 'throttled' : 'failure', outcome.reason);
    }
    return outcome;
  }

  async #check(presentedKey: string | undefined, context: AuthContext, attempt: Attempt): Promise<AuthOutcome> {
    const address = throttleAddress(context.remoteAddress);
    // A blocked address costs a map lookup: no hashing, no database, no argon2.
    const addressBlock = this.#throttle.addressRefusal(address);
    if (addressBlock) return this.#refuse(addressBlock, context);
    if (context.ambiguousKey) return this.#failed('ambiguous', address, null, context);
    if (presentedKey === undefined) return { ok: false, reason: 'missing' };
    // An MQTT password can be as large as a packet: refuse what no key can be before hashing it.
    if (presentedKey.length > MAX_PRESENTED_KEY_CHARS) return this.#failed('malformed', address, null, context);
    if (presentedKey.trim() === '') return { ok: false, reason: 'missing' };

    const key = presentedKey.trim();
    const digest = createHash('sha256').update(key).digest();
    const cached = this.#cached(digest);
    if (cached) {
      attempt.keyPrefix = cached.identity.keyPrefix;
      attempt.record = cached.identity;
      if (cached.expiresAt !== null && cached.expiresAt <= Date.now()) {
        this.invalidate([cached.identity.keyId]);
        return this.#failed('expired', address, cached.identity.keyPrefix, context);
      }
      return authorize(cached.identity, context);
    }

    const lookup = lookupOf(key);
    if (lookup === null) {
      attempt.keyPrefix = parseKey(key)?.prefix ?? null;
      return this.#failed('malformed', address, null, context);
    }
    // A key under attack is refused without argon2; its owner still gets in from the cache above.
    const keyBlock = this.#throttle.keyRefusal(lookup);
    if (keyBlock) {
      attempt.keyPrefix = lookup;
      return this.#refuse(keyBlock, context);
    }
    const delay = this.#throttle.delayMs(address, lookup);
    if (delay > 0) {
      this.#metrics.authThrottled.inc({ transport: context.transport, action: 'delayed' });
      await sleep(delay);
    }

    // Parallel attempts all pass the checks above before the first of them fails: look again
    // right before argon2, so that a block reached meanwhile stops the rest.
    const stillAllowed = () => this.#throttle.refusal(address, lookup);
    const verdict = await this.#verifyShared(key, lookup, digest, stillAllowed);
    if (verdict.record) {
      attempt.keyPrefix = verdict.record.prefix;
      attempt.record = { keyId: verdict.record.id, userId: verdict.record.userId };
    } else if (!lookup.startsWith('own_')) {
      // The public part of a generated key is harmless to keep; an unknown own key's hash is not kept.
      attempt.keyPrefix = lookup;
    }
    if (!verdict.ok) {
      if (verdict.reason === 'throttled') return this.#refuse(verdict.refusal, context);
      // Only a prefix that exists is worth protecting; unknown ones would just fill the table.
      return this.#failed(verdict.reason, address, verdict.record ? lookup : null, context);
    }
    return authorize(identityOf(verdict.record), context);
  }

  #cached(digest: Buffer): CacheEntry | null {
    const entry = this.#cache.get(digest.toString('base64', 0, 16));
    if (!entry || Date.now() - entry.verifiedAt >= this.#options.cacheTtlMs) return null;
    return timingSafeEqual(entry.digest, digest) ? entry : null;
  }

  #verifyShared(key: string, lookup: string, digest: Buffer, stillAllowed: () => Refusal | null): Promise<StoreVerdict> {
    // Many connections with the same key arrive together after a reconnect storm: verify once.
    const slot = digest.toString('base64');
    let pending = this.#inFlight.get(slot);
    if (!pending) {
      pending = this.#verifyAgainstStore(key, lookup, digest, stillAllowed).finally(() => this.#inFlight.delete(slot));
      this.#inFlight.set(slot, pending);
    }
    return pending;
  }

  async #verifyAgainstStore(key: string, lookup: string, digest: Buffer, stillAllowed: () => Refusal | null): Promise<StoreVerdict> {
    const record = await this.#keys.findByPrefix(lookup);
    // argon2 runs only for a lookup value that exists, so a flood of made-up keys costs no argon2.
    if (!record) return { ok: false, reason: 'unknown_key', record: null };
    const release = await this.#argon2.tryAcquire();
    if (!release) return { ok: false, reason: 'throttled', refusal: { scope: 'key', retryAfterMs: ARGON2_BUSY_RETRY_MS }, record: null };
    let matches: boolean;
    try {
      const refusal = stillAllowed();
      if (refusal) return { ok: false, reason: 'throttled', refusal, record: null };
      matches = await verifySecret(record, key);
    } finally {
      // The next waiter goes after this attempt's failure is counted (in #check, a few microtasks
      // on), so that its look at the throttle sees it.
      setImmediate(release);
    }
    // Revocation and expiry are told only to someone who has the secret.
    if (!matches) return { ok: false, reason: 'wrong_secret', record };
    if (record.revokedAt) return { ok: false, reason: 'revoked', record };
    if (record.expiresAt && record.expiresAt.getTime() <= Date.now()) return { ok: false, reason: 'expired', record };
    this.#cache.set(digest.toString('base64', 0, 16), {
      digest,
      identity: identityOf(record),
      expiresAt: record.expiresAt?.getTime() ?? null,
      verifiedAt: Date.now(),
    });
    return { ok: true, record };
  }

  #failed(reason: AuthFailureReason, address: string, lookup: string | null, context: AuthContext): AuthOutcome {
    if (!NOT_THROTTLED.has(reason)) {
      for (const scope of this.#throttle.recordFailure(address, lookup)) {
        this.#metrics.authBlocks.inc({ scope });
        this.#logger.warn(
          { scope, remoteAddress: context.remoteAddress, keyPrefix: scope === 'key' ? lookup : undefined, transport: context.transport },
          scope === 'address' ? 'auth: too many failed attempts from this address; blocked for a while' : 'auth: too many failed attempts for this key; blocked for a while',
        );
      }
    }
    return { ok: false, reason };
  }

  #refuse(refusal: Refusal, context: AuthContext): AuthOutcome {
    this.#metrics.authThrottled.inc({ transport: context.transport, action: 'refused' });
    return { ok: false, reason: 'throttled', retryAfterSeconds: Math.max(1, Math.ceil(refusal.retryAfterMs / 1000)) };
  }

  #report(context: AuthContext, attempt: Attempt, outcome: 'success' | 'failure' | 'throttled', reason: string | null): void {
    const fields = {
      transport: context.transport,
      reason: reason ?? undefined,
      remoteAddress: context.remoteAddress,
      clientId: context.clientId,
      keyPrefix: attempt.keyPrefix ?? undefined,
    };
    // Throttled refusals are counted, not logged one by one: under a flood they are most attempts.
    if (outcome === 'failure') this.#logger.info(fields, 'auth: attempt failed');
    else this.#logger.debug(fields, outcome === 'success' ? 'auth: attempt succeeded' : 'auth: attempt throttled');
    this.#events?.record({
      at: new Date(),
      outcome,
      reason,
      transport: context.transport,
      remoteAddress: context.remoteAddress ?? null,
      clientId: context.clientId ?? null,
      keyPrefix: attempt.keyPrefix,
      keyId: attempt.record?.keyId ?? null,
      userId: attempt.record?.userId ?? null,
    });
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

  /** One refresh round; runs on a timer, public for tests. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refreshOnce().finally(() => (this.#refreshing = null));
    return this.#refreshing;
  }

  async #refreshOnce(): Promise<void> {
    try {
      const now = Date.now();
      for (const [slot, entry] of this.#cache) {
        if (now - entry.verifiedAt >= this.#options.cacheTtlMs) this.#cache.delete(slot);
      }
      this.#throttle.sweep();
      const invalid = new Set<string>();
      // Keys revoked or expired since the last round, in memory or not: connected MQTT clients
      // may hold keys that the cache has long forgotten.
      const since = this.#invalidationClock && new Date(this.#invalidationClock.getTime() - INVALIDATION_LOOKBACK_MS);
      const changed = await this.#keys.invalidatedSince(since);
      this.#invalidationClock = changed.now;
      for (const id of changed.ids) invalid.add(id);
      // And cached keys that vanished (user deleted).
      const cachedIds = [...new Set([...this.#cache.values()].map((e) => e.identity.keyId))];
      if (cachedIds.length > 0) {
        const usable = await this.#keys.usableAmong(cachedIds);
        for (const id of cachedIds) if (!usable.has(id)) invalid.add(id);
      }
      if (invalid.size > 0) {
        const inCache = [...this.#cache.values()].filter((e) => invalid.has(e.identity.keyId));
        for (const entry of inCache) this.#logger.info({ keyId: entry.identity.keyId, user: entry.identity.userName }, 'key no longer usable; dropped from cache');
        this.invalidate([...invalid]);
      }
      await this.#flushLastUsed();
    } catch (err) {
      // Keep serving from cache while the database is away; the next tick retries.
      this.#logger.warn({ error: errorMessage(err) }, 'key cache refresh failed');
    }
  }
}

function identityOf(record: ApiKeyRecord): Identity {
  return { userId: record.userId, userName: record.userName, keyId: record.id, keyPrefix: record.prefix, scopes: record.scopes };
}

function authorize(identity: Identity, context: AuthContext): AuthOutcome {
  if (context.requiredScope && !identity.scopes.includes(context.requiredScope)) return { ok: false, reason: 'insufficient_scope' };
  return { ok: true, identity };
}
