/** The private redis-server (bin/redis-server.ts): on a Unix socket in its directory, owner only, without a TCP port; on a port when the socket's path would not fit. */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeRedis, createApiRedis, waitForRedis } from '@signspool/shared/redis/clients';
import { spawnRedisServer, type RunningRedisServer } from '../../../bin/redis-server.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const spawnIn = async (dir: string): Promise<RunningRedisServer> => {
  const server = await spawnRedisServer({ dir, unixSocket: true });
  cleanup.push(() => server.stop());
  return server;
};

const tempDir = async (): Promise<string> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-redis-sock-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
};

describe('spawnRedisServer with unixSocket', () => {
  it('listens on <dir>/redis.sock, owner only, with no TCP port, and its URL is what clients connect with', async () => {
    const dir = await tempDir();
    const server = await spawnIn(path.join(dir, 'redis'));
    const socket = path.join(dir, 'redis', 'redis.sock');
    expect(server).toMatchObject({ url: socket, socket, port: 0 });
    const s = await stat(socket);
    expect(s.isSocket()).toBe(true);
    expect(s.mode & 0o777).toBe(0o700);
    const client = createApiRedis(server.url, 2000);
    try {
      await waitForRedis(client, 5000);
      expect(await client.config('GET', 'port')).toEqual(['port', '0']);
      await client.set('k', 'v');
      expect(await client.get('k')).toBe('v');
    } finally {
      await closeRedis(client);
    }
  });

  it('listens on a loopback port when the socket path would not fit a socket address', async () => {
    const dir = await tempDir();
    const server = await spawnIn(path.join(dir, 'x'.repeat(100)));
    expect(server.socket).toBeUndefined();
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    const client = createApiRedis(server.url, 2000);
    try {
      await waitForRedis(client, 5000);
      expect(await client.ping()).toBe('PONG');
    } finally {
      await closeRedis(client);
    }
  });
});
