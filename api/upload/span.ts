/**
 * The span of each POST /v1/operations (shared/spans.ts): a child of the caller's W3C
 * `traceparent`/`tracestate` when it sends one, active for the rest of the request (auth, limits,
 * the upload, the answer), ended when the response closes. The route adds the operation's ids;
 * the spool writes and the enqueue are its children, and the jobs carry its context to the worker.
 */
import { context, isSpanContextValid, propagation, ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import type { RequestHandler } from 'express';
import { ATTR, SpanKind, SPANS, tracer } from '@signspool/shared/spans';

export const traceUploads: RequestHandler = (req, res, next) => {
  if (req.method !== 'POST' || req.path !== '/') {
    next();
    return;
  }
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const span = tracer.startSpan(SPANS.upload, { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'http.route': '/v1/operations' } }, parent);
  // Tracing off: nothing to carry, nothing to end.
  if (!isSpanContextValid(span.spanContext())) {
    next();
    return;
  }
  res.once('close', () => {
    span.setAttribute('http.response.status_code', res.statusCode);
    if (!res.writableFinished) span.setAttribute(ATTR.aborted, true);
    if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
  context.with(trace.setSpan(parent, span), next);
};
