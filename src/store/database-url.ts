import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { EmbeddedPostgres } from './embedded-postgres.js';

export interface DatabaseTarget {
  connectionString: string;
  /** Present when the database is the embedded one; stop it after everything else. */
  embedded: EmbeddedPostgres | null;
}

/**
 * DATABASE_URL when set, else the embedded PostgreSQL under DATA_DIR. `stopAdopted: false` is for
 * the CLI: it must not stop a server the running daemon uses.
 */
export async function openDatabaseTarget(config: Config, logger: Logger, options: { stopAdopted: boolean }): Promise<DatabaseTarget> {
  if (config.database.url) return { connectionString: config.database.url, embedded: null };
  const embedded = new EmbeddedPostgres({
    dataDir: config.dataDir,
    port: config.embeddedPostgres.port,
    logger,
    stopAdopted: options.stopAdopted,
  });
  await embedded.start();
  return { connectionString: embedded.connectionString, embedded };
}
