/**
 * A reference for scenario 2: the least any receiver must do to keep invariant 1, and nothing
 * more. A bare broker (reference-receiver.ts) that checks the JSON with the daemon's own parser
 * and limits, digests it with the daemon's SHA-256, and holds the PUBACK until a group commit has
 * committed the bytes into a table with a primary key and a unique digest. Nothing is parsed
 * further and no sample is written.
 */
import { sha256Of } from '../../src/ingest/payload-digest.js';
import { serveRequests, type Request } from './child.js';
import { connectReference, rawArrays, ReferenceGroupCommit, startReferenceBroker, type HeldPublish } from './reference-receiver.js';

const PAYLOADS = 'bench_store_only_payloads';

interface Held extends HeldPublish {
  sha256: Buffer;
  payload: Buffer;
}

async function start(req: Request): Promise<{ port: number; tables: string[] }> {
  const client = await connectReference(
    String(req.databaseUrl),
    'store-only receiver',
    `CREATE TABLE ${PAYLOADS} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sha256 bytea NOT NULL UNIQUE, payload bytea NOT NULL)`,
  );
  const commits = new ReferenceGroupCommit<Held>(
    client,
    { name: 'store_only_group', text: `INSERT INTO ${PAYLOADS} (sha256, payload) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (sha256) DO NOTHING` },
    rawArrays,
  );
  const { port } = await startReferenceBroker((payload, _json, done) => commits.add({ sha256: sha256Of(payload), payload, done }));
  return { port, tables: [PAYLOADS] };
}

serveRequests({ start });
