/** signspool_http_request_duration_seconds: each request's time from its start to its answer's end, by method, route and status. */
import type { ServerResponse } from 'node:http';
import type { Metrics } from '@signspool/shared/metrics';

/** Observes the request once its answer is sent; `route()` names its route then (express's matched route, or 'unmatched'). */
export const observeDuration = (metrics: Metrics, method: string, res: ServerResponse, route: () => string): void => {
  const started = performance.now();
  res.on('finish', () => {
    metrics.httpRequestDuration.observe({ method, route: route(), status: String(res.statusCode) }, (performance.now() - started) / 1000);
  });
};
