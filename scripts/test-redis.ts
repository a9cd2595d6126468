/**
 * The Redis the rate-limit tests use. TEST_REDIS_URL wins; else the one on 127.0.0.1:6379 when it
 * answers; else a throw-away `redis-server` started for this run when the binary is installed.
 * A machine with none of these (Node and npm only) runs every other test and says loudly that the
 * Redis backend was not tested; under CI that is an error instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';

export interface TestRedis {
  url: string | null;
  /** Why there is no Redis, when url is null. */
  reason?: string;
  stop(): Promise<void>;
}

const DEFAULT_URL = 'redis://127.0.0.1:6379';

export async function provideTestRedis(env: NodeJS.ProcessEnv): Promise<TestRedis> {
  const none = async (): Promise<void> => undefined;
  if (env.TEST_REDIS_URL) return { url: env.TEST_REDIS_URL, stop: none };
  if (await answersPing(DEFAULT_URL)) return { url: DEFAULT_URL, stop: none };
  const port = await freePort();
  let child: ChildProcess;
  try {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } catch {
    return { url: null, reason: 'no Redis answers on 127.0.0.1:6379 and redis-server is not installed', stop: none };
  }
  const url = `redis://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  for (let i = 0; i < 50; i++) {
    if (await answersPing(url)) return { url, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  return { url: null, reason: `redis-server on port ${port} did not answer`, stop: none };
}

function answersPing(url: string): Promise<boolean> {
  const target = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: target.hostname, port: Number(target.port || 6379) });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString('latin1').startsWith('+PONG')));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
