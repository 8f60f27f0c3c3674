/**
 * Every API error leaves as application/problem+json (RFC 9457) with a stable code from the
 * catalog. No stack trace, internal path or upstream detail is ever sent.
 */
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { MulterError } from 'multer';
import { SignspoolError, isSignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import { isRedisUnavailable, redisUnavailableError } from '@signspool/shared/redis/unavailable';
import { RefusalLog } from './refusal-log.js';

export const sendProblem = (res: Response, err: SignspoolError, instance?: string): void => {
  if (err.retryAfterMs !== undefined) res.setHeader('Retry-After', String(Math.ceil(err.retryAfterMs / 1000)));
  res
    .status(err.status)
    .type('application/problem+json')
    .send(JSON.stringify(err.toProblem(instance)));
};

const multerToCatalog = (err: MulterError, limits: { maxFileBytes: number; maxFiles: number }): SignspoolError => {
  switch (err.code) {
    case 'LIMIT_FILE_SIZE':
      return new SignspoolError('FILE_TOO_LARGE', {
        detail: `each file may be at most ${limits.maxFileBytes} bytes`,
        extensions: { limit: limits.maxFileBytes },
      });
    case 'LIMIT_FILE_COUNT':
      return new SignspoolError('TOO_MANY_FILES', { detail: `a request may carry at most ${limits.maxFiles} files`, extensions: { limit: limits.maxFiles } });
    case 'LIMIT_PART_COUNT':
    case 'LIMIT_FIELD_COUNT':
    case 'LIMIT_FIELD_VALUE':
    case 'LIMIT_FIELD_KEY':
      return new SignspoolError('TOO_MANY_FIELDS', { detail: 'too many or too large form fields' });
    case 'LIMIT_UNEXPECTED_FILE':
      return new SignspoolError('VALIDATION_FAILED', { detail: `unexpected file field ${JSON.stringify(err.field ?? '')}: send documents as "file" parts` });
    default:
      return new SignspoolError('VALIDATION_FAILED', { detail: 'the multipart body is malformed' });
  }
};

/** Maps anything thrown in a route to the catalog. */
export const toApiError = (err: unknown, limits: { maxFileBytes: number; maxFiles: number }): SignspoolError => {
  if (isSignspoolError(err)) return err;
  if (err instanceof MulterError) return multerToCatalog(err, limits);
  if (isRedisUnavailable(err)) return redisUnavailableError();
  const e = err as { type?: string; status?: number; message?: string; code?: string };
  if (
    e?.message === 'Request aborted' ||
    e?.message === 'Request closed' ||
    e?.message === 'Unexpected end of form' ||
    e?.message === 'Malformed part header'
  ) {
    return new SignspoolError('UPLOAD_ABORTED');
  }
  if (typeof e?.message === 'string' && /^(Multipart: Boundary not found|Unsupported content type)/.test(e.message)) {
    return new SignspoolError('UNSUPPORTED_MEDIA_TYPE');
  }
  if (e?.status === 413) return new SignspoolError('REQUEST_TOO_LARGE');
  // The spool filled up after the free-space check let the upload in.
  if (e?.code === 'ENOSPC' || e?.code === 'EDQUOT') {
    return new SignspoolError('INSUFFICIENT_STORAGE', { detail: 'the spool ran out of space during this upload; retry later', retryAfterMs: 60_000 });
  }
  return new SignspoolError('INTERNAL', { cause: err });
};

/** `redisHealth` is told every error: one that says Redis is unavailable marks it down (redis-health.ts). */
export const errorHandler = (
  logger: Logger,
  limits: { maxFileBytes: number; maxFiles: number },
  redisHealth?: { report(err: unknown): void },
): ErrorRequestHandler => {
  const refusals = new RefusalLog(logger);
  return (err: unknown, req, res, _next) => {
    redisHealth?.report(err);
    const apiErr = toApiError(err, limits);
    refusals.log(apiErr, err, req);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendProblem(res, apiErr, req.originalUrl.split('?')[0]);
  };
};

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new SignspoolError('ROUTE_NOT_FOUND', { detail: `no route ${req.method} ${req.path}` }));
};
