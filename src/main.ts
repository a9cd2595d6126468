import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { App } from './app.js';
import type { CreatedKey } from './auth/key-store.js';
import { parseAuthEventsCommand, runAuthEventsCommand } from './cli/auth-events.js';
import { parseIngestionsCommand, runIngestionsCommand } from './cli/ingestions.js';
import { KEYS_USAGE, parseKeysCommand, runKeysCommand } from './cli/keys.js';
import { parseReprocessCommand, runReprocess } from './cli/reprocess.js';
import { loadConfigFromEnvironment } from './config/load.js';
import type { Config } from './config/schema.js';
import { AppError } from './errors.js';
import { disableAllocationSitePretenuring } from './heap-tuning.js';
import { createLogger, type Logger } from './log.js';
import { appSettingsText, guessPublicHost, suggestedTopic } from './onboarding.js';
import { migrationsDir, projectRoot } from './paths.js';
import { openDatabaseTarget } from './store/database-url.js';
import { loadMigrations, migrate } from './store/migrator.js';
import { Database } from './store/pool.js';

const USAGE = `Usage: self-sensored [--config FILE] <command>

Commands:
  start                                   run the daemon (the default)
  migrate                                 apply database migrations and exit
${KEYS_USAGE}
  auth-events [--limit N] [--json]        latest authentication attempts, newest first (default 50)
  ingestions list [--status received|processed|failed] [--limit N] [--json]
                                          list stored payloads, newest first (default 50)
  ingestions retry ID                     process a failed (or waiting) payload now; exit 1 if it fails again
  reprocess [--since DATE] [--status processed|failed|all] [--json]
                                          re-derive rows from stored payloads, oldest first
                                          (idempotent; safe while the daemon runs)
  help | --help, version | --version

Settings come from environment variables (see config/self-sensored.example.env).`;

function version(): string {
  return (JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' },
      user: { type: 'string' },
      label: { type: 'string' },
      scope: { type: 'string', multiple: true },
      expires: { type: 'string' },
      key: { type: 'string' },
      status: { type: 'string' },
      limit: { type: 'string' },
      since: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', short: 'v', default: false },
    },
  });
  const [command = 'start', sub, arg] = positionals;
  if (values.help || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version || command === 'version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const config = loadConfigFromEnvironment(values.config);
  switch (command) {
    case 'start':
      return runDaemon(config);
    case 'migrate':
      return withDatabase(config, async (db, log) => {
        const report = await migrate(db.pool, await loadMigrations(migrationsDir), log);
        process.stdout.write(`schema at version ${report.current}; applied: ${report.applied.length ? report.applied.join(', ') : 'none'}\n`);
        return 0;
      });
    case 'keys': {
      const cmd = parseKeysCommand(sub, arg, values);
      return withDatabase(config, (db) =>
        runKeysCommand(cmd, db.pool, {
          stdin: process.stdin,
          write: (text) => process.stdout.write(text),
          warn: (text) => process.stderr.write(text),
          createdText: (created) => createdKeyText(config, created),
        }),
      );
    }
    case 'auth-events': {
      if (sub !== undefined) throw new AppError('SS_USAGE', `auth-events takes no argument ("${sub}"); use --limit N`);
      const cmd = parseAuthEventsCommand(values);
      return withDatabase(config, (db) => runAuthEventsCommand(cmd, db.pool, (text) => process.stdout.write(text)));
    }
    case 'ingestions': {
      // Parsed first: usage errors are reported before the database is started for nothing.
      const cmd = parseIngestionsCommand(sub, arg, values);
      return withDatabase(config, (db, log) => runIngestionsCommand(cmd, db.pool, config, log));
    }
    case 'reprocess': {
      if (sub !== undefined) throw new AppError('SS_USAGE', `reprocess takes no argument ("${sub}"); use --since DATE and --status`);
      const cmd = parseReprocessCommand(values);
      return withDatabase(config, (db, log) => runReprocess(cmd, db.pool, config, log));
    }
    default:
      throw new AppError('SS_USAGE', `unknown command "${command}"\n\n${USAGE}`);
  }
}

function createdKeyText(config: Config, created: CreatedKey): string {
  const settings = appSettingsText({
    host: guessPublicHost(config.publicHost),
    httpPort: config.http.port,
    wsPath: config.mqtt.wsPath,
    tcpPort: config.mqtt.tcpEnabled ? config.mqtt.tcpPort : null,
    topic: suggestedTopic(config.mqtt.ingestTopicFilter, created.userName),
    userName: created.userName,
    key: created.key,
  });
  const expiry = created.expiresAt ? `expires ${created.expiresAt.toISOString()}` : 'never expires';
  return [
    `API key for user "${created.userName}" (id ${created.id}; scopes ${created.scopes.join(', ')}; ${expiry}). It is shown only now: store it.`,
    '',
    `  ${created.key}`,
    '',
    settings,
  ].join('\n');
}

/** CLI commands share the daemon's database: the embedded one is started if not running. */
async function withDatabase(config: Config, fn: (db: Database, log: Logger) => Promise<number>): Promise<number> {
  // Logs go to stderr so that stdout carries only the answer (and --json stays parseable).
  const log = createLogger(config.log.level === 'info' ? 'warn' : config.log.level, pino.destination(2));
  const target = await openDatabaseTarget(config, log, { stopAdopted: false });
  const db = new Database({ connectionString: target.connectionString, poolMax: 2, applicationName: 'self-sensored-cli' }, log);
  try {
    await db.start();
    await migrate(db.pool, await loadMigrations(migrationsDir), log);
    return await fn(db, log);
  } finally {
    await db.stop().catch(() => undefined);
    await target.embedded?.stop();
  }
}

async function runDaemon(config: Config): Promise<number> {
  const logger = createLogger(config.log.level);
  const app = new App({
    config,
    logger,
    version: version(),
    onBootstrapKey: (created) => {
      // Once, to the terminal: this is the only time the key can be shown.
      const adminHint = 'This key can only send data. To manage keys over HTTP, create an admin key:\n  self-sensored keys create --user NAME --scope admin --expires 90d';
      process.stderr.write(`\n${'='.repeat(72)}\nself-sensored created its first ${createdKeyText(config, created)}\n\n${adminHint}\n${'='.repeat(72)}\n\n`);
    },
  });
  let signals = 0;
  const done = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting without finishing the shutdown');
        process.exit(1);
      }
      logger.info({ signal }, 'signal received');
      app.stop().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  // SIGHUP re-reads TLS_CERT_FILE and TLS_KEY_FILE (e.g. from a certificate renewal hook);
  // the daemon keeps running either way, and a bad new pair leaves the old one in use.
  process.on('SIGHUP', () => {
    if (!app.config.tls) logger.info({ signal: 'SIGHUP' }, 'signal received; TLS is off, nothing to reload');
    else if (app.reloadTls()) logger.info({ signal: 'SIGHUP' }, 'signal received; TLS certificate reloaded');
  });

  try {
    await app.start();
  } catch (err) {
    logger.fatal({ error: errorForLog(err) }, 'start failed');
    await app.stop().catch(() => undefined);
    return 1;
  }
  return done;
}

function errorForLog(err: unknown): unknown {
  if (err instanceof AppError) return { code: err.code, message: err.message, ...err.details };
  return err instanceof Error ? { message: err.message, stack: err.stack } : err;
}

// Before any payload is parsed: the daemon and `reprocess` both read large exports and small ones.
disableAllocationSitePretenuring();
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof AppError) process.stderr.write(`self-sensored: ${err.message} [${err.code}]\n`);
    else if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) process.stderr.write(`self-sensored: ${err.message}\n\n${USAGE}\n`);
    else process.stderr.write(`self-sensored: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = err instanceof AppError && err.code === 'SS_USAGE' ? 2 : 1;
  },
);
