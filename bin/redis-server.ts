/**
 * Spawns a private `redis-server` (from PATH) with its own data directory, on a free loopback
 * port or on a Unix socket in that directory (owner only: no other local user reaches it, and
 * each command costs the clients less than over TCP). Used by `npm start` when no Redis is
 * reachable, by the benchmarks, and by the test harness.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export interface RedisServerOptions {
  dir: string;
  port?: number;
  /** Append-only file (what production uses). */
  appendOnly?: boolean;
  /** AOF fsync policy: every second (default) or before every reply (DURABILITY=strict on Redis < 7.2). */
  appendFsync?: 'everysec' | 'always';
  /** Listen on `<dir>/redis.sock` only (no TCP port), when that path fits a socket address; else on a port. */
  unixSocket?: boolean;
}

export interface RunningRedisServer {
  /** A `redis://127.0.0.1:<port>` URL, or the socket's absolute path (ioredis and REDIS_URL take both). */
  url: string;
  /** 0 when it listens on its socket only. */
  port: number;
  /** The socket's path when it listens on one. */
  socket: string | undefined;
  process: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export const freePort = async (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });

export const isPortOpen = (port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> =>
  new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });

/** Whether something accepts connections on the Unix socket at `socketPath`. */
const isSocketOpen = (socketPath: string): Promise<boolean> =>
  new Promise((resolve) => {
    const sock = net.connect({ path: socketPath });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });

/** Longest socket path used: Linux's sun_path holds 107 bytes and a terminating NUL. */
const SOCKET_PATH_MAX = 100;

export const spawnRedisServer = async (options: RedisServerOptions): Promise<RunningRedisServer> => {
  await mkdir(options.dir, { recursive: true });
  // Absolute: redis-server resolves the socket path after changing into --dir.
  const socketPath = path.resolve(options.dir, 'redis.sock');
  const socket = options.unixSocket && Buffer.byteLength(socketPath) <= SOCKET_PATH_MAX ? socketPath : undefined;
  const port = socket ? 0 : (options.port ?? (await freePort()));
  const listen = socket ? ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700'] : ['--port', String(port), '--bind', '127.0.0.1'];
  const args = [
    ...listen,
    '--dir',
    options.dir,
    '--save',
    '',
    '--appendonly',
    options.appendOnly ? 'yes' : 'no',
    '--appendfsync',
    options.appendFsync ?? 'everysec',
    '--maxmemory-policy',
    'noeviction',
    // Operation records and job hashes hold values of a few hundred bytes: keep them listpack-encoded
    // (about half the memory per queued document). See docs/operations.md, "Redis".
    '--hash-max-listpack-value',
    '1024',
    '--daemonize',
    'no',
    '--loglevel',
    'warning',
  ];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    child.once('error', (err) =>
      reject(new Error(`cannot start redis-server: ${err.message}. Install Redis 7 (e.g. apt-get install redis-server) or set REDIS_URL.`)),
    );
    const poll = async (): Promise<void> => {
      if (child.exitCode !== null) return reject(new Error(`redis-server exited: ${stderr.trim()}`));
      if (await (socket ? isSocketOpen(socket) : isPortOpen(port))) return resolve();
      if (Date.now() > deadline) return reject(new Error(`redis-server did not open its ${socket ? 'socket' : 'port'} within 10 s`));
      setTimeout(() => void poll(), 25);
    };
    void poll();
  });
  let stopped = false;
  return {
    url: socket ?? `redis://127.0.0.1:${port}`,
    port,
    socket,
    process: child,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (stopped || child.exitCode !== null) return;
      stopped = true;
      child.kill(signal);
      await exited;
    },
  };
};
