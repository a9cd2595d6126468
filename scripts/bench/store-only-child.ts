/**
 * A second reference for scenario 2: the least any receiver must do to keep invariant 1, and
 * nothing more. A bare Aedes broker (served as the daemon's is, aedes-over-websocket.ts) whose
 * authorizePublish checks the JSON with the daemon's own parser and limits, digests it with the
 * daemon's SHA-256, and holds the PUBACK until the bytes are committed: one group commit at a
 * time (the next group's statement is sent before the finished one's PUBACKs, as the daemon
 * does) into a table with a primary key and a unique digest, nothing parsed further, no samples.
 * The daemon does all of this and also parses the HAE format, writes the samples and records the
 * counts before acknowledging; the distance between the two is the cost of that work.
 */
import { Aedes } from 'aedes';
import pg from 'pg';
import { parseJsonBody } from '../../src/ingest/json-body.js';
import { DEFAULT_JSON_LIMITS } from '../../src/ingest/json-limits.js';
import { sha256Of } from '../../src/ingest/service.js';
import { BinaryArrayWriter } from '../../src/store/binary-array.js';
import { serveAedesOverWebSocket } from './aedes-over-websocket.js';
import { serveRequests, type Request } from './child.js';

interface Waiting {
  sha256: Buffer;
  payload: Buffer;
  done: (err: Error | null) => void;
}

/** One INSERT per group; a second copy of the same bytes is stored once and acknowledged all the same. */
class GroupCommit {
  readonly #client: pg.Client;
  readonly #statement: { name: string; text: string };
  #queue: Waiting[] = [];
  #busy = false;

  constructor(client: pg.Client, table: string) {
    this.#client = client;
    this.#statement = { name: 'store_only_group', text: `INSERT INTO ${table} (sha256, payload) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (sha256) DO NOTHING` };
  }

  add(item: Waiting): void {
    this.#queue.push(item);
    if (!this.#busy) void this.#next(null);
  }

  /** Sends the waiting group (if any), then releases the group that just finished. */
  async #next(finished: { group: Waiting[]; error: Error | null } | null): Promise<void> {
    const group = this.#queue;
    this.#queue = [];
    this.#busy = group.length > 0;
    const running = group.length > 0 ? this.#send(group) : null;
    if (finished) for (const w of finished.group) w.done(finished.error);
    if (running) void this.#next({ group, error: await running });
  }

  async #send(group: Waiting[]): Promise<Error | null> {
    const digests = new BinaryArrayWriter('bytea', 40 * group.length);
    const payloads = new BinaryArrayWriter('bytea', group.reduce((n, w) => n + 4 + w.payload.length, 64));
    for (const w of group) {
      digests.push(w.sha256);
      payloads.push(w.payload);
    }
    try {
      await this.#client.query({ ...this.#statement, values: [digests.finish(), payloads.finish()] });
      return null;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }
}

async function start(req: Request): Promise<{ port: number }> {
  const client = new pg.Client({ connectionString: String(req.databaseUrl) });
  await client.connect();
  // A connection lost between statements; the next statement fails and its publishes are refused.
  client.on('error', (err) => console.error(`store-only receiver: ${err.message}`));
  const commits = new GroupCommit(client, String(req.table));
  const aedes = await Aedes.createBroker({
    authenticate: (_client, _user, _password, done) => done(null, true),
    authorizePublish: (_client, packet, done) => {
      const payload = packet.payload as Buffer;
      // Invalid JSON is acknowledged and not stored, as the daemon does: sending it again cannot help.
      if (!parseJsonBody(payload, DEFAULT_JSON_LIMITS).ok) return done(null);
      commits.add({ sha256: sha256Of(payload), payload, done });
    },
  });
  return serveAedesOverWebSocket(aedes);
}

serveRequests({ start });
