/** The worker's small HTTP server: /metrics (its own registry; METRICS_TOKEN applies), /healthz and /readyz. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from '@signspool/shared/metrics';
import { metricsAllowed, METRICS_CHALLENGE } from '@signspool/shared/metrics-access';

export class WorkerHttpServer {
  private server: http.Server | undefined;
  private stopPromise: Promise<void> | undefined;
  url = '';

  constructor(
    private readonly opts: { host: string; port: number; metrics: Metrics; ready: () => Promise<boolean>; token?: string | undefined },
  ) {}

  async start(): Promise<string> {
    const { metrics, ready } = this.opts;
    this.server = http.createServer((req, res) => {
      void (async () => {
        const url = (req.url ?? '/').split('?')[0];
        if (req.method === 'GET' && url === '/metrics' && !metricsAllowed(req.headers.authorization, this.opts.token)) {
          res.writeHead(401, { 'content-type': 'application/problem+json', 'www-authenticate': METRICS_CHALLENGE });
          res.end(JSON.stringify({ type: 'https://signspool.dev/problems/unauthorized', title: 'Missing or invalid API key or token', status: 401, code: 'UNAUTHORIZED' }));
        } else if (req.method === 'GET' && url === '/metrics') {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(await metrics.registry.metrics());
        } else if (req.method === 'GET' && url === '/healthz') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        } else if (req.method === 'GET' && url === '/readyz') {
          const ok = await ready().catch(() => false);
          res.writeHead(ok ? 200 : 503, { 'content-type': ok ? 'application/json' : 'application/problem+json' });
          res.end(JSON.stringify(ok ? { status: 'ready' } : { type: 'https://signspool.dev/problems/service-unavailable', title: 'Worker not ready', status: 503, code: 'SERVICE_UNAVAILABLE' }));
        } else {
          res.writeHead(404, { 'content-type': 'application/problem+json' });
          res.end(JSON.stringify({ type: 'https://signspool.dev/problems/route-not-found', title: 'No such route', status: 404, code: 'ROUTE_NOT_FOUND' }));
        }
      })().catch(() => {
        res.destroy();
      });
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${addr.port}`;
    return this.url;
  }

  stop(): Promise<void> {
    this.stopPromise ??= new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.stopPromise;
  }
}
