import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { StoredPayloadRunner, totalsOf, totalsText, type CountTotals } from './stored-payload.js';

export interface ReprocessCommand {
  since: Date | null;
  /** 'received' payloads are never taken: they belong to the daemon's queue. */
  statuses: Array<'processed' | 'failed'>;
  json: boolean;
}

export interface ReprocessSummary extends CountTotals {
  payloads: number;
  failed: number;
  failures: Array<{ id: string; error: string }>;
}

/** Checks the arguments before any database is started. */
export function parseReprocessCommand(values: { since?: string | undefined; status?: string | undefined; json: boolean }): ReprocessCommand {
  let since: Date | null = null;
  if (values.since !== undefined) {
    since = new Date(values.since);
    if (Number.isNaN(since.getTime())) throw new AppError('SS_USAGE', `--since must be a date such as 2025-05-01 or 2025-05-01T12:00:00Z, not "${values.since}"`);
  }
  const status = values.status ?? 'all';
  if (status !== 'processed' && status !== 'failed' && status !== 'all') throw new AppError('SS_USAGE', '--status must be processed, failed or all');
  return { since, statuses: status === 'all' ? ['processed', 'failed'] : [status], json: values.json };
}

/**
 * Re-derives sample rows from the stored raw payloads, oldest first (arrival order, so the latest
 * export still wins), one payload per transaction. Rows are idempotent upserts, so a second run
 * counts every row unchanged. Progress goes to stderr, the summary to stdout.
 */
export async function runReprocess(cmd: ReprocessCommand, pool: pg.Pool, config: Config, log: Logger): Promise<number> {
  // Only ids are read up front: payloads can be large and are loaded one at a time.
  const { rows } = await pool.query<{ id: string; user_id: string }>(
    `SELECT id, user_id FROM raw_ingestions
      WHERE status = ANY($1::text[]) AND ($2::timestamptz IS NULL OR received_at >= $2)
      ORDER BY id`,
    [cmd.statuses, cmd.since],
  );
  const runner = new StoredPayloadRunner(pool, config, log);
  const summary: ReprocessSummary = { payloads: rows.length, inserted: 0, updated: 0, unchanged: 0, rejected: 0, failed: 0, failures: [] };
  let done = 0;
  for (const row of rows) {
    const id = String(row.id);
    const outcome = await runner.run(id, String(row.user_id));
    done++;
    if (outcome.ok) {
      const t = totalsOf(outcome.processed);
      summary.inserted += t.inserted;
      summary.updated += t.updated;
      summary.unchanged += t.unchanged;
      summary.rejected += t.rejected;
      process.stderr.write(`[${done}/${rows.length}] ingestion ${id}: ${totalsText(t)}\n`);
    } else {
      summary.failed++;
      summary.failures.push({ id, error: outcome.error });
      process.stderr.write(`[${done}/${rows.length}] ingestion ${id}: FAILED: ${outcome.error}\n`);
    }
  }
  process.stdout.write(cmd.json ? `${JSON.stringify(summary)}\n` : `${summaryText(summary)}\n`);
  return summary.failed > 0 ? 1 : 0;
}

function summaryText(s: ReprocessSummary): string {
  const lines = [`reprocessed ${s.payloads} payload(s): ${totalsText(s)}, failed ${s.failed}`];
  if (s.failed > 0) lines.push('failed payloads are marked failed; see: self-sensored ingestions list --status failed');
  return lines.join('\n');
}
