import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatIngestionTable, ingestionToJson, type IngestionSummary } from './ingestion-table.js';
import { StoredPayloadRunner, totalsOf, totalsText } from './stored-payload.js';

const STATUSES = ['received', 'processed', 'failed'] as const;
type Status = (typeof STATUSES)[number];

export type IngestionsCommand =
  | { kind: 'list'; status: Status | null; limit: number; json: boolean }
  | { kind: 'retry'; id: string; json: boolean };

const USAGE = 'usage: self-sensored ingestions list [--status received|processed|failed] [--limit N] [--json] | ingestions retry ID';

/** Checks the arguments before any database is started (a usage error must not wait for one). */
export function parseIngestionsCommand(
  sub: string | undefined,
  arg: string | undefined,
  values: { status?: string | undefined; limit?: string | undefined; json: boolean },
): IngestionsCommand {
  if (sub === 'list') {
    if (values.status !== undefined && !(STATUSES as readonly string[]).includes(values.status)) {
      throw new AppError('SS_USAGE', `--status must be one of ${STATUSES.join(', ')}`);
    }
    const limit = values.limit === undefined ? 50 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new AppError('SS_USAGE', '--limit must be a whole number above 0');
    return { kind: 'list', status: (values.status as Status | undefined) ?? null, limit, json: values.json };
  }
  if (sub === 'retry') {
    if (!arg || !/^\d{1,18}$/.test(arg)) throw new AppError('SS_USAGE', 'ingestions retry needs the ingestion ID (a number, see `ingestions list`)');
    return { kind: 'retry', id: arg, json: values.json };
  }
  throw new AppError('SS_USAGE', USAGE);
}

export async function runIngestionsCommand(cmd: IngestionsCommand, pool: pg.Pool, config: Config, log: Logger): Promise<number> {
  if (cmd.kind === 'list') {
    const list = await listIngestions(pool, cmd.status, cmd.limit);
    process.stdout.write(cmd.json ? `${JSON.stringify(list.map(ingestionToJson), null, 2)}\n` : `${formatIngestionTable(list)}\n`);
    return 0;
  }
  return retryIngestion(cmd.id, cmd.json, pool, config, log);
}

async function listIngestions(pool: pg.Pool, status: Status | null, limit: number): Promise<IngestionSummary[]> {
  const { rows } = await pool.query<{
    id: string;
    received_at: Date;
    user_name: string;
    transport: string;
    size_bytes: number;
    status: string;
    attempts: number;
    receive_count: number;
    processed_at: Date | null;
    rejected_count: number;
    error: string | null;
  }>(
    `SELECT r.id, r.received_at, u.name AS user_name, r.transport, r.size_bytes, r.status, r.attempts, r.receive_count,
            r.processed_at, r.rejected_count, r.error
       FROM raw_ingestions r JOIN users u ON u.id = r.user_id
      WHERE $1::text IS NULL OR r.status = $1
      ORDER BY r.id DESC
      LIMIT $2`,
    [status, limit],
  );
  return rows.map((r) => ({
    id: String(r.id),
    receivedAt: r.received_at,
    user: r.user_name,
    transport: r.transport,
    sizeBytes: Number(r.size_bytes),
    status: r.status,
    attempts: Number(r.attempts),
    receiveCount: Number(r.receive_count),
    processedAt: r.processed_at,
    rejected: Number(r.rejected_count),
    error: r.error,
  }));
}

/**
 * Resets the payload to 'received' (so that, should this process die, the daemon picks it up at
 * its next start) and processes it here and now. A processed payload is left alone: re-deriving
 * it is what `reprocess` is for.
 */
async function retryIngestion(id: string, json: boolean, pool: pg.Pool, config: Config, log: Logger): Promise<number> {
  const { rows } = await pool.query<{ user_id: string; previous: string }>(
    `UPDATE raw_ingestions r SET status = 'received', error = NULL
       FROM (SELECT id, status FROM raw_ingestions WHERE id = $1 FOR UPDATE) old
      WHERE r.id = old.id AND old.status IN ('received', 'failed')
      RETURNING r.user_id, old.status AS previous`,
    [id],
  );
  if (!rows[0]) {
    const found = await pool.query<{ status: string }>('SELECT status FROM raw_ingestions WHERE id = $1', [id]);
    if (!found.rows[0]) throw new AppError('SS_NOT_FOUND', `no ingestion with id ${id}`);
    throw new AppError('SS_USAGE', `ingestion ${id} is already ${found.rows[0].status}; to re-derive its rows use: self-sensored reprocess`);
  }
  const outcome = await new StoredPayloadRunner(pool, config, log).run(id, String(rows[0].user_id));
  const { rows: after } = await pool.query<{ status: string; attempts: number }>('SELECT status, attempts FROM raw_ingestions WHERE id = $1', [id]);
  const state = { status: after[0]?.status ?? 'unknown', attempts: Number(after[0]?.attempts ?? 0) };
  if (outcome.ok) {
    const totals = totalsOf(outcome.processed);
    process.stdout.write(
      json
        ? `${JSON.stringify({ id, ...state, ...totals, counts: outcome.processed.result.counts })}\n`
        : `ingestion ${id}: processed (was ${rows[0].previous}; attempt ${state.attempts}): ${totalsText(totals)}\n`,
    );
    return 0;
  }
  if (json) process.stdout.write(`${JSON.stringify({ id, ...state, error: outcome.error })}\n`);
  process.stderr.write(`self-sensored: ingestion ${id} failed again (attempt ${state.attempts}): ${outcome.error}\n`);
  return 1;
}
