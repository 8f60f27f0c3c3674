/** Spans (unit): no-ops without a provider; with one, the job-data trace context round-trips and errors are recorded. */
import { context, propagation, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SignspoolError } from '@signspool/shared/errors';
import { activeTraceIds, contextOf, inSpan, isSampled, spanContextOf, traceCarrier } from '@signspool/shared/spans';

describe('spans without a provider (tracing off)', () => {
  it('run the code, record nothing and carry nothing', async () => {
    const seen = await inSpan('off', {}, async (span) => {
      expect(span.isRecording()).toBe(false);
      expect(traceCarrier()).toBeUndefined();
      expect(activeTraceIds()).toBeUndefined();
      return 42;
    });
    expect(seen).toBe(42);
    expect(spanContextOf({ traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` })).toBeUndefined();
  });
});

describe('spans with a provider', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  beforeAll(() => {
    provider.register();
  });
  afterAll(async () => {
    await provider.shutdown();
    trace.disable();
    propagation.disable();
    context.disable();
  });
  beforeEach(() => exporter.reset());

  it('carry the active context in job data and read it back', async () => {
    const incoming = contextOf({ traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01`, tracestate: 'vendor=v1' });
    await inSpan(
      'producer',
      {},
      async (span) => {
        const carrier = traceCarrier();
        expect(carrier).toEqual({ traceparent: `00-${'ab'.repeat(16)}-${span.spanContext().spanId}-01`, tracestate: 'vendor=v1' });
        const sc = spanContextOf(carrier);
        expect(sc).toMatchObject({ traceId: 'ab'.repeat(16), spanId: span.spanContext().spanId, isRemote: true });
        expect(sc && isSampled(sc)).toBe(true);
        expect(activeTraceIds()).toEqual({ trace_id: 'ab'.repeat(16), span_id: span.spanContext().spanId });
      },
      incoming,
    );
    const unsampled = spanContextOf({ traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-00` });
    expect(unsampled?.traceFlags).toBe(TraceFlags.NONE);
    expect(unsampled && isSampled(unsampled)).toBe(false);
    expect(spanContextOf(undefined)).toBeUndefined();
  });

  it('end the span and record what the code throws: the catalog code, no stack', async () => {
    await expect(inSpan('failing', {}, () => Promise.reject(new SignspoolError('UPSTREAM_TIMEOUT', { detail: 'no answer' })))).rejects.toThrow('no answer');
    const [span] = exporter.getFinishedSpans();
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'UPSTREAM_TIMEOUT' });
    expect(span?.attributes['signspool.error.code']).toBe('UPSTREAM_TIMEOUT');
    expect(span?.events.map((e) => e.attributes)).toEqual([{ 'exception.type': 'UPSTREAM_TIMEOUT', 'exception.message': 'no answer' }]);
  });
});
