/**
 * The span of each POST /v1/operations (shared/spans.ts): a child of the caller's W3C
 * `traceparent`/`tracestate` when it sends one, active for the rest of the request (auth, limits,
 * the upload, the answer), ended when the response closes. The route adds the operation's ids;
 * the spool writes and the enqueue are its children, and the jobs carry its context to the worker.
 * Express's middleware and the upload's fast path (fast-upload.ts) start it alike.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { context, isSpanContextValid, propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Context } from '@opentelemetry/api';
import type { RequestHandler } from 'express';
import { ATTR, SpanKind, SPANS, tracer } from '@signspool/shared/spans';

/** Starts the upload's span, ended when `res` closes; the context to run the upload in, or undefined with tracing off (nothing to carry, nothing to end). */
export const uploadSpanContext = (req: IncomingMessage, res: ServerResponse): Context | undefined => {
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const span = tracer.startSpan(SPANS.upload, { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'http.route': '/v1/operations' } }, parent);
  if (!isSpanContextValid(span.spanContext())) return undefined;
  res.once('close', () => {
    span.setAttribute('http.response.status_code', res.statusCode);
    if (!res.writableFinished) span.setAttribute(ATTR.aborted, true);
    if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
  return trace.setSpan(parent, span);
};

export const traceUploads: RequestHandler = (req, res, next) => {
  if (req.method !== 'POST' || req.path !== '/') {
    next();
    return;
  }
  const traced = uploadSpanContext(req, res);
  if (traced) context.with(traced, next);
  else next();
};
