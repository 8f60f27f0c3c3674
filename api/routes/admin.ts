/**
 * Operators' views, mounted only when ADMIN_TOKEN is set (otherwise these paths are 404 like any
 * unknown route): GET /v1/admin/stats and GET /v1/admin/signers (JSON) and Bull Board under
 * /admin/queues (the sign and webhook queues, in the browser). All take the admin token, never an API key.
 */
import { Router } from 'express';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { requireAdminToken } from '../auth/admin-auth.js';
import type { SignerRegistry } from '@signspool/shared/signers/registry';
import { readAdminSigners } from '../admin-signers.js';
import { AdminStatsReader } from '../admin-stats.js';

export interface AdminRouteDeps {
  token: string;
  redis: Redis;
  prefix: string;
  queue: Queue;
  webhookQueue: Queue;
  /** The signing identities (GET /v1/admin/signers reads the current snapshot). */
  signers: SignerRegistry;
}

/** GET /v1/admin/stats and GET /v1/admin/signers. */
export const adminStatsRouter = (deps: AdminRouteDeps): Router => {
  const router = Router();
  const reader = new AdminStatsReader(deps.redis, deps.prefix, { sign: deps.queue, webhook: deps.webhookQueue });
  router.use(requireAdminToken(deps.token));
  router.get('/stats', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json(await reader.read());
  });
  router.get('/signers', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json(await readAdminSigners(deps.signers.identities, deps.redis, deps.prefix));
  });
  return router;
};
