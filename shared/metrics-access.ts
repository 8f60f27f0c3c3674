/**
 * Who may read /metrics: everyone who reaches its port, or, with METRICS_TOKEN set, only a scraper
 * sending `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Whether a request with this Authorization header may read the metrics. */
export const metricsAllowed = (authorization: string | undefined, token: string | undefined): boolean => {
  if (token === undefined) return true;
  const presented = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1] ?? '';
  return timingSafeEqual(digest(presented), digest(token));
};

export const METRICS_CHALLENGE = 'Bearer realm="signspool-metrics"';
