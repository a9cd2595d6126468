import type { ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { sendJson } from './respond.js';
import { errorMessage } from '../errors.js';

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

/** Liveness: the process answers. Deliberately checks no dependency, so a database outage never gets the process restarted. */
export function handleHealth(res: ServerResponse, version: string): void {
  sendJson(res, 200, { status: 'ok', version, uptimeSeconds: Math.floor(process.uptime()) });
}

export async function handleReady(res: ServerResponse, readiness: () => Promise<ReadinessReport>, logger: Logger): Promise<void> {
  let report: ReadinessReport;
  try {
    report = await readiness();
  } catch (err) {
    // A failing check is an answer ("not ready"), not a server error.
    logger.warn({ err }, 'readiness check failed');
    report = { ready: false, checks: { readiness: { ok: false, detail: errorMessage(err) } } };
  }
  sendJson(res, report.ready ? 200 : 503, report);
}

export async function handleMetrics(res: ServerResponse, metrics: Metrics): Promise<void> {
  const text = await metrics.registry.metrics();
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' });
  res.end(text);
}
