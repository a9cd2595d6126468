import type { IncomingMessage, ServerResponse } from 'node:http';

/** Only the request headers the API reads: credentials, body type and compression. */
const ALLOWED_HEADERS = 'Authorization, Content-Type, Content-Encoding, X-API-Key, api-key';
/** Headers a browser script may read from the answers. */
const EXPOSED_HEADERS = 'Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset';
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * CORS for the origins in CORS_ORIGINS. With none configured nothing is added at all and a
 * preflight gets the ordinary 405. Credentials mode is never allowed: the API authenticates with
 * a header a script sets explicitly, not with cookies, so Access-Control-Allow-Credentials is
 * never sent and a wildcard origin is refused by the config rather than half-supported.
 */
export class CorsPolicy {
  readonly #origins: ReadonlySet<string>;

  constructor(origins: readonly string[]) {
    this.#origins = new Set(origins.map((o) => new URL(o).origin));
  }

  get enabled(): boolean {
    return this.#origins.size > 0;
  }

  /** Adds the CORS headers an ordinary answer needs. */
  decorate(req: IncomingMessage, res: ServerResponse): void {
    if (!this.enabled) return;
    // The answer differs by Origin, so a cache must keep them apart even when none matched.
    res.setHeader('Vary', 'Origin');
    const origin = this.#allowedOrigin(req);
    if (origin === null) return;
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
  }

  /**
   * Answers a preflight from an allowed origin for a method the route takes, and returns true.
   * Anything else returns false and is answered as if CORS did not exist (405, no CORS headers).
   */
  answerPreflight(req: IncomingMessage, res: ServerResponse, routeMethods: readonly string[]): boolean {
    const requested = req.headers['access-control-request-method'];
    if (req.method !== 'OPTIONS' || requested === undefined || this.#allowedOrigin(req) === null) return false;
    if (!routeMethods.includes(requested)) return false;
    res.writeHead(204, {
      'Access-Control-Allow-Methods': routeMethods.join(', '),
      'Access-Control-Allow-Headers': ALLOWED_HEADERS,
      'Access-Control-Max-Age': String(PREFLIGHT_MAX_AGE_SECONDS),
      'Content-Length': 0,
    });
    res.end();
    return true;
  }

  #allowedOrigin(req: IncomingMessage): string | null {
    const origin = req.headers.origin;
    return origin !== undefined && this.#origins.has(origin) ? origin : null;
  }
}
