/**
 * ioredis factories. The api fails fast (no offline queue: a request must not hang while Redis
 * is down, it gets a 503; and every command has a deadline, `commandTimeout`, so a Redis that
 * accepts connections but does not answer — stopped, swapping — gets the same 503); workers wait
 * for Redis forever (maxRetriesPerRequest: null, as BullMQ requires for blocking connections).
 */
import { Redis, type RedisOptions } from 'ioredis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2000);

export const createApiRedis = (url: string, commandTimeoutMs: number, extra: RedisOptions = {}): Redis =>
  new Redis(url, {
    commandTimeout: commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    retryStrategy,
    lazyConnect: false,
    ...extra,
  });

export const createWorkerRedis = (url: string, extra: RedisOptions = {}): Redis =>
  new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy,
    ...extra,
  });

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export const waitForRedis = async (redis: Redis, timeoutMs = 5000): Promise<void> => {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not ready after ${timeoutMs} ms (status ${redis.status})`));
    }, timeoutMs);
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
};

/** Closes a connection, never throws, idempotent. */
export const closeRedis = async (redis: Redis): Promise<void> => {
  if (redis.status === 'end') return;
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
};
