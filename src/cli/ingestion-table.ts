export interface IngestionSummary {
  id: string;
  receivedAt: Date;
  user: string;
  transport: string;
  sizeBytes: number;
  status: string;
  attempts: number;
  receiveCount: number;
  processedAt: Date | null;
  rejected: number;
  error: string | null;
}

// The table stays one line per payload; --json carries the whole error.
const ERROR_WIDTH = 60;

export function formatIngestionTable(list: IngestionSummary[]): string {
  if (list.length === 0) return 'No ingestions match.';
  const rows = list.map((i) => [
    i.id,
    i.receivedAt.toISOString(),
    i.user,
    i.transport,
    humanBytes(i.sizeBytes),
    i.status,
    String(i.attempts),
    String(i.rejected),
    truncate(i.error ?? '', ERROR_WIDTH),
  ]);
  const header = ['ID', 'RECEIVED', 'USER', 'TRANSPORT', 'SIZE', 'STATUS', 'ATTEMPTS', 'REJECTED', 'ERROR'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function ingestionToJson(i: IngestionSummary): Record<string, unknown> {
  return {
    id: i.id,
    receivedAt: i.receivedAt.toISOString(),
    user: i.user,
    transport: i.transport,
    sizeBytes: i.sizeBytes,
    status: i.status,
    attempts: i.attempts,
    receiveCount: i.receiveCount,
    processedAt: i.processedAt?.toISOString() ?? null,
    rejected: i.rejected,
    error: i.error,
  };
}

function truncate(text: string, width: number): string {
  // Errors can span lines (PostgreSQL hints); the table keeps one line per payload.
  const flat = text.replace(/\s+/g, ' ');
  return flat.length <= width ? flat : `${flat.slice(0, width - 1)}…`;
}

function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}
