import type { Scope } from '../../broker/types.js';
import { AppError } from '../errors.js';

export const SCOPES = ['ingest', 'read', 'admin'] as const satisfies readonly Scope[];
export const DEFAULT_SCOPES: readonly Scope[] = ['ingest'];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** The scopes asked for, without repeats; none given means ingest only. */
export function parseScopes(values: readonly string[] | undefined): Scope[] {
  if (!values || values.length === 0) return [...DEFAULT_SCOPES];
  const scopes = new Set<Scope>();
  for (const raw of values) {
    // `--scope ingest,admin` reads as naturally as `--scope ingest --scope admin`.
    for (const value of raw.split(',').map((v) => v.trim().toLowerCase())) {
      if (!isScope(value)) throw new AppError('SS_KEY_REQUEST_INVALID', `unknown scope "${value}"; use ${SCOPES.join(', ')}`);
      scopes.add(value);
    }
  }
  return [...scopes];
}

const DURATION = /^(\d{1,5})\s*(h|d|w|y)$/i;
const UNIT_MS: Record<string, number> = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000, y: 365 * 86_400_000 };
// An ISO date (midnight UTC) or date-time; a bare time without a date is not accepted.
const ISO = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * An expiry given as a duration from now (`12h`, `90d`, `4w`, `1y`) or as an ISO date or
 * date-time (a date alone means midnight UTC; a date-time without offset means UTC). It must lie
 * in the future.
 */
export function parseExpiry(text: string, now = new Date()): Date {
  const value = text.trim();
  const duration = DURATION.exec(value);
  let at: Date;
  if (duration) {
    at = new Date(now.getTime() + Number(duration[1]) * UNIT_MS[duration[2]!.toLowerCase()]!);
  } else if (ISO.test(value)) {
    const hasZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(value) && value.length > 10;
    at = new Date(value.length === 10 ? `${value}T00:00:00Z` : hasZone ? value : `${value.replace(' ', 'T')}Z`);
  } else {
    throw new AppError('SS_KEY_REQUEST_INVALID', `expiry "${value}" is neither a duration (12h, 90d, 4w, 1y) nor an ISO date (2027-01-31)`);
  }
  if (Number.isNaN(at.getTime())) throw new AppError('SS_KEY_REQUEST_INVALID', `expiry "${value}" is not a valid date`);
  if (at.getTime() <= now.getTime()) throw new AppError('SS_KEY_REQUEST_INVALID', `expiry "${value}" is not in the future`);
  return at;
}
