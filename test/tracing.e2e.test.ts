/**
 * Tracing in-process (api and worker through their start()/stop(), the fake Sign'Stash): a
 * provider with an in-memory exporter is registered here, as the SDK would be. One document's
 * upload, spool write, enqueue, batch, upstream call, token fetch and webhook delivery share one
 * trace (the caller's traceparent); a batch of several operations joins the first one's trace and
 * links every document's upload.
 */
import { randomBytes } from 'node:crypto';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SPANS } from '@signspool/shared/spans';
import { auth, eventually, waitForTerminal, type OperationView } from './harness/client.js';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { startStack, type Stack } from './harness/stack.js';
import { startReceiver, type Receiver } from './harness/webhook-receiver.js';

const SECRET = 'whsec_' + Buffer.from('tracing-test-secret-0123456789').toString('base64');

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

/** POST /v1/operations with optional trace headers. */
const submitTraced = async (
  stack: Stack,
  files: { name: string; content: string }[],
  headers: Record<string, string> = {},
  fields: Record<string, string> = {},
): Promise<OperationView> => {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  for (const f of files) form.append('file', new Blob([f.content]), f.name);
  const res = await fetch(`${stack.apiUrl}/v1/operations`, { method: 'POST', headers: { ...auth(stack.keys.acme), ...headers }, body: form });
  expect(res.status).toBe(202);
  return (await res.json()) as OperationView;
};

const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
const named = (name: string, traceId: string): ReadableSpan[] => spans().filter((s) => s.name === name && s.spanContext().traceId === traceId);
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const only = (list: ReadableSpan[], what: string): ReadableSpan => {
  expect(list, what).toHaveLength(1);
  const [s] = list;
  if (!s) throw new Error(what);
  return s;
};

describe('tracing (in-process, in-memory exporter)', () => {
  const fake = useFakeSignstash();
  let hook: Receiver;

  beforeAll(async () => {
    provider.register();
    hook = await startReceiver();
  });
  afterAll(async () => {
    await hook?.close();
    await provider.shutdown();
  });
  beforeEach(() => {
    exporter.reset();
  });

  const env = (extra: Record<string, string> = {}): Record<string, string> =>
    fake().clientEnv({
      DEFAULT_SIGNATURE_TYPE: 'CAdES',
      UPSTREAM_BACKOFF_BASE: '20ms',
      UPSTREAM_BACKOFF_MAX: '200ms',
      WEBHOOK_SECRETS: `acme:${SECRET}`,
      WEBHOOK_ALLOW: '127.0.0.1:*',
      WEBHOOK_ALLOW_HTTP: 'true',
      ...extra,
    });

  describe('one document', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ env: env() });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it("puts its upload, spool write, enqueue, batch, upstream call, token fetch and webhook in the caller's trace", async () => {
      const traceId = hex(16);
      const callerSpan = hex(8);
      const op = await submitTraced(
        stack,
        [{ name: 'one.txt', content: 'traced document\n' }],
        { traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: 'vendor=abc' },
        { webhookUrl: hook.url('/t') },
      );
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, op.id);
      expect(done.status).toBe('succeeded');
      const docId = done.documents[0]?.id ?? '';
      await eventually('the webhook span ended', () => named(SPANS.webhook, traceId).length === 1);

      const upload = only(named(SPANS.upload, traceId), 'upload span');
      expect(upload.kind).toBe(SpanKind.SERVER);
      expect(parentOf(upload)).toBe(callerSpan);
      expect(upload.spanContext().traceState?.get('vendor')).toBe('abc');
      expect(upload.attributes).toMatchObject({
        'signspool.operation.id': op.id,
        'signspool.tenant': 'acme',
        'signspool.documents': 1,
        'http.response.status_code': 202,
      });

      const write = only(named(SPANS.spoolWrite, traceId), 'spool write span');
      expect(parentOf(write)).toBe(upload.spanContext().spanId);
      expect(write.attributes).toMatchObject({ 'signspool.operation.id': op.id, 'signspool.document.id': docId, 'signspool.bytes': 16 });

      const enqueue = only(named(SPANS.enqueue, traceId), 'enqueue span');
      expect(enqueue.kind).toBe(SpanKind.PRODUCER);
      expect(parentOf(enqueue)).toBe(upload.spanContext().spanId);

      const batch = only(named(SPANS.batch, traceId), 'batch span');
      expect(batch.kind).toBe(SpanKind.CONSUMER);
      expect(parentOf(batch)).toBe(upload.spanContext().spanId);
      expect(batch.links.map((l) => l.context.spanId)).toEqual([upload.spanContext().spanId]);
      expect(batch.links[0]?.attributes).toEqual({ 'signspool.operation.id': op.id, 'signspool.document.id': docId });
      expect(batch.attributes).toMatchObject({
        'signspool.documents': 1,
        'signspool.bytes': 16,
        'signspool.outcome': 'signed',
        'signspool.documents.signed': 1,
        'signspool.documents.failed': 0,
      });

      const upstream = only(named(SPANS.upstream, traceId), 'upstream span');
      expect(upstream.kind).toBe(SpanKind.CLIENT);
      expect(parentOf(upstream)).toBe(batch.spanContext().spanId);
      expect(upstream.attributes).toMatchObject({ 'signspool.signer': 'signstash', 'signspool.attempt': 1, 'http.response.status_code': 200 });

      // The worker's first batch needed a token.
      const token = only(named(SPANS.token, traceId), 'token span');
      expect(parentOf(token)).toBe(upstream.spanContext().spanId);

      const webhook = only(named(SPANS.webhook, traceId), 'webhook span');
      expect(parentOf(webhook)).toBe(upload.spanContext().spanId);
      expect(webhook.attributes).toMatchObject({ 'signspool.operation.id': op.id, 'signspool.outcome': 'delivered', 'http.response.status_code': 204 });

      // Ids, counts and codes only: no content, file name or credential in any attribute.
      const values = JSON.stringify(spans().map((s) => [s.attributes, s.links.map((l) => l.attributes), s.events]));
      for (const secret of ['traced document', 'one.txt', stack.keys.acme, 'signspool-secret', SECRET]) expect(values).not.toContain(secret);
    });

    it('records a failed upstream call on its span', async () => {
      fake().injectFault({ kind: 'server_error', status: 503 });
      const traceId = hex(16);
      const op = await submitTraced(stack, [{ name: 'two.txt', content: 'second\n' }], { traceparent: `00-${traceId}-${hex(8)}-01` });
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, op.id, 60_000);
      expect(done.status).toBe('succeeded');
      await eventually('the batch span ended', () => named(SPANS.batch, traceId).length === 1);
      const calls = named(SPANS.upstream, traceId).sort((a, b) => Number(a.attributes['signspool.attempt']) - Number(b.attributes['signspool.attempt']));
      expect(calls.map((s) => s.status.code)).toEqual([SpanStatusCode.ERROR, SpanStatusCode.UNSET]);
      expect(calls[0]?.attributes['signspool.error.code']).toBe('UPSTREAM_UNAVAILABLE');
    });
  });

  describe('a batch of several operations', () => {
    let api: Stack;
    let worker: Stack | undefined;
    beforeAll(async () => {
      api = await startStack({ env: env({ BATCH_LINGER: '2s' }), worker: false });
    });
    afterAll(async () => {
      await worker?.stop();
      await api?.stop();
    });

    it("joins the first sampled upload's trace and links every document's upload", async () => {
      // Queued before a worker runs: one batch takes them all.
      const unsampled = hex(16);
      const sampled = hex(16);
      const a = await submitTraced(api, [{ name: 'a.txt', content: 'a\n' }], { traceparent: `00-${unsampled}-${hex(8)}-00` });
      const b = await submitTraced(
        api,
        [
          { name: 'b1.txt', content: 'b1\n' },
          { name: 'b2.txt', content: 'b2\n' },
        ],
        { traceparent: `00-${sampled}-${hex(8)}-01` },
      );
      const c = await submitTraced(api, [{ name: 'c.txt', content: 'c\n' }]);
      worker = await startStack({ env: env({ BATCH_LINGER: '2s' }), api: false, reuse: { dir: api.dir, prefix: api.config.queuePrefix } });
      for (const op of [a, b, c]) expect((await waitForTerminal(api.apiUrl, api.keys.acme, op.id)).status).toBe('succeeded');
      await eventually('the batch span ended', () => spans().some((s) => s.name === SPANS.batch));

      const batch = only(
        spans().filter((s) => s.name === SPANS.batch),
        'one batch',
      );
      const uploads = spans().filter((s) => s.name === SPANS.upload);
      // The caller's "not sampled" is honoured: no span of that trace was recorded.
      expect(spans().filter((s) => s.spanContext().traceId === unsampled)).toEqual([]);
      const uploadB = only(
        uploads.filter((s) => s.spanContext().traceId === sampled),
        'upload of b',
      );
      const uploadC = only(
        uploads.filter((s) => s.attributes['signspool.operation.id'] === c.id),
        'upload of c',
      );
      expect(batch.spanContext().traceId).toBe(sampled);
      expect(parentOf(batch)).toBe(uploadB.spanContext().spanId);
      expect(batch.attributes['signspool.documents']).toBe(4);
      const linked = batch.links.map((l) => `${String(l.attributes?.['signspool.operation.id'])}:${l.context.traceId}`).sort();
      const expected = [`${a.id}:${unsampled}`, `${b.id}:${sampled}`, `${b.id}:${sampled}`, `${c.id}:${uploadC.spanContext().traceId}`].sort();
      expect(linked).toEqual(expected);
      expect(
        only(
          spans().filter((s) => s.name === SPANS.upstream),
          'one upstream call',
        ).spanContext().traceId,
      ).toBe(sampled);
    });
  });
});
