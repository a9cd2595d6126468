/**
 * A reference for scenario 2: the store-only receiver (store-only-child.ts) that also writes each
 * payload's heart-rate points as rows, in the same statement as its bytes, before the PUBACK:
 * what the daemon does for scenario 2's payloads, reduced to the least. Rows carry the payload's
 * id; one plain table with the daemon's key (user, time, source), not partitioned; times read by
 * the daemon's date parser; no other validation, no counts, no answer, no re-send handling (the
 * bench never sends the same bytes twice; a repeated key fails the group and its publishes).
 */
import { sha256Of } from '../../src/ingest/payload-digest.js';
import { serveRequests, type Request } from './child.js';
import { connectReference, ReferenceGroupCommit, startReferenceBroker, type HeldPublish } from './reference-receiver.js';
import { heartRatePoints, storeRowsArrays, storeRowsStatement, storeRowsTablesDdl, type StoreRowsItem } from './store-rows-statement.js';

const PAYLOADS = 'bench_store_rows_payloads';
const HEART_RATE = 'bench_store_rows_heart_rate';

type Held = HeldPublish & StoreRowsItem;

async function start(req: Request): Promise<{ port: number; tables: string[] }> {
  const client = await connectReference(String(req.databaseUrl), 'store-rows receiver', storeRowsTablesDdl(PAYLOADS, HEART_RATE));
  const commits = new ReferenceGroupCommit<Held>(client, { name: 'store_rows_group', text: storeRowsStatement(PAYLOADS, HEART_RATE) }, storeRowsArrays);
  const { port } = await startReferenceBroker((payload, json, done) => commits.add({ sha256: sha256Of(payload), payload, points: heartRatePoints(json), done }));
  return { port, tables: [HEART_RATE, PAYLOADS] };
}

serveRequests({ start });
