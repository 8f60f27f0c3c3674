/** /healthz: the process is alive. /readyz: Redis answers and the spool is writable with free space. */
import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Router } from 'express';
import type { Redis } from 'ioredis';
import { SignspoolError } from '@signspool/shared/errors';
import type { Spool } from '@signspool/shared/spool/spool';
import { sendProblem } from '../http/problem.js';

export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);

export const checkReadiness = async (redis: Redis, spool: Spool, minFreeBytes: number): Promise<Record<string, ReadinessCheck>> => {
  const redisCheck = withTimeout(redis.ping(), 1000).then(
    (): ReadinessCheck => ({ ok: true }),
    (): ReadinessCheck => ({ ok: false, detail: 'Redis does not answer' }),
  );
  const spoolCheck = (async (): Promise<ReadinessCheck> => {
    try {
      const probe = path.join(spool.tmpRoot, `ready-${randomUUID()}`);
      await withTimeout(writeFile(probe, 'ok'), 1000);
      await rm(probe, { force: true });
      const free = await spool.freeBytes();
      return free >= minFreeBytes ? { ok: true } : { ok: false, detail: 'spool free space below SPOOL_MIN_FREE_BYTES' };
    } catch {
      return { ok: false, detail: 'spool is not writable' };
    }
  })();
  const [r, s] = await Promise.all([redisCheck, spoolCheck]);
  return { redis: r, spool: s };
};

export const healthRouter = (redis: Redis, spool: Spool, minFreeBytes: number): Router => {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (req, res) => {
    const checks = await checkReadiness(redis, spool, minFreeBytes);
    if (Object.values(checks).every((c) => c.ok)) {
      res.json({ status: 'ready', checks });
      return;
    }
    const failing = Object.entries(checks)
      .filter(([, c]) => !c.ok)
      .map(([k, c]) => `${k}: ${c.detail ?? 'failing'}`);
    sendProblem(res, new SignspoolError('SERVICE_UNAVAILABLE', { detail: failing.join('; '), extensions: { checks } }), req.path);
  });
  return router;
};
