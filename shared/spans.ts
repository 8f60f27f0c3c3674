/**
 * The spans signspool makes, through @opentelemetry/api only: no-ops until bin/tracing.ts
 * starts the SDK (or a test registers a provider). Span and attribute names live here, with the
 * helpers that end a span and record its error, and that carry a trace context in job data
 * (W3C traceparent/tracestate). Attributes hold ids, counts and codes: never document content,
 * file names, credentials or tokens.
 */
import {
  context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';
import { isSignspoolError } from './errors.js';
import type { TraceCarrier } from './queue.js';

export { SpanKind, type Context, type Span };

export const tracer = trace.getTracer('signspool');

export const SPANS = {
  /** api: one POST /v1/operations, from its first byte to its answer. */
  upload: 'POST /v1/operations',
  /** api: one uploaded file streamed into the spool and fsynced. */
  spoolWrite: 'spool.write',
  /** api: the submission's jobs added to the sign queue. */
  enqueue: 'queue.enqueue',
  /** worker: one batch, from its claim to every document's outcome. */
  batch: 'batch',
  /** worker: one call of the signer (one upstream request with Sign'Stash), per attempt. */
  upstream: 'upstream.sign',
  /** worker: an OAuth token requested from Sign'Stash. */
  token: 'signstash.token',
  /** worker: one attempt to deliver a webhook. */
  webhook: 'webhook.deliver',
} as const;

export const ATTR = {
  operationId: 'signspool.operation.id',
  documentId: 'signspool.document.id',
  tenant: 'signspool.tenant',
  signatureType: 'signspool.signature_type',
  aborted: 'signspool.upload.aborted',
  documents: 'signspool.documents',
  bytes: 'signspool.bytes',
  batchId: 'signspool.batch.id',
  outcome: 'signspool.outcome',
  signed: 'signspool.documents.signed',
  failed: 'signspool.documents.failed',
  signer: 'signspool.signer',
  attempt: 'signspool.attempt',
  errorCode: 'signspool.error.code',
  deliveryId: 'signspool.webhook.delivery_id',
} as const;

/** Marks `span` failed with the error's catalog code (or its name) and message; no stack. */
export const recordError = (span: Span, err: unknown): void => {
  const code = isSignspoolError(err) ? err.code : err instanceof Error ? err.name : 'Error';
  const message = err instanceof Error ? err.message : String(err);
  span.recordException({ name: code, message });
  span.setAttribute(ATTR.errorCode, code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
};

/** Runs `fn` in a new span (a child of `parent`, by default the active context); ends it, and records what `fn` throws. */
export const inSpan = async <T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; links?: Link[] },
  fn: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> => {
  const span = tracer.startSpan(name, options, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
};

/** The trace context of `ctx` (default: the active one) as job data; undefined when it has no valid span (tracing off). */
export const traceCarrier = (ctx: Context = context.active()): TraceCarrier | undefined => {
  const headers: Record<string, string> = {};
  propagation.inject(ctx, headers);
  const traceparent = headers['traceparent'];
  if (traceparent === undefined) return undefined;
  const tracestate = headers['tracestate'];
  return tracestate === undefined || tracestate === '' || tracestate.length > 512 ? { traceparent } : { traceparent, tracestate };
};

/** The context a carrier describes (its span as a remote parent), or the root context. */
export const contextOf = (carrier: TraceCarrier | undefined): Context => (carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT);

/** The span context a carrier describes, when it describes a valid one. */
export const spanContextOf = (carrier: TraceCarrier | undefined): SpanContext | undefined => {
  const sc = trace.getSpanContext(contextOf(carrier));
  return sc && isSpanContextValid(sc) ? sc : undefined;
};

/** Whether `sc` was sampled by whoever made it. */
export const isSampled = (sc: SpanContext): boolean => (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;

/** The trace and span ids of the active span (for log lines), or undefined. */
export const activeTraceIds = (): { trace_id: string; span_id: string } | undefined => {
  const sc = trace.getActiveSpan()?.spanContext();
  return sc && isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : undefined;
};
