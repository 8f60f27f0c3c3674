/**
 * Which Redis the service talks to: one URL, or a primary found through Redis Sentinel
 * (REDIS_SENTINELS + REDIS_SENTINEL_NAME; REDIS_URL then only carries the password and db).
 * Also the start-up wait for it: a bounded retry with backoff that says which Redis it tries.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';

/** The ioredis options that select the server (empty for a plain URL). BullMQ duplicates keep them. */
export const redisTargetOptions = (config: Pick<Config, 'redisSentinel'>): RedisOptions => {
  const s = config.redisSentinel;
  if (!s) return {};
  return {
    sentinels: s.sentinels,
    name: s.name,
    ...(s.password === undefined ? {} : { sentinelPassword: s.password }),
    // After a failover the old primary may come back as a replica: reconnect to the new one.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  };
};

/** The URL ioredis is given: in Sentinel mode only its credentials and db are used. */
export const sentinelUrl = (config: Pick<Config, 'redisUrl'>): string => config.redisUrl ?? 'redis://';

/** A description for logs and the banner, never with a password. */
export const describeRedis = (url: string, config: Pick<Config, 'redisSentinel'>): string => {
  const s = config.redisSentinel;
  if (s) return `sentinel primary "${s.name}" via ${s.sentinels.map((x) => `${x.host}:${x.port}`).join(',')}`;
  // A Unix socket's path (its query may carry a password and db: not shown).
  if (url.startsWith('/') && !url.startsWith('//')) return `unix:${url.split('?')[0] ?? url}`;
  try {
    const u = new URL(url);
    u.password = '';
    u.username = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparsable REDIS_URL)';
  }
};

export class RedisUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisUnreachableError';
  }
}

/**
 * Connects once, retrying with capped exponential backoff, until Redis answers PING or
 * `timeoutMs` has passed (then RedisUnreachableError). Logs the first failure at once and
 * every retry after it at debug level.
 */
export const waitUntilReachable = async (url: string, config: Pick<Config, 'redisSentinel' | 'redisConnectTimeoutMs'>, logger: Logger): Promise<void> => {
  const target = describeRedis(url, config);
  const deadline = Date.now() + config.redisConnectTimeoutMs;
  let lastError = 'no answer';
  let warned = false;
  const redis = new Redis(url, {
    ...redisTargetOptions(config),
    lazyConnect: true,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    connectTimeout: Math.min(5000, Math.max(100, config.redisConnectTimeoutMs)),
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    sentinelRetryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  });
  redis.on('error', (err: Error & { code?: string }) => {
    lastError = err.code ?? err.message;
    if (warned) {
      logger.debug({ redis: target, error: lastError }, 'Redis still unreachable');
      return;
    }
    warned = true;
    logger.warn(
      { redis: target, error: lastError, timeoutMs: config.redisConnectTimeoutMs },
      `cannot reach Redis at ${target} (${lastError}); retrying for up to ${Math.round(config.redisConnectTimeoutMs / 1000)} s (REDIS_CONNECT_TIMEOUT)`,
    );
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis
        .connect()
        .catch(() => undefined)
        .then(() => redis.ping()),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new RedisUnreachableError(
                `cannot reach Redis at ${target} after ${Math.round(config.redisConnectTimeoutMs / 1000)} s (${lastError}); check REDIS_URL${config.redisSentinel ? ' and REDIS_SENTINELS' : ''}`,
              ),
            ),
          Math.max(0, deadline - Date.now()),
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
};
