/** The api's Redis client (shared/redis/clients.ts): the commands of one event-loop turn leave in one write at the turn's end. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { closeRedis, createApiRedis, waitForRedis } from '@signspool/shared/redis/clients';
import { spawnRedisServer, type RunningRedisServer } from '../../../../bin/redis-server.js';

let dir: string;
let server: RunningRedisServer;
let client: Redis;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-redis-turn-'));
  server = await spawnRedisServer({ dir: path.join(dir, 'redis'), unixSocket: true });
  client = createApiRedis(server.url, 2000);
  await waitForRedis(client, 5000);
});

afterAll(async () => {
  await closeRedis(client);
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('createApiRedis', () => {
  it('holds the commands sent in one turn in the socket until the turn ends, then writes them together and answers each', async () => {
    const sent = [client.set('turn:a', '1'), client.incr('turn:n'), client.get('turn:a')];
    // Nothing written yet: all three commands wait in the socket's buffer.
    expect(client.stream.writableCorked).toBe(1);
    expect(client.stream.writableLength).toBeGreaterThan(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(client.stream.writableCorked).toBe(0);
    expect(client.stream.writableLength).toBe(0);
    expect(await Promise.all(sent)).toEqual(['OK', 1, '1']);
  });

  it('holds each later turn again, and a script and a pipeline alike', async () => {
    const first = client.incr('turn:m');
    await new Promise((resolve) => setImmediate(resolve));
    const script = client.eval("return redis.call('INCR', KEYS[1])", 1, 'turn:m');
    const piped = client.pipeline().incr('turn:m').get('turn:m').exec();
    expect(client.stream.writableCorked).toBe(1);
    expect(await Promise.all([first, script, piped])).toEqual([
      1,
      2,
      [
        [null, 3],
        [null, '3'],
      ],
    ]);
  });

  it('fails a command at once while not connected, as before (the offline queue is off)', async () => {
    const other = createApiRedis(server.url, 2000, { lazyConnect: true });
    try {
      await expect(other.get('turn:a')).rejects.toThrow(/Stream isn't writeable/);
    } finally {
      other.disconnect();
    }
  });
});
