/**
 * Composition root: `tsx bin/start.ts all|api|worker`.
 * all    — api and worker in one process (npm start); with no REDIS_URL it uses 127.0.0.1:6379,
 *          or starts its own redis-server with a data dir under DATA_DIR.
 * api    — the HTTP api only (scale-out).
 * worker — the signing worker only (scale-out).
 */
import './threadpool.js';
import path from 'node:path';
import { ApiServer } from '@signspool/api/server';
import { resolveApiKeys } from '@signspool/api/auth';
import { ConfigError, loadConfig, type Config } from '@signspool/shared/config';
import { createLogger, type Logger } from '@signspool/shared/logger';
import { createMetrics } from '@signspool/shared/metrics';
import { DEFAULT_REDIS_URL } from '@signspool/shared/redis';
import { isPortOpen, spawnRedisServer } from '@signspool/shared/redis-server';
import { ShutdownManager } from '@signspool/shared/shutdown';
import { WorkerHttpServer } from '@signspool/worker/worker-http-server';
import { missingWorkerNodeFlags } from '@signspool/worker/node-flags';
import { SigningWorker } from '@signspool/worker/worker';

type Mode = 'all' | 'api' | 'worker';

const resolveRedis = async (config: Config, mode: Mode, logger: Logger, shutdown: ShutdownManager): Promise<string> => {
  if (config.redisUrl) return config.redisUrl;
  if (mode !== 'all' || (await isPortOpen(6379))) return DEFAULT_REDIS_URL;
  const dir = path.join(config.dataDir, 'redis');
  logger.info({ dir }, 'no Redis at REDIS_URL or 127.0.0.1:6379: starting redis-server');
  const server = await spawnRedisServer({ dir, appendOnly: true, appendFsync: config.durability.mode === 'strict' ? 'always' : 'everysec' });
  shutdown.register('redis-server', () => server.stop());
  return server.url;
};

const main = async (): Promise<void> => {
  const mode = (process.argv[2] ?? 'all') as Mode;
  if (!['all', 'api', 'worker'].includes(mode)) throw new ConfigError(`usage: start.ts all|api|worker (got ${mode})`);
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, name: `signspool-${mode}` });
  const shutdown = new ShutdownManager(logger, config.shutdownTimeoutMs + 5000);
  shutdown.installSignalHandlers();
  const redisUrl = await resolveRedis(config, mode, logger, shutdown);
  const cfg: Config = { ...config, redisUrl };
  const metrics = createMetrics();

  if (mode === 'all' || mode === 'worker') {
    const missing = missingWorkerNodeFlags();
    if (missing.length > 0) logger.warn({ missing }, 'the worker runs best with these node flags (see worker/node-flags.ts): under load, expect frequent major GCs without them');
    const worker = new SigningWorker({ config: cfg, logger, metrics });
    await worker.start();
    shutdown.register('worker', () => worker.stop());
    if (mode === 'worker') {
      const http = new WorkerHttpServer({ host: cfg.host, port: cfg.workerMetricsPort, metrics, readiness: () => worker.readiness(), token: cfg.metrics.token });
      const url = await http.start();
      logger.info({ url }, 'worker metrics listening');
      shutdown.register('worker-http', () => http.stop());
    }
  }
  if (mode === 'all' || mode === 'api') {
    const keys = await resolveApiKeys(cfg.apiKeys, cfg.dataDir);
    if (keys.generatedKey) {
      // Printed once, on purpose, to the terminal: only its hash is kept (in keys.file).
      process.stdout.write(
        `\nGenerated an API key for tenant "default" (only its hash is kept in ${keys.file}):\n\n  ${keys.generatedKey}\n\nKeep it now: it will not be shown again.\n\n`,
      );
    }
    const api = new ApiServer({ config: cfg, logger, metrics, apiKeys: keys.entries });
    await api.start();
    shutdown.register('api', () => api.stop());
  }
};

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`signspool: ${err.message}\n`);
  } else {
    process.stderr.write(`signspool: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exit(1);
});
