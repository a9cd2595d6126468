import type pg from 'pg';
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';

/** What ss_enable_postgis() found (migration 0003), or 'failed' when calling it failed. */
export type PostgisStatus = 'enabled' | 'unavailable' | 'not_permitted' | 'failed';

/**
 * Gives workout routes their PostGIS geography column and GiST index when the server has
 * PostGIS. Called at every start (after the migrations), because PostGIS may have been installed
 * on the server after the database was created; once done it is a catalog lookup and takes no
 * lock. Never throws: routes work without PostGIS, so a failure here must not stop the daemon.
 */
export async function enablePostgisIfAvailable(pool: pg.Pool, logger: Logger): Promise<PostgisStatus> {
  let status: PostgisStatus;
  try {
    const { rows } = await pool.query<{ status: string }>('SELECT ss_enable_postgis() AS status');
    status = parseStatus(rows[0]?.status);
  } catch (err) {
    logger.warn({ error: errorMessage(err) }, 'enabling PostGIS failed; route queries use latitude/longitude');
    return 'failed';
  }
  if (status === 'enabled') logger.info('PostGIS enabled: workout routes have a geography column and a GiST index');
  else if (status === 'not_permitted') {
    logger.warn('PostGIS is installed on the server but this database role may not create the extension; a superuser can run CREATE EXTENSION postgis in this database, then restart');
  } else logger.debug({ status }, 'PostGIS not available on the server; route queries use latitude/longitude');
  return status;
}

function parseStatus(value: string | undefined): PostgisStatus {
  return value === 'enabled' || value === 'unavailable' || value === 'not_permitted' ? value : 'failed';
}
