/** The logger (unit): a line written inside a span carries its trace_id and span_id; redaction still holds. */
import { context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureLogs } from '../../harness/log-capture.js';
import { inSpan, tracer } from '@signspool/shared/spans';

const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())] });

describe('logger', () => {
  beforeAll(() => {
    provider.register();
  });
  afterAll(async () => {
    await provider.shutdown();
  });

  it('adds trace_id and span_id to the lines written inside a span, and only there', async () => {
    const { lines, logger } = captureLogs();
    const child = logger.child({ batchId: 'b_1' });
    logger.info('before');
    let ids: { traceId: string; spanId: string } | undefined;
    await inSpan('work', {}, async (span) => {
      ids = span.spanContext();
      // After an await too: the context follows the async work.
      await new Promise((r) => setImmediate(r));
      child.info({ docId: 'doc_1' }, 'inside');
    });
    logger.info('after');
    expect(lines.map((l) => l['msg'])).toEqual(['before', 'inside', 'after']);
    expect(lines[1]).toMatchObject({ trace_id: ids?.traceId, span_id: ids?.spanId, batchId: 'b_1', docId: 'doc_1' });
    expect(lines[0]).not.toHaveProperty('trace_id');
    expect(lines[2]).not.toHaveProperty('trace_id');
  });

  it('still redacts secrets, tokens and content inside a span', () => {
    const { lines, logger } = captureLogs();
    const span = tracer.startSpan('redaction');
    context.with(trace.setSpan(context.active(), span), () => {
      logger.info(
        {
          req: { headers: { authorization: 'Bearer ssk_topsecret' } },
          token: 'tok_secret',
          signedContent: 'QkFTRTY0',
          config: { signstash: { clientSecret: 'hunter2' } },
        },
        'with secrets',
      );
    });
    span.end();
    const line = JSON.stringify(lines[0]);
    expect(lines[0]?.['trace_id']).toBe(span.spanContext().traceId);
    for (const secret of ['ssk_topsecret', 'tok_secret', 'QkFTRTY0', 'hunter2']) expect(line).not.toContain(secret);
  });

  it("lets a line's own fields win over the span's", () => {
    const { lines, logger } = captureLogs();
    const span = tracer.startSpan('own');
    context.with(trace.setSpan(context.active(), span), () => logger.info({ trace_id: 'given' }, 'own'));
    span.end();
    expect(lines[0]).toMatchObject({ trace_id: 'given', span_id: span.spanContext().spanId });
  });
});
