/**
 * The express application: createApp(deps) wires routes, auth, metrics and problem+json errors.
 * /metrics is here only with METRICS_PORT=api (and METRICS_TOKEN); by default it has its own server (shared/service-http.ts, as the worker's);
 * /docs and /openapi.json only with DOCS_PUBLIC=true.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express, type RequestHandler } from 'express';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ApiKeyEntry, Config } from '@signspool/shared/config';
import type { Durability } from '@signspool/shared/durability';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import type { OperationStore } from '@signspool/shared/operations/store';
import type { SignerRegistry } from '@signspool/shared/signers/registry';
import type { Spool } from '@signspool/shared/spool/spool';
import { serveServiceRoute } from '@signspool/shared/service-http';
import { ApiKeys } from './auth/api-keys.js';
import { authenticate, operationScope, requireScope } from './auth/auth.js';
import type { OperationEvents } from './operation-events.js';
import { buildOpenApi } from './openapi.js';
import { docsRouter } from './routes/docs.js';
import type { ConnectionLimits } from './http/connection-limits.js';
import { chain } from './http/chain.js';
import { dropHalfClosedReaders } from './http/half-close.js';
import { API_SECURITY_HEADERS, helmetHeaders, securityHeaders } from './http/security-headers.js';
import { ErrorAnswers, errorHandler, notFoundHandler } from './http/problem.js';
import { observeDuration } from './http/duration.js';
import { rememberMount, routeLabel } from './http/route-label.js';
import { closesConnection } from './http/drain.js';
import { keepAliveHeader } from './http/keep-alive.js';
import { FastStatusReads } from './read/fast-status.js';
import { LongPolls } from './read/long-poll.js';
import { checkReadiness, STOPPING } from './routes/health.js';
import { operationsRoutes } from './routes/operations.js';
import { TenantRateLimits } from './rate-limits.js';
import { FastUploads } from './upload/fast-upload.js';
import { traceUploads } from './upload/span.js';
import { adminStatsRouter } from './routes/admin.js';
import { ADMIN_QUEUES_PATH, queueBoardRouter } from './routes/queue-board.js';
import { limitsRouter } from './routes/limits.js';
import type { SubmissionUndo } from '@signspool/shared/operations/undo';
import type { RedisHealth } from './redis-health.js';

export interface AppDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  redis: Redis;
  queue: Queue;
  webhookQueue: Queue;
  store: OperationStore;
  spool: Spool;
  durability: Durability;
  /** The keys (ApiKeys: reloadable, bin/start.ts), or fixed entries. */
  apiKeys: readonly ApiKeyEntry[] | ApiKeys;
  events?: OperationEvents;
  undo: SubmissionUndo;
  signers: SignerRegistry;
  /** Whether Redis answers, as requests find it (every request's error tells it; uploads check it). */
  redisHealth?: RedisHealth;
  /** Connections held per tenant while its requests are in progress (a no-op without it). */
  connections?: ConnectionLimits;
  /** True once the api is stopping: /readyz answers 503 (a load balancer stops sending). */
  stopping?: () => boolean;
}

/** Operation JSON is per tenant and changes: no cache keeps it (the download sets its own). */
const noStore: RequestHandler = (_req, res, next) => {
  res.setHeader('Cache-Control', 'no-store');
  next();
};

export interface ApiApp {
  /** The express application. */
  app: Express;
  /** The status read's fast path, in front of it (read/fast-status.ts). */
  statusReads: FastStatusReads;
  /** The upload's fast path, in front of it (upload/fast-upload.ts). */
  uploads: FastUploads;
  /** The server's request listener: the fast paths, else express. */
  listener: (req: IncomingMessage, res: ServerResponse) => void;
}

export const createApp = (deps: AppDeps): ApiApp => {
  const { config, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('etag', false);
  const duration: RequestHandler = (req, res, next) => {
    observeDuration(metrics, req.method, res, () => routeLabel(req) ?? 'unmatched');
    next();
  };
  const headers = helmetHeaders(API_SECURITY_HEADERS);
  // Every request: security headers (http/security-headers.ts), its duration, half-closed readers dropped; one layer (http/chain.ts).
  app.use(chain(securityHeaders(headers), duration, dropHalfClosedReaders));
  // /healthz, /readyz, and /metrics unless it has its own port (shared/service-http.ts, as the worker serves them).
  const serviceRoutes = {
    readiness: () => (deps.stopping?.() ? Promise.resolve(STOPPING) : checkReadiness(deps.redis, deps.spool, config.spoolMinFreeBytes)),
    metrics: config.metrics.port === undefined ? { metrics, token: config.metrics.token } : undefined,
  };
  // Routes of their own (not a middleware every request passes through): express lists them.
  const serveService: RequestHandler = (req, res, next) => {
    serveServiceRoute(req, res, serviceRoutes).then((served) => {
      if (!served) next();
    }, next);
  };
  for (const p of ['/healthz', '/readyz', ...(serviceRoutes.metrics ? ['/metrics'] : [])]) app.get(p, serveService);
  if (config.docsPublic) {
    const openapi = buildOpenApi({ serverUrl: config.publicUrl, metricsHere: config.metrics.port === undefined, jwt: config.jwt !== undefined });
    app.get('/openapi.json', (_req, res) => {
      res.json(openapi);
    });
    app.use(docsRouter());
  }
  const limits = new TenantRateLimits(deps.redis, config.queuePrefix, config.limits, metrics, deps.logger);
  // One lookup for express's authentication and the fast path; a reload (SIGHUP) changes what it finds.
  const apiKey = (deps.apiKeys instanceof ApiKeys ? deps.apiKeys : new ApiKeys(deps.apiKeys)).lookup;
  const auth = authenticate({ keys: apiKey, jwt: config.jwt });
  // Long polls held per tenant (LONG_POLL_TENANT_MAX): each holds a connection and some memory; one count for both paths.
  const longPolls = new LongPolls(deps.events, config.limits.longPollsPerTenant);
  // Once authenticated, the request holds its connection for its tenant (HTTP_TENANT_MAX_CONNECTIONS).
  const tenantConnection: RequestHandler = deps.connections?.forTenant() ?? ((_req, _res, next) => next());
  const operations = operationsRoutes({ ...deps, limits, longPolls });
  app.use(
    '/v1/operations',
    chain(rememberMount, traceUploads, noStore, auth, tenantConnection, requireScope(operationScope), limits.requests()),
    // The router stays a layer of its own: express (and the OpenAPI test) list its routes.
    operations.router,
  );
  app.use('/v1/limits', chain(rememberMount, auth, tenantConnection, requireScope(operationScope), limits.requests()), limitsRouter(config));
  if (config.adminToken) {
    const admin = {
      token: config.adminToken,
      redis: deps.redis,
      prefix: config.queuePrefix,
      queue: deps.queue,
      webhookQueue: deps.webhookQueue,
      signers: deps.signers,
    };
    app.use('/v1/admin', rememberMount, adminStatsRouter(admin));
    app.use(
      ADMIN_QUEUES_PATH,
      rememberMount,
      queueBoardRouter({
        token: config.adminToken,
        queue: deps.queue,
        webhookQueue: deps.webhookQueue,
        writable: config.adminQueuesWritable,
        publicUrl: config.publicUrl,
      }),
    );
  }
  app.use(notFoundHandler);
  const errors = new ErrorAnswers(deps.logger, config.upload, deps.redisHealth);
  app.use(errorHandler(errors));
  const keepAlive = keepAliveHeader(config.httpKeepAliveTimeoutMs);
  const statusReads = new FastStatusReads({ apiKey, connections: deps.connections, limits, longPolls, store: deps.store, metrics, errors, headers, keepAlive });
  const uploads = new FastUploads({ apiKey, connections: deps.connections, submissions: operations.submissions, metrics, errors, headers, keepAlive });
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    if (statusReads.serve(req, res) || uploads.serve(req, res)) return;
    // First, as the fast path writes it (http/keep-alive.ts); not on an answer a stop closes (drain.ts).
    if (!closesConnection(res)) res.setHeader('Keep-Alive', keepAlive);
    app(req, res);
  };
  return { app, statusReads, uploads, listener };
};
