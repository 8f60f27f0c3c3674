/**
 * The shipped launchers as a user or an orchestrator runs them (the compiled dist/, through
 * `npm start` or `node dist/bin/start.js`): SIGTERM to the PID they hold drains and leaves no
 * process behind; an unreachable Redis fails in bounded time with one line; a start that fails
 * stops the redis-server it spawned and prints no key.
 *
 * `npm start` spawns its own redis-server only when nothing answers on 127.0.0.1:6379; this
 * machine may run one there, so those tests run in a private network namespace (`unshare --net`,
 * root only; skipped elsewhere).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../bin/redis-server.js';

const root = path.resolve(import.meta.dirname, '..');
const privateNet = spawnSync('unshare', ['--net', 'true']).status === 0;

/** The command run in a fresh network namespace with only loopback up (same PID: unshare and sh exec). */
const inPrivateNet = (cmd: string[]): string[] => ['unshare', '--net', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...cmd];

interface Run {
  pid: number;
  /** stdout and stderr, in arrival order. */
  output: () => string;
  /** The last line written to stderr (where start writes its one-line failure). */
  lastError: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(text: string, timeoutMs?: number): Promise<void>;
}

const runs: Run[] = [];
const dirs: string[] = [];
/** Processes a test found (node under npm, redis-server) that must not outlive it if it fails. */
const found: number[] = [];

const start = (cmd: string[], env: Record<string, string>): Run => {
  const [file, ...args] = cmd;
  const child = spawn(file ?? 'false', args, {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT: '5s', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const waiters = new Set<() => void>();
  const keep = (d: Buffer): void => {
    out += d.toString();
    for (const w of waiters) w();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const run: Run = {
    pid: child.pid ?? -1,
    output: () => out,
    lastError: () => err.trim().split('\n').at(-1) ?? '',
    exited,
    waitFor: (text, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (!out.includes(text)) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => (cleanup(), reject(new Error(`no "${text}" after ${timeoutMs} ms:\n${out.slice(-3000)}`))), timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        void exited.then(() => (out.includes(text) ? undefined : (cleanup(), reject(new Error(`exited before "${text}":\n${out.slice(-3000)}`)))));
        check();
      }),
  };
  runs.push(run);
  return run;
};

const tempDir = async (): Promise<string> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-start-'));
  dirs.push(dir);
  return dir;
};

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
};

const childrenOf = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};

/** Processes whose working directory is `dir` (redis-server runs in its --dir). */
const processesIn = (dir: string): number[] =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readlinkSync(`/proc/${p}/cwd`) === dir;
      } catch {
        return false;
      }
    })
    .map(Number);

const logLines = (out: string): Record<string, unknown>[] =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

afterEach(async () => {
  for (const pid of [...runs.splice(0).map((r) => r.pid), ...found.splice(0)]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('npm start', () => {
  it.skipIf(!privateNet)('drains on SIGTERM sent to the npm process, and leaves neither node nor its redis-server behind', async () => {
    const dir = await tempDir();
    const run = start(inPrivateNet(['npm', 'start']), { DATA_DIR: dir, PORT: '0' });
    await run.waitFor('"msg":"signspool started"');
    const started = logLines(run.output()).find((l) => l['msg'] === 'signspool started');
    // On a socket in its data dir, owner only (bin/redis-server.ts).
    expect(started?.['redis']).toBe(`unix:${path.join(dir, 'redis', 'redis.sock')} (redis-server started by signspool, data in ${path.join(dir, 'redis')})`);
    expect(statSync(path.join(dir, 'redis', 'redis.sock')).mode & 0o777).toBe(0o700);
    // npm's child is node itself (the script execs it); node's child is the redis-server.
    const [node] = childrenOf(run.pid);
    expect(node).toBeDefined();
    expect(readFileSync(`/proc/${node}/cmdline`, 'utf8')).toContain('dist/bin/start.js');
    const redis = processesIn(path.join(dir, 'redis'));
    found.push(node ?? -1, ...redis);
    expect(redis).toHaveLength(1);

    process.kill(run.pid, 'SIGTERM');
    const exit = await run.exited;
    const lines = logLines(run.output());
    expect(lines.find((l) => l['msg'] === 'shutting down')?.['reason']).toBe('SIGTERM');
    expect(lines.some((l) => l['msg'] === 'worker stopped')).toBe(true);
    expect(exit.code).toBe(0);
    expect(alive(node ?? -1)).toBe(false);
    expect(redis.filter(alive)).toEqual([]);
  });
});

describe('node dist/bin/start.js', () => {
  it('says which Redis it cannot reach at once, then exits 1 with one line after REDIS_CONNECT_TIMEOUT', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const began = Date.now();
    const run = start(['node', 'dist/bin/start.js', 'all'], {
      DATA_DIR: dir,
      PORT: '0',
      REDIS_URL: `redis://:hunter2secret@127.0.0.1:${port}`,
      REDIS_CONNECT_TIMEOUT: '2s',
    });
    await run.waitFor('cannot reach Redis at');
    const warnedAfter = Date.now() - began;
    const exit = await run.exited;
    const elapsed = Date.now() - began;
    expect(exit.code).toBe(1);
    const warn = logLines(run.output()).find((l) => l['level'] === 40);
    expect(warn?.['redis']).toBe(`redis://127.0.0.1:${port}`);
    expect(warn?.['error']).toBe('ECONNREFUSED');
    // Warned before the timeout ran out; gave up after it.
    expect(warnedAfter).toBeLessThan(elapsed - 1500);
    expect(run.lastError()).toBe(`signspool: failed to start: cannot reach Redis at redis://127.0.0.1:${port} after 2 s (ECONNREFUSED); check REDIS_URL`);
    expect(run.output()).not.toContain('hunter2secret');
    expect(run.output()).not.toContain('Generated an API key');
  });

  it('refuses a port in use before starting anything: exit 1, no redis-server, no key', async () => {
    const dir = await tempDir();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const run = start(['node', 'dist/bin/start.js', 'all'], { DATA_DIR: dir, PORT: String(port) });
      const exit = await run.exited;
      expect(exit.code).toBe(1);
      expect(run.lastError()).toBe(`signspool: failed to start: PORT=${port}: 127.0.0.1:${port} is already in use`);
      expect(run.output()).not.toContain('Generated an API key');
      expect(existsSync(path.join(dir, 'redis'))).toBe(false);
      expect(existsSync(path.join(dir, 'api-keys'))).toBe(false);
    } finally {
      blocker.close();
    }
  });

  it.skipIf(!privateNet)('stops the redis-server it spawned when start fails after spawning it', async () => {
    const dir = await tempDir();
    // A keys file it cannot read is found only after Redis is up.
    await writeFile(path.join(dir, 'api-keys'), 'not a key line\n');
    const run = start(inPrivateNet(['node', 'dist/bin/start.js', 'all']), { DATA_DIR: dir, PORT: '0' });
    await run.waitFor('starting redis-server');
    const exit = await run.exited;
    expect(exit.code).toBe(1);
    expect(run.lastError()).toMatch(/^signspool: failed to start: .*api-keys: malformed line\b/);
    expect(existsSync(path.join(dir, 'redis'))).toBe(true);
    expect(processesIn(path.join(dir, 'redis'))).toEqual([]);
  });
});
