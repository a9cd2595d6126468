import { randomUUID } from 'node:crypto';
import argon2 from 'argon2';
import type pg from 'pg';
import type { Scope } from '../../broker/types.js';
import { AppError } from '../errors.js';
import { generateKey, ownKeyLookup } from './key-format.js';

export interface ApiKeyRecord {
  id: string;
  userId: string;
  userName: string;
  prefix: string;
  secretHash: string;
  label: string | null;
  scopes: Scope[];
  origin: 'generated' | 'own';
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

export type ApiKeySummary = Omit<ApiKeyRecord, 'secretHash'>;

export interface CreatedKey {
  id: string;
  key: string;
  prefix: string;
  userName: string;
  label: string | null;
  scopes: Scope[];
  origin: 'generated' | 'own';
  expiresAt: Date | null;
}

export interface NewKey {
  userName: string;
  label?: string | null;
  /** Default: ingest only. */
  scopes?: readonly Scope[];
  expiresAt?: Date | null;
  /** A key of the user's own choosing, already checked for strength; absent: a random key is made. */
  ownKey?: string;
}

const KNOWN_SCOPES: readonly Scope[] = ['ingest', 'read', 'admin'];

// OWASP's argon2id baseline (19 MiB, 2 passes) would do for random keys; the library default
// (64 MiB, 3 passes, 4 lanes) costs ~140 ms here, paid once per key thanks to the verify cache.
const HASH_OPTIONS = { type: argon2.argon2id } as const;

const selectKeys = `SELECT k.id, k.user_id, u.name AS user_name, k.prefix, k.secret_hash, k.label, k.scopes, k.origin,
  k.created_at, k.expires_at, k.revoked_at, k.last_used_at
  FROM api_keys k JOIN users u ON u.id = k.user_id`;

interface KeyRow {
  id: string;
  user_id: string;
  user_name: string;
  prefix: string;
  secret_hash: string;
  label: string | null;
  scopes: string[];
  origin: 'generated' | 'own';
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

function toRecord(r: KeyRow): ApiKeyRecord {
  return {
    id: r.id,
    userId: String(r.user_id),
    userName: r.user_name,
    prefix: r.prefix,
    secretHash: r.secret_hash,
    label: r.label,
    scopes: r.scopes.filter((s): s is Scope => (KNOWN_SCOPES as readonly string[]).includes(s)),
    origin: r.origin,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

/** Users and API keys in PostgreSQL. The plaintext key leaves this class once, from create(). */
export class KeyStore {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async create(input: NewKey): Promise<CreatedKey> {
    const userName = input.userName.trim();
    if (!/^[\p{L}\p{N}._@+-]{1,100}$/u.test(userName)) {
      throw new AppError('SS_USAGE', 'user names are 1 to 100 letters, digits or . _ @ + -');
    }
    const scopes: Scope[] = [...new Set<Scope>(input.scopes ?? ['ingest'])];
    const origin = input.ownKey === undefined ? 'generated' : 'own';
    const { key, prefix } = input.ownKey === undefined ? generateKey() : { key: input.ownKey, prefix: ownKeyLookup(input.ownKey) };
    const expiresAt = input.expiresAt ?? null;
    const secretHash = await argon2.hash(key, HASH_OPTIONS);
    const id = randomUUID();
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      const user = await client.query<{ id: string }>(
        `INSERT INTO users (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id`,
        [userName],
      );
      await client.query(
        `INSERT INTO api_keys (id, user_id, prefix, secret_hash, label, scopes, origin, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [id, user.rows[0]!.id, prefix, secretHash, input.label ?? null, scopes, origin, expiresAt],
      );
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // The lookup value is unique: the same own key (even a revoked one) cannot be registered twice.
      if ((err as { code?: string }).code === '23505' && origin === 'own') {
        throw new AppError('SS_KEY_EXISTS', 'this key is already registered (possibly revoked); choose another key', { prefix });
      }
      throw err;
    } finally {
      client.release();
    }
    return { id, key, prefix, userName, label: input.label ?? null, scopes, origin, expiresAt };
  }

  async findByPrefix(prefix: string): Promise<ApiKeyRecord | null> {
    const { rows } = await this.#pool.query<KeyRow>(`${selectKeys} WHERE k.prefix = $1`, [prefix]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async list(filter: { userName?: string | undefined } = {}): Promise<ApiKeySummary[]> {
    const { rows } = await this.#pool.query<KeyRow>(
      `${selectKeys} WHERE $1::text IS NULL OR u.name = $1 ORDER BY u.name, k.created_at`,
      [filter.userName ?? null],
    );
    return rows.map((r) => {
      const { secretHash: _hidden, ...summary } = toRecord(r);
      return summary;
    });
  }

  /** Revokes by key id (uuid) or by prefix. Returns false when no active key matched. */
  async revoke(idOrPrefix: string): Promise<boolean> {
    const result = await this.revokeReporting(idOrPrefix);
    return result !== null && !result.alreadyRevoked;
  }

  /**
   * Revokes by key id (uuid) or by prefix. Returns the key's id, and whether it was revoked
   * before; null when no key matched.
   */
  async revokeReporting(idOrPrefix: string): Promise<{ id: string; alreadyRevoked: boolean } | null> {
    const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrPrefix);
    // The old revoked_at is read in the same statement, so a second revoke keeps the first date.
    const { rows } = await this.#pool.query<{ id: string; already: boolean }>(
      `UPDATE api_keys k SET revoked_at = coalesce(k.revoked_at, now())
       FROM api_keys old WHERE old.id = k.id AND ${isUuid ? 'k.id = $1::uuid' : 'k.prefix = $1'}
       RETURNING k.id, old.revoked_at IS NOT NULL AS already`,
      [idOrPrefix],
    );
    return rows[0] ? { id: rows[0].id, alreadyRevoked: rows[0].already } : null;
  }

  async countUsable(): Promise<number> {
    const { rows } = await this.#pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
    );
    return Number(rows[0]!.n);
  }

  /** Of the given key ids, those still usable (not revoked, not expired). */
  async usableAmong(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const { rows } = await this.#pool.query<{ id: string }>(
      `SELECT id FROM api_keys WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
      [ids],
    );
    return new Set(rows.map((r) => r.id));
  }

  /**
   * Keys that became unusable (revoked, or reached their expiry) at or after `since`, by the
   * database's clock, and that clock's reading now for the next call. Revocations by another
   * process (the CLI) are found this way whether or not this process has the key in memory.
   */
  async invalidatedSince(since: Date | null): Promise<{ ids: string[]; now: Date }> {
    const { rows } = await this.#pool.query<{ now: Date; ids: string[] }>(
      `SELECT now() AS now, ARRAY(SELECT id::text FROM api_keys
         WHERE $1::timestamptz IS NOT NULL AND (revoked_at >= $1 OR (expires_at >= $1 AND expires_at <= now()))) AS ids`,
      [since],
    );
    return { ids: rows[0]!.ids, now: rows[0]!.now };
  }

  async touch(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#pool.query(`UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::uuid[])`, [ids]);
  }
}

export async function verifySecret(record: ApiKeyRecord, presented: string): Promise<boolean> {
  return argon2.verify(record.secretHash, presented);
}
