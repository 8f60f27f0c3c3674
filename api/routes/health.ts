/**
 * The api's readiness (served by shared/service-http.ts at /readyz): Redis answers and the spool is
 * writable with free space; never while the api is stopping.
 */
import { rm, writeFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { CHECK_OK, redisCheck, type Readiness } from '@signspool/shared/service-http';
import type { Spool } from '@signspool/shared/spool/spool';

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);

export const checkReadiness = async (redis: Redis, spool: Spool, minFreeBytes: number): Promise<Readiness> => {
  const spoolCheck = (async (): Promise<string> => {
    try {
      const probe = spool.tmpPath('ready');
      const written = writeFile(probe, 'ok');
      // However the wait ends, the probe goes once its write has (a write that timed out still lands).
      const removed = written
        .catch(() => undefined)
        .then(() => rm(probe, { force: true }))
        .catch(() => undefined);
      await withTimeout(written, 1000);
      await removed;
      const free = await spool.freeBytes();
      return free >= minFreeBytes ? CHECK_OK : 'spool free space below SPOOL_MIN_FREE_BYTES';
    } catch {
      return 'spool is not writable';
    }
  })();
  const [r, s] = await Promise.all([redisCheck(redis, 1000), spoolCheck]);
  return { ready: r === CHECK_OK && s === CHECK_OK, checks: { redis: r, spool: s } };
};

/** The readiness of a stopping api: not ready, whatever its dependencies (a client retries elsewhere or after the restart). */
export const STOPPING: Readiness = {
  ready: false,
  checks: { stopping: 'the api is stopping' },
  detail: 'the api is stopping (SIGTERM): it answers the requests on its open connections and accepts no new connection',
  retryAfterMs: 1000,
};
