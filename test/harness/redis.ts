/**
 * Redis for tests, in this order: REDIS_URL if set; else a private redis-server (from PATH) on a
 * free port with a temp dir; else testcontainers where a Docker engine runs; else fail with a
 * message saying how to get one. The machine's own Redis on 6379 is never used implicitly.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { spawnRedisServer } from '../../bin/redis-server.js';

export interface TestRedis {
  url: string;
  source: 'env' | 'redis-server' | 'testcontainers';
  stop(): Promise<void>;
}

const hasRedisServer = (): boolean => spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

export const startTestRedis = async (opts: { appendOnly?: boolean } = {}): Promise<TestRedis> => {
  if (process.env['REDIS_URL']) return { url: process.env['REDIS_URL'], source: 'env', stop: async () => undefined };
  if (hasRedisServer()) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-redis-'));
    const server = await spawnRedisServer({ dir, appendOnly: opts.appendOnly ?? false });
    return {
      url: server.url,
      source: 'redis-server',
      stop: async () => {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  try {
    const { GenericContainer } = await import('testcontainers');
    const container = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start();
    return {
      url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`,
      source: 'testcontainers',
      stop: async () => {
        await container.stop();
      },
    };
  } catch (err) {
    throw new Error(
      `no Redis for tests: set REDIS_URL, or install redis-server (apt-get install redis-server), or run a Docker engine for testcontainers (${err instanceof Error ? err.message : String(err)})`,
    );
  }
};
