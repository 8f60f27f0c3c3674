/**
 * The service endpoints, served the same way by api and worker: /metrics (METRICS_TOKEN when set),
 * /healthz (the process is alive) and /readyz (one shape: 200 `{ status: 'ready', checks }`, else
 * 503 problem+json SERVICE_UNAVAILABLE naming each failing check, `checks` in its extensions).
 * `serveServiceRoute` answers them on any node:http request (the api's express app passes its
 * requests through it); `ServiceHttpServer` is a small server of them alone (the worker's port, the
 * api's METRICS_PORT), answering 404 to anything else.
 */
import http from 'node:http';
import type { Redis } from 'ioredis';
import { SignspoolError } from './errors.js';
import { closeServer, listen } from './http-listen.js';
import type { Metrics } from './metrics.js';
import { metricsAllowed, METRICS_CHALLENGE } from './metrics-access.js';

/** A process's readiness: each check `'ok'`, or what is wrong with it. */
export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
  /** What makes it not ready, one line (the 503's detail); else the checks not `'ok'` are named. */
  detail?: string;
  /** The 503's Retry-After, when a retry is expected to succeed after it (a stopping process). */
  retryAfterMs?: number;
}

export const CHECK_OK = 'ok';

/** The Redis check of a readiness: `'ok'` when PING answers within `timeoutMs`, else what happened. */
export const redisCheck = async (redis: Redis, timeoutMs: number): Promise<string> => {
  let timer: NodeJS.Timeout | undefined;
  // ping() would wait in ioredis's offline queue while Redis is down: raced against a deadline.
  const answer = await Promise.race([
    redis.ping().catch((err: unknown) => `error: ${(err as Error).message}`),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs))),
  ]);
  clearTimeout(timer);
  return answer === 'PONG' ? CHECK_OK : answer;
};

export interface ServiceRoutes {
  /** /metrics, with METRICS_TOKEN when set; not served without it. */
  metrics?: { metrics: Metrics; token: string | undefined } | undefined;
  /** /healthz and /readyz; not served without it. */
  readiness?: (() => Promise<Readiness>) | undefined;
}

const sendJson = (res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void => {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(JSON.stringify(body));
};

const sendProblem = (res: http.ServerResponse, err: SignspoolError, instance: string): void => {
  if (err.retryAfterMs !== undefined) res.setHeader('retry-after', String(Math.ceil(err.retryAfterMs / 1000)));
  sendJson(res, err.status, err.toProblem(instance), 'application/problem+json');
};

/** Answers `req` when it is one of `routes`' endpoints; false otherwise (the caller answers it). */
export const serveServiceRoute = async (req: http.IncomingMessage, res: http.ServerResponse, routes: ServiceRoutes): Promise<boolean> => {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const url = (req.url ?? '/').split('?')[0] ?? '/';
  if (url === '/metrics' && routes.metrics) {
    const { metrics, token } = routes.metrics;
    if (!metricsAllowed(req.headers.authorization, token)) {
      res.setHeader('www-authenticate', METRICS_CHALLENGE);
      sendProblem(res, new SignspoolError('UNAUTHORIZED', { detail: 'send Authorization: Bearer <METRICS_TOKEN>' }), url);
    } else {
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
    }
    return true;
  }
  if (url === '/healthz' && routes.readiness) {
    sendJson(res, 200, { status: 'ok' });
    return true;
  }
  if (url === '/readyz' && routes.readiness) {
    const r = await routes.readiness().catch((err: unknown): Readiness => ({ ready: false, checks: { readiness: (err as Error).message } }));
    if (r.ready) {
      sendJson(res, 200, { status: 'ready', checks: r.checks });
    } else {
      const detail =
        r.detail ??
        (Object.entries(r.checks)
          .filter(([, v]) => v !== CHECK_OK)
          .map(([k, v]) => `${k}: ${v}`)
          .join('; ') ||
          'not ready');
      sendProblem(
        res,
        new SignspoolError('SERVICE_UNAVAILABLE', {
          detail,
          extensions: { checks: r.checks },
          ...(r.retryAfterMs === undefined ? {} : { retryAfterMs: r.retryAfterMs }),
        }),
        url,
      );
    }
    return true;
  }
  return false;
};

/** A server of the service endpoints alone. */
export class ServiceHttpServer {
  private server: http.Server | undefined;
  private stopPromise: Promise<void> | undefined;
  url = '';

  constructor(private readonly opts: { host: string; port: number } & ServiceRoutes) {}

  async start(): Promise<string> {
    const server = http.createServer((req, res) => {
      void (async () => {
        if (await serveServiceRoute(req, res, this.opts)) return;
        const url = (req.url ?? '/').split('?')[0] ?? '/';
        sendProblem(res, new SignspoolError('ROUTE_NOT_FOUND', { detail: `no route ${req.method ?? ''} ${url}` }), url);
      })().catch(() => res.destroy());
    });
    this.server = server;
    this.url = await listen(server, this.opts.port, this.opts.host);
    return this.url;
  }

  /** Idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= closeServer(this.server);
    return this.stopPromise;
  }
}
