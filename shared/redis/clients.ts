/**
 * ioredis factories. The api fails fast (no offline queue: a request must not hang while Redis
 * is down, it gets a 503; and every command has a deadline, `commandTimeout`, so a Redis that
 * accepts connections but does not answer — stopped, swapping — gets the same 503); workers wait
 * for Redis forever (maxRetriesPerRequest: null, as BullMQ requires for blocking connections).
 * The api's client writes the commands of one event-loop turn in one socket write.
 */
import { type Command, Redis, type RedisOptions } from 'ioredis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2000);

/**
 * A client whose commands sent in one turn of the event loop (the requests whose bytes arrived
 * together) leave in one write at the turn's end, instead of one write (and one wake-up of Redis)
 * each. Each command is still sent, timed and answered on its own.
 */
class TurnWritesRedis extends Redis {
  private corked: Redis['stream'] | undefined;
  private readonly uncork = (): void => {
    this.corked?.uncork();
    this.corked = undefined;
  };

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    if (this.corked === undefined && this.status === 'ready') {
      this.corked = this.stream;
      this.corked.cork();
      setImmediate(this.uncork);
    }
    return super.sendCommand(command, stream);
  }
}

export const createApiRedis = (url: string, commandTimeoutMs: number, extra: RedisOptions = {}): Redis =>
  new TurnWritesRedis(url, {
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
