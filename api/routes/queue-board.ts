/**
 * Bull Board under /admin/queues (mounted only with ADMIN_TOKEN): the sign and webhook queues in the
 * browser, hardened for a page browsers reach with Basic credentials they resend by themselves.
 * Read-only unless ADMIN_QUEUES_WRITABLE=true (every change refused here, before Bull Board, and its
 * buttons hidden); changes only from the same origin (same-origin-writes.ts); `Cache-Control:
 * no-store`; no `X-Powered-By`; a CSP of its own that lets it render (scripts from this origin
 * only); and errors as problem+json (Redis down: 503 with Retry-After, never an internal message).
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type Express, type RequestHandler } from 'express';
import type { Queue } from 'bullmq';
import { SignspoolError } from '@signspool/shared/errors';
import { isRedisUnavailable, redisUnavailableError } from '@signspool/shared/redis/unavailable';
import { requireAdminToken } from '../auth/admin-auth.js';
import { sameOriginWrites } from '../http/same-origin-writes.js';
import { pageCsp } from '../http/page-csp.js';

export const ADMIN_QUEUES_PATH = '/admin/queues';

export interface QueueBoardDeps {
  token: string;
  queue: Queue;
  webhookQueue: Queue;
  writable: boolean;
  publicUrl: string | undefined;
}

/** The board's page sets <base href="/admin/queues/">. */
const boardCsp = pageCsp("'self'");

const noStore: RequestHandler = (_req, res, next) => {
  res.setHeader('Cache-Control', 'no-store');
  next();
};

const readOnly: RequestHandler = (req, _res, next) => {
  if (req.method === 'GET' || req.method === 'HEAD') return next();
  next(new SignspoolError('ADMIN_READ_ONLY', { detail: 'set ADMIN_QUEUES_WRITABLE=true to change queues from the board' }));
};

/** What Bull Board throws goes to the api's problem+json handler: Redis down is a 503, the rest an INTERNAL without its message. */
const toCatalog = (err: Error): never => {
  if (isRedisUnavailable(err)) throw redisUnavailableError();
  throw new SignspoolError('INTERNAL', { cause: err });
};

export const queueBoardRouter = (deps: QueueBoardDeps): Router => {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(ADMIN_QUEUES_PATH);
  const options = { readOnlyMode: !deps.writable, allowRetries: deps.writable };
  createBullBoard({ queues: [new BullMQAdapter(deps.queue, options), new BullMQAdapter(deps.webhookQueue, options)], serverAdapter: adapter });
  // Replaces Bull Board's handler (a 500 carrying the error's message); its router calls it at request time.
  adapter.setErrorHandler(toCatalog);
  const board = adapter.getRouter() as Express;
  board.disable('x-powered-by');
  const router = Router();
  router.use(noStore, boardCsp, requireAdminToken(deps.token, 'Basic'), sameOriginWrites({ publicUrl: deps.publicUrl }));
  if (!deps.writable) router.use(readOnly);
  router.use(board);
  return router;
};
