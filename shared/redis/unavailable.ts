/**
 * One place that decides whether an error means "Redis cannot be reached right now" (connection
 * refused, closed or not writable, a command that gave up retrying, a server still loading or
 * failing over). Such errors become 503 SERVICE_UNAVAILABLE with Retry-After at the api, and make
 * the worker keep its documents queued instead of failing them.
 */
import { SignspoolError } from '../errors.js';

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const MESSAGES =
  /^(Connection is closed|Stream isn't writeable|Reached the max retries per request limit|LOADING |READONLY |MASTERDOWN |CLUSTERDOWN |TRYAGAIN |NOREPLICAS |Command timed out|connect ETIMEDOUT|Redis not ready)/;

export const isRedisUnavailable = (err: unknown): boolean => {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  return MESSAGES.test(err.message);
};

/** Seconds a client should wait before trying again while Redis is unavailable. */
export const REDIS_RETRY_AFTER_S = 5;

export const redisUnavailableError = (): SignspoolError =>
  new SignspoolError('SERVICE_UNAVAILABLE', {
    detail: 'the operation store (Redis) is unreachable; try again shortly',
    retryAfterMs: REDIS_RETRY_AFTER_S * 1000,
  });
