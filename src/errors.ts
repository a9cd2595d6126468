/**
 * The one catalogue of error codes. Every code is documented in docs/errors.md; a code is never
 * reused for another meaning once released.
 */
export const errorCatalogue = {
  SS_CONFIG_INVALID: { status: 500, message: 'Configuration is invalid' },
  SS_SCHEMA_TOO_NEW: { status: 500, message: 'The database schema is newer than this version of self-sensored' },
  SS_MIGRATION_FAILED: { status: 500, message: 'A database migration failed' },
  SS_EMBEDDED_PG_FAILED: { status: 500, message: 'The embedded PostgreSQL could not be started' },
  SS_DB_UNAVAILABLE: { status: 503, message: 'The database is unavailable' },
  SS_SHUTTING_DOWN: { status: 503, message: 'The server is shutting down' },
  SS_NOT_READY: { status: 503, message: 'The server is not ready yet' },
  SS_AUTH_MISSING: { status: 401, message: 'An API key is required' },
  SS_AUTH_INVALID: { status: 401, message: 'The API key is not valid' },
  SS_AUTH_FORBIDDEN: { status: 403, message: 'The API key does not have the scope this needs' },
  SS_AUTH_AMBIGUOUS: { status: 400, message: 'The request carries more than one API key' },
  SS_AUTH_THROTTLED: { status: 429, message: 'Too many failed authentication attempts; try again later' },
  SS_BODY_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  SS_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body must be application/json' },
  SS_UNSUPPORTED_ENCODING: { status: 415, message: 'The content encoding is not supported' },
  SS_BAD_GZIP: { status: 400, message: 'The gzip body could not be decompressed' },
  SS_INVALID_JSON: { status: 400, message: 'The body is not valid JSON' },
  SS_JSON_TOO_DEEP: { status: 400, message: 'The JSON nests objects and arrays too deeply' },
  SS_JSON_STRING_TOO_LONG: { status: 400, message: 'The JSON holds a string that is too long' },
  SS_RATE_LIMITED: { status: 429, message: 'Too many requests' },
  SS_NOT_FOUND: { status: 404, message: 'Not found' },
  SS_METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed' },
  SS_REQUEST_TIMEOUT: { status: 408, message: 'The request took too long to arrive' },
  SS_KEY_NOT_FOUND: { status: 404, message: 'No such API key' },
  SS_KEY_EXISTS: { status: 409, message: 'This key is already registered' },
  SS_KEY_TOO_WEAK: { status: 400, message: 'The chosen key is too weak' },
  SS_KEY_REQUEST_INVALID: { status: 400, message: 'The key request is not valid' },
  SS_USAGE: { status: 400, message: 'Invalid command usage' },
  SS_INTERNAL: { status: 500, message: 'Internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message ?? errorCatalogue[code].message, options);
    this.name = 'AppError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.details = details;
  }

  toJSON(): { error: { code: ErrorCode; message: string } & Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

/**
 * Reasons an individual item inside a payload is rejected. These appear in the REST answer,
 * in raw_ingestions.rejections and in the rejections metric label.
 */
export const rejectionCatalogue = {
  invalid_date: 'The date is missing or not in a format Health Auto Export uses',
  date_out_of_range: 'The date is outside the range that is stored',
  missing_value: 'A required value is missing',
  not_a_number: 'A value that must be a number is not one',
  out_of_range: 'A value is outside the range that is physically possible',
  invalid_shape: 'The item does not have the shape this data type needs',
  unstorable_text: 'A text contains the character U+0000, which PostgreSQL cannot store',
  text_too_long: 'A text field is longer than 1,024 bytes, more than a name, source or id can be',
  unsupported_type: 'This data type is kept in the raw payload but not stored in tables yet',
  unknown_key: 'This top-level key is not a Health Auto Export data type; it is kept in the raw payload',
  not_an_export: 'The JSON is not a Health Auto Export payload (no "data" object)',
} as const;

export type RejectionReason = keyof typeof rejectionCatalogue;

/** Postgres and network errors that a retry can cure (connection lost, server restarting). */
/** The message of anything thrown: an Error's message, else its string form. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isTransientDatabaseError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN'].includes(code)) return true;
    // Class 08: connection exceptions; 57P0x: admin shutdown, crash shutdown, cannot connect now;
    // 53xxx: insufficient resources; 40001/40P01: serialization failure, deadlock.
    if (code.startsWith('08') || code.startsWith('57P') || code.startsWith('53') || code === '40001' || code === '40P01') return true;
  }
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(err.message);
}
