import { Aedes } from 'aedes';
import pg from 'pg';
import { parseJsonBody } from '../../src/ingest/json-body.js';
import { DEFAULT_JSON_LIMITS } from '../../src/ingest/json-limits.js';
import { BinaryArrayWriter } from '../../src/store/binary-array.js';
import { serveAedesOverWebSocket } from './aedes-over-websocket.js';

/**
 * A bare Aedes broker served as the daemon's is (aedes-over-websocket.ts) that accepts every
 * client and hands each publish whose JSON the daemon's parser and limits accept to `accept`,
 * which calls `done` once the bytes are committed. Invalid JSON is acknowledged and not stored,
 * as the daemon does: sending it again cannot help.
 */
export async function startReferenceBroker(accept: (payload: Buffer, json: unknown, done: (err: Error | null) => void) => void): Promise<{ port: number }> {
  const aedes = await Aedes.createBroker({
    authenticate: (_client, _user, _password, done) => done(null, true),
    authorizePublish: (_client, packet, done) => {
      const payload = packet.payload as Buffer;
      const parsed = parseJsonBody(payload, DEFAULT_JSON_LIMITS);
      if (!parsed.ok) return done(null);
      accept(payload, parsed.value, done);
    },
  });
  return serveAedesOverWebSocket(aedes);
}

/** Connects to the database and creates the receiver's tables. */
export async function connectReference(databaseUrl: string, name: string, ddl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  // A connection lost between statements: the next statement fails and its publishes are refused.
  client.on('error', (err) => console.error(`${name}: ${err.message}`));
  await client.query(ddl);
  return client;
}

/** Raw bytes as bytea arrays, digests first; the statement's parameters 1 and 2. */
export function rawArrays(group: readonly { sha256: Buffer; payload: Buffer }[]): Buffer[] {
  const digests = new BinaryArrayWriter('bytea', 40 * group.length);
  const payloads = new BinaryArrayWriter('bytea', group.reduce((n, held) => n + 4 + held.payload.length, 64));
  for (const held of group) {
    digests.push(held.sha256);
    payloads.push(held.payload);
  }
  return [digests.finish(), payloads.finish()];
}

/** A publish waiting for its group's COMMIT: Aedes' authorizePublish callback. */
export interface HeldPublish {
  done: (err: Error | null) => void;
}

/**
 * The group commit of the bench's reference receivers (store-only-child.ts,
 * store-rows-child.ts), shaped like the daemon's: one prepared statement in flight on one
 * connection (autocommit, so its end is the COMMIT), every publish that arrived meanwhile in the
 * next group, and the next group's statement sent before the finished group's PUBACKs are written.
 */
export class ReferenceGroupCommit<T extends HeldPublish> {
  readonly #client: pg.Client;
  readonly #statement: { name: string; text: string };
  readonly #values: (group: readonly T[]) => Buffer[];
  #queue: T[] = [];
  #busy = false;

  constructor(client: pg.Client, statement: { name: string; text: string }, values: (group: readonly T[]) => Buffer[]) {
    this.#client = client;
    this.#statement = statement;
    this.#values = values;
  }

  add(item: T): void {
    this.#queue.push(item);
    if (!this.#busy) void this.#next(null);
  }

  async #next(finished: { group: T[]; error: Error | null } | null): Promise<void> {
    const group = this.#queue;
    this.#queue = [];
    this.#busy = group.length > 0;
    const running = group.length > 0 ? this.#send(group) : null;
    if (finished) for (const held of finished.group) held.done(finished.error);
    if (running) void this.#next({ group, error: await running });
  }

  async #send(group: T[]): Promise<Error | null> {
    try {
      await this.#client.query({ ...this.#statement, values: this.#values(group) });
      return null;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }
}
