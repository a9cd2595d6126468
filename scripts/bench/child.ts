import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../../src/errors.js';

export interface Request {
  type: string;
  [key: string]: unknown;
}

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/**
 * A helper process of the bench (load generator, payload sender, ceiling server), compiled next
 * to this file. Requests go over IPC and each gets one reply; the child exits with its parent.
 */
export class BenchChild {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #exited: Promise<void>;
  #next = 0;

  private constructor(child: ChildProcess, name: string) {
    this.#child = child;
    child.on('message', (m: Reply) => {
      const w = this.#waiting.get(m.id);
      if (!w) return;
      this.#waiting.delete(m.id);
      if (m.ok) w.resolve(m.value);
      else w.reject(new Error(`${name}: ${m.error}`));
    });
    this.#exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        for (const w of this.#waiting.values()) w.reject(new Error(`${name} exited (${code ?? signal}) before answering`));
        this.#waiting.clear();
        resolve();
      }),
    );
  }

  /** `file` is a compiled module in this folder, e.g. 'sender-child.js'. */
  static start(file: string, name: string, options: { maxOldSpaceMiB?: number } = {}): BenchChild {
    // BENCH_CHILD_NODE_ARGS profiles the load generators and the bare broker, as DAEMON_NODE_ARGS does the daemon.
    const extra = process.env.BENCH_CHILD_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const execArgv = [...(options.maxOldSpaceMiB ? [`--max-old-space-size=${options.maxOldSpaceMiB}`] : []), ...extra];
    const child = fork(fileURLToPath(new URL(file, import.meta.url)), [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new BenchChild(child, name);
  }

  get pid(): number {
    return this.#child.pid!;
  }

  request<T>(req: Request): Promise<T> {
    const id = ++this.#next;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#child.send({ ...req, id });
    });
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** The child's side: answers each request with its handler's result, and leaves when the parent goes. */
export function serveRequests(handlers: Record<string, (req: Request) => Promise<unknown> | unknown>): void {
  process.on('message', (msg: Request & { id: number }) => {
    const handler = handlers[msg.type];
    const reply = (r: Omit<Reply, 'id'>) => process.send!({ id: msg.id, ...r });
    if (!handler) return reply({ ok: false, error: `unknown request ${msg.type}` });
    Promise.resolve()
      .then(() => handler(msg))
      .then(
        (value) => reply({ ok: true, value }),
        (err: unknown) => reply({ ok: false, error: errorMessage(err) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
  // An orderly exit on stop(), so that a profile asked for by BENCH_CHILD_NODE_ARGS gets written.
  process.on('SIGTERM', () => process.exit(0));
}

/** A wall-clock time in ms with sub-ms precision that other processes on the machine can compare with. */
export const wallClockMs = (): number => performance.timeOrigin + performance.now();
