import type pg from 'pg';
import { defaultLimits } from '../../src/hae/limits.js';
import { BatchProcessor } from '../../src/ingest/batch-processor.js';
import { PayloadProcessor } from '../../src/ingest/processor.js';
import { RawIngestionStore } from '../../src/ingest/raw-store.js';
import { IngestService, type IngestServiceOptions } from '../../src/ingest/service.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { PartitionManager } from '../../src/store/partitions.js';

/**
 * An IngestService storing through `raw` and processing queued small payloads in batches, as the
 * daemon does, with short retries (20 ms) and the default limits; not started.
 */
export function batchingIngestService(deps: { pool: pg.Pool; partitions: PartitionManager; raw: RawIngestionStore; metrics: Metrics; maxAttempts: number }): IngestService {
  const { pool, partitions, raw, metrics, maxAttempts } = deps;
  return new IngestService({
    pool,
    raw,
    processor: new PayloadProcessor({ pool, partitions, chunkRows: 20_000, limits: defaultLimits }),
    batches: new BatchProcessor({ pool, partitions, chunkRows: 20_000, limits: defaultLimits }),
    logger: createLogger('silent'),
    metrics,
    options: { maxAttempts, retryBaseMs: 20, maxQueuedBytes: 256 * 1024 * 1024 },
  });
}

/**
 * An IngestService processing each payload alone, storing raw rows in groups of up to 8 MiB, with
 * two attempts, 20 ms retries and the default limits, the given options over those; not started.
 */
export function singleIngestService(deps: { pool: pg.Pool; options: Partial<IngestServiceOptions>; collectGarbage?: () => void }): IngestService {
  const { pool, options, collectGarbage } = deps;
  const log = createLogger('silent');
  return new IngestService({
    pool,
    raw: new RawIngestionStore(pool, { maxBatchBytes: 8 * 1024 * 1024 }),
    processor: new PayloadProcessor({ pool, partitions: new PartitionManager(pool, log), chunkRows: 20_000, limits: defaultLimits }),
    logger: log,
    metrics: new Metrics(),
    options: { maxAttempts: 2, retryBaseMs: 20, maxQueuedBytes: 256 * 1024 * 1024, ...options },
    ...(collectGarbage && { collectGarbage }),
  });
}
