import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

export type { Logger };

// Anything that can carry a secret: API keys, passwords, auth headers, database URLs.
export const redactPaths = [
  'password',
  'apiKey',
  'secret',
  'key',
  'databaseUrl',
  'connectionString',
  '*.password',
  '*.apiKey',
  '*.secret',
  '*.connectionString',
  '*.databaseUrl',
  'token',
  'authorization',
  'redisUrl',
  '*.key',
  '*.token',
  '*.authorization',
  '*.redisUrl',
  '*.headers.authorization',
  '*.headers["x-api-key"]',
  '*.headers["api-key"]',
  '*.headers.cookie',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["api-key"]',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'self-sensored' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A postgres:// or redis:// URL with its password replaced, safe to log. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = 'redacted';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}
