/**
 * DURABILITY against real redis-servers: `strict` is refused where Redis cannot honour it (no
 * WAITAOF and no appendfsync always, eviction allowed, no AOF), accepted with appendfsync always;
 * `everysec` starts anyway and says what is at risk.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Durability, DurabilityError } from '@signspool/shared/durability';
import { createLogger } from '@signspool/shared/logger';
import { spawnRedisServer, type RunningRedisServer } from '../bin/redis-server.js';

const capture = () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ level: 'info' }, sink);
  return { logger, lines };
};

describe('durability', () => {
  let dir: string;
  let everysec: RunningRedisServer;
  let always: RunningRedisServer;
  let a: Redis;
  let b: Redis;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-durability-'));
    [everysec, always] = await Promise.all([
      spawnRedisServer({ dir: path.join(dir, 'a'), appendOnly: true }),
      spawnRedisServer({ dir: path.join(dir, 'b'), appendOnly: true, appendFsync: 'always' }),
    ]);
    a = new Redis(everysec.url);
    b = new Redis(always.url);
  });
  afterAll(async () => {
    a?.disconnect();
    b?.disconnect();
    await Promise.all([everysec?.stop(), always?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  const strict = { mode: 'strict' as const, minReplicas: 0, timeoutMs: 1000 };

  it('refuses strict on a Redis that can neither WAITAOF nor fsync every write', async () => {
    const version = /redis_version:(\d+)\.(\d+)/.exec(await a.info('server'));
    const hasWaitAof = Number(version?.[1]) > 7 || (Number(version?.[1]) === 7 && Number(version?.[2]) >= 2);
    if (hasWaitAof) {
      await expect(Durability.check(a, strict, capture().logger)).resolves.toBeInstanceOf(Durability);
    } else {
      await expect(Durability.check(a, strict, capture().logger)).rejects.toThrow(/appendfsync always/);
    }
  });

  it('accepts strict with appendfsync always, and refuses it when eviction is allowed or AOF is off', async () => {
    const d = await Durability.check(b, strict, capture().logger);
    await b.set('k', 'v');
    await expect(d.sync(b)).resolves.toBeUndefined();
    await b.config('SET', 'maxmemory-policy', 'allkeys-lru');
    await expect(Durability.check(b, strict, capture().logger)).rejects.toThrow(DurabilityError);
    await b.config('SET', 'maxmemory-policy', 'noeviction');
    // (Toggling appendonly at runtime starts a rewrite during which Redis refuses to shut down: a server without AOF instead.)
    const off = await spawnRedisServer({ dir: path.join(dir, 'c'), appendOnly: false, appendFsync: 'always' });
    const c = new Redis(off.url);
    try {
      await expect(Durability.check(c, strict, capture().logger)).rejects.toThrow(/appendonly is off/);
    } finally {
      c.disconnect();
      await off.stop();
    }
  });

  it('starts everysec on any Redis and warns about what is at risk', async () => {
    await a.config('SET', 'maxmemory-policy', 'volatile-lru');
    const { logger, lines } = capture();
    await Durability.check(a, { mode: 'everysec', minReplicas: 0, timeoutMs: 1000 }, logger);
    await a.config('SET', 'maxmemory-policy', 'noeviction');
    expect(lines.join('\n')).toMatch(/maxmemory-policy is volatile-lru/);
  });
});
