/** The express application: createApp(deps) wires routes, auth, metrics and problem+json errors. */
import express, { type Express } from 'express';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ApiKeyEntry, Config } from '@signspool/shared/config';
import type { Durability } from '@signspool/shared/durability';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import type { OperationStore } from '@signspool/shared/operation-store';
import type { Spool } from '@signspool/shared/spool';
import { requireApiKey } from './auth.js';
import type { OperationEvents } from './operation-events.js';
import { buildOpenApi } from './openapi.js';
import { docsRouter } from './routes/docs.js';
import { errorHandler, notFoundHandler } from './problem.js';
import { healthRouter } from './routes/health.js';
import { operationsRouter } from './routes/operations.js';
import { ADMIN_QUEUES_PATH, adminQueuesRouter, adminStatsRouter } from './routes/admin.js';
import { limitsRouter } from './routes/limits.js';

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
  apiKeys: ApiKeyEntry[];
  events?: OperationEvents;
}

export const createApp = (deps: AppDeps): Express => {
  const { config, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('etag', false);

  app.use((req, res, next) => {
    const started = performance.now();
    res.on('finish', () => {
      const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
      metrics.httpRequestDuration.observe({ method: req.method, route, status: String(res.statusCode) }, (performance.now() - started) / 1000);
    });
    next();
  });

  app.use(healthRouter(deps.redis, deps.spool, config.spoolMinFreeBytes));
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  const openapi = buildOpenApi(config.publicUrl);
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  app.use(docsRouter());
  app.use('/v1/operations', requireApiKey(deps.apiKeys), operationsRouter(deps));
  app.use('/v1/limits', requireApiKey(deps.apiKeys), limitsRouter(config));
  if (config.adminToken) {
    const admin = { token: config.adminToken, redis: deps.redis, prefix: config.queuePrefix, queue: deps.queue, webhookQueue: deps.webhookQueue };
    app.use('/v1/admin', adminStatsRouter(admin));
    app.use(ADMIN_QUEUES_PATH, adminQueuesRouter(admin));
  }
  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger, config.upload));
  return app;
};
