import type pg from 'pg';
import { defaultLimits } from '../../src/hae/limits.js';
import { BatchProcessor } from '../../src/ingest/batch-processor.js';
import { PayloadProcessor } from '../../src/ingest/processor.js';
import type { RawIngestionStore } from '../../src/ingest/raw-store.js';
import { IngestService } from '../../src/ingest/service.js';
import { createLogger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import type { PartitionManager } from '../../src/store/partitions.js';

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
