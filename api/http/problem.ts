/**
 * Every API error leaves as application/problem+json (RFC 9457) with a stable code from the
 * catalog. No stack trace, internal path or upstream detail is ever sent.
 */
import type { ServerResponse } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { SignspoolError, isSignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import { isRedisUnavailable, redisUnavailableError } from '@signspool/shared/redis/unavailable';
import { RefusalLog } from './refusal-log.js';
import { routeLabel } from './route-label.js';
import { MultipartError } from '../upload/multipart.js';

/** The problem+json answer of `err`, with the bytes and headers express's res.send gives it (a HEAD gets the headers only). */
export const sendProblem = (res: ServerResponse, err: SignspoolError, instance?: string): void => {
  if (err.retryAfterMs !== undefined) res.setHeader('Retry-After', String(Math.ceil(err.retryAfterMs / 1000)));
  const body = JSON.stringify(err.toProblem(instance));
  res.statusCode = err.status;
  res.setHeader('Content-Type', 'application/problem+json; charset=utf-8');
  res.setHeader('Content-Length', String(Buffer.byteLength(body)));
  res.end(body);
};

const multipartToCatalog = (err: MultipartError, limits: { maxFileBytes: number; maxFiles: number }): SignspoolError => {
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
  if (err instanceof MultipartError) return multipartToCatalog(err, limits);
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

/** Where an error was met, for its log line: the method, and the matched route's path (express's req.route) if any. */
export interface ErrorPlace {
  method: string;
  route?: { path: unknown } | undefined;
}

/**
 * Answers what a request threw: mapped to the catalog, logged (refusal-log.ts) and sent as
 * problem+json; `redisHealth` is told every error (one that says Redis is unavailable marks it
 * down, redis-health.ts). Express's error handler and the status read's fast path share one.
 */
export class ErrorAnswers {
  private readonly refusals: RefusalLog;

  constructor(
    logger: Logger,
    private readonly limits: { maxFileBytes: number; maxFiles: number },
    private readonly redisHealth?: { report(err: unknown): void },
  ) {
    this.refusals = new RefusalLog(logger);
  }

  /** `instance`: the request's path, without its query. */
  answer(err: unknown, place: ErrorPlace, res: ServerResponse, instance: string | undefined): void {
    this.redisHealth?.report(err);
    const apiErr = toApiError(err, this.limits);
    this.refusals.log(apiErr, err, place);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendProblem(res, apiErr, instance);
  }
}

export const errorHandler =
  (errors: ErrorAnswers): ErrorRequestHandler =>
  (err: unknown, req, res, _next) => {
    const route = routeLabel(req);
    errors.answer(err, { method: req.method, route: route === undefined ? undefined : { path: route } }, res, req.originalUrl.split('?')[0]);
  };

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new SignspoolError('ROUTE_NOT_FOUND', { detail: `no route ${req.method} ${req.path}` }));
};
