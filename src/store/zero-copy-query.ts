import pg from 'pg';

/**
 * A parameterised statement whose large bytea parameters go to the socket as the caller's own
 * Buffers. pg's serializer copies every parameter into its Bind message, so a 100 MB payload
 * sat in memory twice (and was memcpy'd into a buffer grown on the way) while it was stored.
 *
 * This is a pg "submittable": pool.query / client.query queue it like one of pg's own queries,
 * hand it the connection when it is its turn, and deliver the server's answers to its handle*
 * methods. It speaks the extended protocol as pg does (unnamed statement and portal, results as
 * text), so values are bound and results parsed exactly as pg would: parameters go through pg's
 * prepareValue (Date, number), result columns through pg's type parsers, and a server error is
 * the DatabaseError that pg's protocol parser built from the ErrorResponse.
 */

/** What a parameter may be: a Buffer is sent binary (bytea); the rest as text, the way pg formats them. */
export type ZeroCopyParam = null | string | number | Date | Buffer;

export interface ZeroCopyResult<R> {
  command: string;
  rowCount: number | null;
  rows: R[];
}

/** Buffer parameters from this size on are written as they are; smaller ones are cheaper copied into the message. */
export const SEPARATE_BUFFER_MIN_BYTES = 16 * 1024;

// PostgreSQL counts parameters in an int16 and a message's length in an int32.
const MAX_PARAMS = 65_535;
const MAX_MESSAGE_LENGTH = 0x7fff_ffff;

interface PgInternals {
  /** pg's own parameter mapping (Date in local time with offset, numbers via toString, ...). */
  utils: { prepareValue(value: unknown): Buffer | string | null };
}
const { prepareValue } = (pg as unknown as PgInternals).utils;
if (typeof prepareValue !== 'function') throw new Error('pg no longer exports utils.prepareValue: zero-copy-query.ts needs updating');

interface FieldDescription {
  name: string;
  dataTypeID: number;
}

type Callback<R> = (err: Error | null, result?: ZeroCopyResult<R>) => void;

/**
 * A statement prepared under a name on each connection, as pg's named queries are: parsed by the
 * server the first time a connection runs it, then only bound and executed.
 */
export interface NamedStatement {
  name: string;
  /** Whether this round trip parses it (the connection has not yet). */
  parse: boolean;
}

const UNNAMED: NamedStatement = { name: '', parse: true };

/**
 * The messages of one extended-protocol round trip (Parse unless the named statement is already
 * parsed, Bind, Describe portal, Execute, Sync) as a list of Buffers to write in order: the small
 * parts share one allocation, each large Buffer parameter is its own entry, not copied.
 */
export function encodeExtendedQuery(text: string, params: readonly ZeroCopyParam[], statement: NamedStatement = UNNAMED): Buffer[] {
  if (params.length > MAX_PARAMS) throw new RangeError(`${params.length} parameters: PostgreSQL takes at most ${MAX_PARAMS}`);
  const values = params.map((p) => (p instanceof Buffer ? p : prepareValue(p)));
  const textBytes = Buffer.byteLength(text);
  const stringBytes = values.map((v) => (typeof v === 'string' ? Buffer.byteLength(v) : 0));

  const nameBytes = Buffer.byteLength(statement.name);
  const parseLength = statement.parse ? 4 + nameBytes + 1 + textBytes + 1 + 2 : 0;
  // portal name (empty), statement name, the format codes, the values, the one result format code
  let bindLength = 4 + 1 + nameBytes + 1 + 2 + 2 * values.length + 2 + 2 + 2;
  let separateBytes = 0;
  values.forEach((v, i) => {
    bindLength += 4 + (v === null ? 0 : v instanceof Buffer ? v.length : stringBytes[i]!);
    if (v instanceof Buffer && v.length >= SEPARATE_BUFFER_MIN_BYTES) separateBytes += v.length;
  });
  if (parseLength > MAX_MESSAGE_LENGTH || bindLength > MAX_MESSAGE_LENGTH) throw new RangeError('The statement is too large for one protocol message');
  const describeLength = 4 + 1 + 1;
  const executeLength = 4 + 1 + 4;
  const syncLength = 4;
  const small = Buffer.allocUnsafe((statement.parse ? 1 + parseLength : 0) + 1 + bindLength - separateBytes + 1 + describeLength + 1 + executeLength + 1 + syncLength);

  let at = 0;
  const byte = (b: number): void => {
    small[at++] = b;
  };
  const int16 = (n: number): void => {
    at = small.writeUInt16BE(n, at);
  };
  const int32 = (n: number): void => {
    at = small.writeInt32BE(n, at);
  };

  if (statement.parse) {
    byte(0x50); // Parse
    int32(parseLength);
    at += small.write(statement.name, at, 'utf8');
    byte(0);
    at += small.write(text, at, 'utf8');
    byte(0);
    int16(0); // parameter types: inferred by the server, as pg does
  }

  byte(0x42); // Bind
  int32(bindLength);
  byte(0); // unnamed portal
  at += small.write(statement.name, at, 'utf8');
  byte(0);
  int16(values.length);
  for (const v of values) int16(v instanceof Buffer ? 1 : 0);
  int16(values.length);
  const chunks: Buffer[] = [];
  let chunkStart = 0;
  values.forEach((v, i) => {
    if (v === null) {
      int32(-1);
    } else if (typeof v === 'string') {
      int32(stringBytes[i]!);
      at += small.write(v, at, 'utf8');
    } else {
      int32(v.length);
      if (v.length >= SEPARATE_BUFFER_MIN_BYTES) {
        chunks.push(small.subarray(chunkStart, at), v);
        chunkStart = at;
      } else {
        at += v.copy(small, at);
      }
    }
  });
  int16(1);
  int16(0); // every result column as text

  byte(0x44); // Describe
  int32(describeLength);
  byte(0x50); // the portal
  byte(0);

  byte(0x45); // Execute
  int32(executeLength);
  byte(0); // unnamed portal
  int32(0); // every row

  byte(0x53); // Sync
  int32(syncLength);

  if (at !== small.length) throw new Error(`encodeExtendedQuery wrote ${at} of ${small.length} bytes`);
  chunks.push(small.subarray(chunkStart, at));
  return chunks;
}

/**
 * The submittable. The contract with pg's Client (lib/client.js): submit() is called when the
 * connection is ready and returns an Error to fail without sending; an ErrorResponse makes the
 * client drop it as active query and call handleError (the ReadyForQuery that follows our Sync
 * goes to the next query); otherwise handleReadyForQuery ends it. `callback` is set by
 * client.query / pool.query (the pool's one releases the client).
 */
export class ZeroCopyQuery<R> implements pg.Submittable {
  callback: Callback<R> | undefined;
  /** Read by pg's Client as it reads its own queries': a ParseComplete records `text` as parsed under `name` on the connection. */
  readonly name: string | undefined;
  readonly text: string;
  readonly #params: readonly ZeroCopyParam[];
  #fields: Array<{ name: string; parse: (value: string) => unknown }> = [];
  #rows: R[] = [];
  #command = '';
  #rowCount: number | null = null;
  /** An error of our own while reading rows; reported once the server is done with the query. */
  #failure: Error | null = null;
  #settled = false;

  /** With `name`, the statement is prepared once per connection under that name (see NamedStatement). */
  constructor(text: string, params: readonly ZeroCopyParam[], name?: string) {
    this.text = text;
    this.#params = params;
    this.name = name || undefined;
  }

  submit(connection: pg.Connection): Error | null {
    let statement = UNNAMED;
    if (this.name !== undefined) {
      // pg's own bookkeeping of named statements, so that its named queries and ours share it.
      const named = connection as unknown as PgNamedStatements;
      const previous = named.parsedStatements[this.name] ?? named.submittedNamedStatements[this.name];
      if (previous !== undefined && previous !== this.text) return new Error(`Prepared statements must be unique - '${this.name}' was used for a different statement`);
      statement = { name: this.name, parse: previous === undefined };
    }
    let chunks: Buffer[];
    try {
      chunks = encodeExtendedQuery(this.text, this.#params, statement);
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
    const stream = connection.stream;
    // Like pg's Connection, write nothing to a socket that is gone: its 'end' fails the query.
    if (!stream.writable) return null;
    // As pg's Query: parsed once the server's ParseComplete comes back, forgotten if an error comes instead.
    if (statement.parse && statement.name !== '') (connection as unknown as PgNamedStatements).submittedNamedStatements[statement.name] = this.text;
    // Corked, the chunks leave in one writev instead of one write each.
    stream.cork();
    try {
      for (const chunk of chunks) stream.write(chunk);
    } finally {
      stream.uncork();
    }
    return null;
  }

  handleRowDescription(msg: { fields: FieldDescription[] }): void {
    this.#fields = msg.fields.map((f) => ({ name: f.name, parse: pg.types.getTypeParser(f.dataTypeID, 'text') as (value: string) => unknown }));
  }

  handleDataRow(msg: { fields: Array<string | null> }): void {
    if (this.#failure) return;
    try {
      // fromEntries defines own properties: a column named __proto__ stays a column.
      const row = Object.fromEntries(
        msg.fields.map((value, i) => {
          const field = this.#fields[i]!;
          return [field.name, value === null ? null : field.parse(value)];
        }),
      );
      this.#rows.push(row as R);
    } catch (err) {
      this.#failure = err instanceof Error ? err : new Error(String(err));
    }
  }

  handleCommandComplete(msg: { text: string }): void {
    const match = /^([A-Za-z]+)(?: (\d+))?(?: (\d+))?/.exec(msg.text);
    if (!match) return;
    this.#command = match[1]!;
    const count = match[3] ?? match[2];
    this.#rowCount = count === undefined ? null : Number(count);
  }

  handleEmptyQuery(): void {}

  handleError(err: Error): void {
    const failure = this.#failure ?? err;
    this.#failure = null;
    this.#settle(failure);
  }

  handleReadyForQuery(): void {
    if (this.#failure) return this.handleError(this.#failure);
    this.#settle(null, { command: this.#command, rowCount: this.#rowCount, rows: this.#rows });
  }

  // We execute with no row limit, so the portal is never suspended; the Sync already sent ends it.
  handlePortalSuspended(): void {
    this.#failure ??= new Error('Unexpected PortalSuspended for a query executed without a row limit');
  }

  // Only reachable with COPY FROM STDIN as the text: refuse it the way pg's Query does.
  handleCopyInResponse(connection: pg.Connection): void {
    (connection as unknown as { sendCopyFail(message: string): void }).sendCopyFail('No source stream defined');
  }

  handleCopyData(): void {}

  #settle(err: Error | null, result?: ZeroCopyResult<R>): void {
    if (this.#settled) return;
    this.#settled = true;
    this.callback?.(err, result);
  }
}

type QueryRunner = { query(submittable: pg.Submittable, callback: Callback<unknown>): void };

/** What pg's Connection keeps of the named statements it parsed or sent for parsing, by name. */
interface PgNamedStatements {
  parsedStatements: Record<string, string | undefined>;
  submittedNamedStatements: Record<string, string | undefined>;
}

/**
 * Runs a statement through the pool (or one client) without copying its large Buffer
 * parameters; the socket reads them later, so they must not change until the promise settles.
 * With `name`, the statement is prepared once per connection under that name. Rejects with what
 * pg would: a pg DatabaseError (with its SQLSTATE `code`) for a server error, pg's connection
 * errors for a lost connection.
 */
export function queryWithoutCopy<R>(db: pg.Pool | pg.ClientBase, text: string, params: readonly ZeroCopyParam[], name?: string): Promise<ZeroCopyResult<R>> {
  return new Promise((resolve, reject) => {
    // pool.query(submittable, cb) and client.query(submittable, cb) both make cb the query's
    // callback; the pool wraps it to release the client first. @types/pg lacks this overload.
    (db as unknown as QueryRunner).query(new ZeroCopyQuery<R>(text, params, name), (err, result) => {
      if (err) {
        // As pg does for its promises: a stack leading back to the caller, not to the socket read.
        Error.captureStackTrace(err);
        reject(err);
      } else {
        resolve(result as ZeroCopyResult<R>);
      }
    });
  });
}
