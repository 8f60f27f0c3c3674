/**
 * The api's /metrics on its own port (METRICS_PORT), so the api's public port serves only the API.
 * Same token rule as everywhere (METRICS_TOKEN); nothing else is served here.
 */
import http from 'node:http';
import { closeServer, listen } from '@signspool/shared/http-listen';
import type { Metrics } from '@signspool/shared/metrics';
import { metricsAllowed, METRICS_CHALLENGE } from '@signspool/shared/metrics-access';

const problem = (status: number, code: string, title: string): string =>
  JSON.stringify({ type: `https://signspool.dev/problems/${code.toLowerCase().replaceAll('_', '-')}`, title, status, code, retryable: false });

export class ApiMetricsServer {
  private server: http.Server | undefined;
  private stopPromise: Promise<void> | undefined;
  url = '';

  constructor(private readonly opts: { host: string; port: number; token: string | undefined; metrics: Metrics }) {}

  async start(): Promise<string> {
    const { metrics, token } = this.opts;
    const server = http.createServer((req, res) => {
      void (async () => {
        const url = (req.url ?? '/').split('?')[0];
        if (req.method !== 'GET' || url !== '/metrics') {
          res.writeHead(404, { 'content-type': 'application/problem+json' }).end(problem(404, 'ROUTE_NOT_FOUND', 'No such route'));
        } else if (!metricsAllowed(req.headers.authorization, token)) {
          res
            .writeHead(401, { 'content-type': 'application/problem+json', 'www-authenticate': METRICS_CHALLENGE })
            .end(problem(401, 'UNAUTHORIZED', 'Missing or invalid API key or token'));
        } else {
          res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
        }
      })().catch(() => res.destroy());
    });
    this.server = server;
    this.url = await listen(server, this.opts.port, this.opts.host);
    return this.url;
  }

  stop(): Promise<void> {
    this.stopPromise ??= closeServer(this.server);
    return this.stopPromise;
  }
}
