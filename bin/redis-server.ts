/**
 * Spawns a private `redis-server` (from PATH) on a free port with its own data directory.
 * Used by `npm start` when no Redis is reachable, and by the test harness.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';

export interface RedisServerOptions {
  dir: string;
  port?: number;
  /** Append-only file (what production uses). */
  appendOnly?: boolean;
  /** AOF fsync policy: every second (default) or before every reply (DURABILITY=strict on Redis < 7.2). */
  appendFsync?: 'everysec' | 'always';
}

export interface RunningRedisServer {
  url: string;
  port: number;
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

export const spawnRedisServer = async (options: RedisServerOptions): Promise<RunningRedisServer> => {
  await mkdir(options.dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
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
      if (await isPortOpen(port)) return resolve();
      if (Date.now() > deadline) return reject(new Error('redis-server did not open its port within 10 s'));
      setTimeout(() => void poll(), 25);
    };
    void poll();
  });
  let stopped = false;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (stopped || child.exitCode !== null) return;
      stopped = true;
      child.kill(signal);
      await exited;
    },
  };
};
