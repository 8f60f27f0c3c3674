/**
 * A Redis Sentinel deployment for tests: a primary, two replicas and three sentinels
 * (`redis-server <conf> --sentinel`), each on a free port with its own directory. Quorum 2,
 * the primary is declared down after 1 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, isPortOpen } from '../../bin/redis-server.js';

export const SENTINEL_MASTER = 'signspool-primary';

export interface SentinelNode {
  port: number;
  process: ChildProcess;
}

export interface SentinelSetup {
  primary: SentinelNode;
  replica: SentinelNode;
  /** A second replica: after a failover one replica is left to confirm writes. */
  replica2: SentinelNode;
  sentinels: SentinelNode[];
  /** REDIS_SENTINELS / REDIS_SENTINEL_NAME for the service. */
  env: Record<string, string>;
  /** Resolves when every sentinel knows the replica and the two others (a failover can start). */
  discovered(): Promise<void>;
  /** The port of the primary as the sentinels see it now. */
  currentPrimaryPort(): Promise<number>;
  /** Starts the first primary again (after a kill) on its port and data, as an operator would; the sentinels make it a replica. */
  restartPrimary(): Promise<void>;
  stop(): Promise<void>;
}

const startNode = async (dir: string, args: string[], port: number): Promise<SentinelNode> => {
  await mkdir(dir, { recursive: true });
  const child = spawn('redis-server', args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  const deadline = Date.now() + 10_000;
  while (!(await isPortOpen(port))) {
    if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not open its port`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return { port, process: child };
};

const dataNodeArgs = (port: number, dir: string): string[] => [
  '--port',
  String(port),
  '--bind',
  '127.0.0.1',
  '--dir',
  dir,
  '--save',
  '',
  '--appendonly',
  'yes',
  // DURABILITY=strict on Redis < 7.2 needs appendfsync always.
  '--appendfsync',
  'always',
  '--maxmemory-policy',
  'noeviction',
  '--loglevel',
  'warning',
];

const stopNode = async (node: SentinelNode): Promise<void> => {
  if (node.process.exitCode !== null || node.process.signalCode !== null) return;
  const exited = new Promise((r) => node.process.once('exit', r));
  node.process.kill('SIGKILL');
  await exited;
};

export const startSentinelSetup = async (dir: string): Promise<SentinelSetup> => {
  const [pPort, rPort, r2Port, ...sPorts] = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  if (!pPort || !rPort || !r2Port) throw new Error('no free ports');
  const startPrimary = (): Promise<SentinelNode> => startNode(path.join(dir, 'primary'), dataNodeArgs(pPort, path.join(dir, 'primary')), pPort);
  const primary = await startPrimary();
  const replica = await startNode(
    path.join(dir, 'replica'),
    [...dataNodeArgs(rPort, path.join(dir, 'replica')), '--replicaof', '127.0.0.1', String(pPort)],
    rPort,
  );
  const replica2 = await startNode(
    path.join(dir, 'replica2'),
    [...dataNodeArgs(r2Port, path.join(dir, 'replica2')), '--replicaof', '127.0.0.1', String(pPort)],
    r2Port,
  );
  const sentinels: SentinelNode[] = [];
  for (const [i, port] of sPorts.entries()) {
    const sdir = path.join(dir, `sentinel-${i}`);
    await mkdir(sdir, { recursive: true });
    const conf = path.join(sdir, 'sentinel.conf');
    await writeFile(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${sdir}`,
        'loglevel warning',
        `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${pPort} 2`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
        `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
        `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
        '',
      ].join('\n'),
    );
    sentinels.push(await startNode(sdir, [conf, '--sentinel'], port));
  }
  const ask = async <T>(fn: (r: Redis) => Promise<T>): Promise<T> => {
    const r = new Redis({ port: sPorts[0] ?? 0, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await r.connect();
      return await fn(r);
    } finally {
      r.disconnect();
    }
  };
  // Sentinels learn replicas from the primary's INFO (every 10 s) and each other from hello messages.
  const discovered = async (): Promise<void> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const views = await Promise.all(
        sentinels.map(async (s) => {
          const r = new Redis({ port: s.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
          try {
            await r.connect();
            const master = (await r.call('SENTINEL', 'MASTER', SENTINEL_MASTER)) as string[];
            const field = (name: string): number => Number(master[master.indexOf(name) + 1]);
            return field('num-slaves') >= 2 && field('num-other-sentinels') >= 2;
          } catch {
            return false;
          } finally {
            r.disconnect();
          }
        }),
      );
      if (views.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error('sentinels did not discover the replica and each other within 30 s');
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  return {
    discovered,
    primary,
    replica,
    replica2,
    sentinels,
    env: { REDIS_SENTINELS: sPorts.map((p) => `127.0.0.1:${p}`).join(','), REDIS_SENTINEL_NAME: SENTINEL_MASTER },
    currentPrimaryPort: () => ask(async (r) => Number(((await r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER)) as string[])[1])),
    async restartPrimary() {
      await stopNode(primary);
      primary.process = (await startPrimary()).process;
    },
    async stop() {
      await Promise.all([...sentinels, replica, replica2, primary].map(stopNode));
    },
  };
};
