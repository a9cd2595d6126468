import type pg from 'pg';
import { AppError } from '../errors.js';

export interface AuthEventsCommand {
  limit: number;
  json: boolean;
}

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 10_000;

export function parseAuthEventsCommand(values: { limit?: string | undefined; json: boolean }): AuthEventsCommand {
  const limit = values.limit === undefined ? DEFAULT_LIMIT : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new AppError('SS_USAGE', `--limit must be a whole number from 1 to ${MAX_LIMIT}`);
  return { limit, json: values.json };
}

interface EventRow {
  at: Date;
  outcome: string;
  reason: string | null;
  transport: string;
  remote_address: string | null;
  client_id: string | null;
  key_prefix: string | null;
  user_name: string | null;
}

/** The latest authentication attempts, newest first. */
export async function runAuthEventsCommand(cmd: AuthEventsCommand, pool: pg.Pool, write: (text: string) => void): Promise<number> {
  const { rows } = await pool.query<EventRow>(
    `SELECT e.at, e.outcome, e.reason, e.transport, e.remote_address, e.client_id, e.key_prefix, u.name AS user_name
     FROM auth_events e LEFT JOIN users u ON u.id = e.user_id ORDER BY e.at DESC, e.id DESC LIMIT $1`,
    [cmd.limit],
  );
  if (cmd.json) {
    const events = rows.map((r) => ({
      at: r.at.toISOString(),
      outcome: r.outcome,
      reason: r.reason,
      transport: r.transport,
      remoteAddress: r.remote_address,
      clientId: r.client_id,
      keyPrefix: r.key_prefix,
      user: r.user_name,
    }));
    write(`${JSON.stringify(events, null, 2)}\n`);
    return 0;
  }
  if (rows.length === 0) {
    write('No authentication attempts recorded yet.\n');
    return 0;
  }
  const header = ['TIME', 'OUTCOME', 'REASON', 'TRANSPORT', 'ADDRESS', 'CLIENT ID', 'KEY PREFIX', 'USER'];
  const table = rows.map((r) => [
    r.at.toISOString(),
    r.outcome,
    r.reason ?? '',
    r.transport,
    r.remote_address ?? '',
    // Client ids come from anyone who connects: keep the table readable.
    JSON.stringify(r.client_id ?? '').slice(1, -1).slice(0, 40),
    r.key_prefix ?? '',
    r.user_name ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  write(`${[line(header), ...table.map(line)].join('\n')}\n`);
  return 0;
}
