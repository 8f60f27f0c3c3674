/** The worker's small HTTP server: /metrics (its own registry; METRICS_TOKEN applies), /healthz and /readyz (with the detail of each check). */
import http from 'node:http';
import { SignspoolError } from '@signspool/shared/errors';
import { closeServer, listen } from '@signspool/shared/http-listen';
import type { Metrics } from '@signspool/shared/metrics';
import { metricsAllowed, METRICS_CHALLENGE } from '@signspool/shared/metrics-access';

export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
}

const sendJson = (res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void => {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(JSON.stringify(body));
};

const sendProblem = (res: http.ServerResponse, err: SignspoolError, instance: string): void =>
  sendJson(res, err.status, err.toProblem(instance), 'application/problem+json');

export class WorkerHttpServer {
  private server: http.Server | undefined;
  private stopPromise: Promise<void> | undefined;
  url = '';

  constructor(private readonly opts: { host: string; port: number; metrics: Metrics; readiness: () => Promise<Readiness>; token?: string | undefined }) {}

  async start(): Promise<string> {
    const { metrics, readiness } = this.opts;
    this.server = http.createServer((req, res) => {
      void (async () => {
        const url = (req.url ?? '/').split('?')[0] ?? '/';
        if (req.method === 'GET' && url === '/metrics' && !metricsAllowed(req.headers.authorization, this.opts.token)) {
          res.setHeader('www-authenticate', METRICS_CHALLENGE);
          sendProblem(res, new SignspoolError('UNAUTHORIZED', { detail: 'send the metrics token as a bearer token' }), url);
        } else if (req.method === 'GET' && url === '/metrics') {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(await metrics.registry.metrics());
        } else if (req.method === 'GET' && url === '/healthz') {
          sendJson(res, 200, { status: 'ok' });
        } else if (req.method === 'GET' && url === '/readyz') {
          const r = await readiness().catch((err: unknown) => ({ ready: false, checks: { readiness: (err as Error).message } }));
          if (r.ready) sendJson(res, 200, { status: 'ready', checks: r.checks });
          else sendProblem(res, new SignspoolError('SERVICE_UNAVAILABLE', { detail: 'worker not ready', extensions: { checks: r.checks } }), url);
        } else {
          sendProblem(res, new SignspoolError('ROUTE_NOT_FOUND', { detail: `no route ${req.method ?? ''} ${url}` }), url);
        }
      })().catch(() => res.destroy());
    });
    const server = this.server;
    this.url = await listen(server, this.opts.port, this.opts.host);
    return this.url;
  }

  stop(): Promise<void> {
    this.stopPromise ??= closeServer(this.server);
    return this.stopPromise;
  }
}
