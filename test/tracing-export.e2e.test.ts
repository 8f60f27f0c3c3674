/**
 * OTLP export from real processes: an api (tsx, http/protobuf) and a worker (the built dist/,
 * http/json) send the spans of one upload to a receiver in this test, in one trace, and their log
 * lines carry its trace_id; without OTEL_EXPORTER_OTLP_ENDPOINT nothing is sent, whatever other
 * OTEL_* variables say.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { auth, eventually, waitForTerminal } from './harness/client.js';
import { startOtlpReceiver, type OtlpReceiver } from './harness/otlp-receiver.js';
import { startService, type ServiceProcess } from './harness/processes.js';
import { testPrefix } from './harness/stack.js';

interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  links?: { traceId: string; spanId: string }[];
}
interface JsonExport {
  resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: JsonSpan[] }[] }[];
}

const CONTENT = 'exported document, never in a span\n';
const FILE_NAME = 'secret-name.txt';

/** POST /v1/operations with a traceparent; returns the operation id. */
const submitTraced = async (apiUrl: string, key: string, traceparent: string): Promise<string> => {
  const form = new FormData();
  form.append('file', new Blob([CONTENT]), FILE_NAME);
  const res = await fetch(`${apiUrl}/v1/operations`, { method: 'POST', headers: { ...auth(key), traceparent }, body: form });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
};

const logLines = (out: string): Record<string, unknown>[] =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('OTLP export from api and worker processes', () => {
  let dir: string;
  let otlp: OtlpReceiver;
  const key = generateApiKey();
  const env = (): Record<string, string> => ({
    REDIS_URL: inject('redisUrl'),
    QUEUE_PREFIX: testPrefix(),
    DATA_DIR: dir,
    API_KEYS: `acme:${hashApiKey(key)}`,
    BATCH_LINGER: '100ms',
    SPOOL_MIN_FREE_BYTES: '1MiB',
    SHUTDOWN_TIMEOUT: '5s',
    // The batch span processor exports every 100 ms instead of 5 s.
    OTEL_BSP_SCHEDULE_DELAY: '100',
  });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-otlp-'));
    otlp = await startOtlpReceiver();
  });
  afterAll(async () => {
    await otlp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe('with OTEL_EXPORTER_OTLP_ENDPOINT', () => {
    let api: ServiceProcess;
    let worker: ServiceProcess;
    beforeAll(async () => {
      const common = { ...env(), OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url };
      [api, worker] = await Promise.all([
        startService('api', { ...common, OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-key=k%201' }),
        startService('worker', { ...common, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, { dist: true }),
      ]);
    });
    afterAll(async () => {
      await api?.stop('SIGKILL');
      await worker?.stop('SIGKILL');
    });

    it("sends both processes' spans of one upload, in the caller's trace, and their log lines carry it", async () => {
      const traceId = randomBytes(16).toString('hex');
      const opId = await submitTraced(api.url, key, `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
      expect((await waitForTerminal(api.url, key, opId)).status).toBe('succeeded');

      // The worker (JSON): batch and upstream call in the trace, the batch a child of the api's upload span.
      const workerSpans = (): { service: string | undefined; span: JsonSpan }[] =>
        otlp.received
          .filter((r) => r.headers['content-type'] === 'application/json')
          .flatMap((r) => (JSON.parse(r.body.toString()) as JsonExport).resourceSpans)
          .flatMap((rs) =>
            rs.scopeSpans.flatMap((ss) =>
              ss.spans.map((span) => ({ service: rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue, span })),
            ),
          );
      await eventually('the worker exported its batch span', () => workerSpans().some((s) => s.span.name === 'batch' && s.span.traceId === traceId));
      const batch = workerSpans().find((s) => s.span.name === 'batch' && s.span.traceId === traceId);
      expect(batch?.service).toBe('signspool-worker');
      const uploadSpanId = batch?.span.parentSpanId ?? '';
      expect(batch?.span.links?.map((l) => [l.traceId, l.spanId])).toEqual([[traceId, uploadSpanId]]);
      await eventually('the worker exported its upstream span', () => workerSpans().some((s) => s.span.name === 'upstream.sign' && s.span.traceId === traceId));

      // The api (protobuf): its request carries the trace id and the upload span's id as raw bytes.
      const protobuf = (): Buffer[] => otlp.received.filter((r) => r.headers['content-type'] === 'application/x-protobuf').map((r) => r.body);
      await eventually('the api exported its upload span', () => protobuf().some((b) => b.includes(Buffer.from(uploadSpanId, 'hex'))));
      const fromApi = Buffer.concat(protobuf());
      expect(fromApi.includes(Buffer.from(traceId, 'hex'))).toBe(true);
      for (const name of ['POST /v1/operations', 'spool.write', 'queue.enqueue', 'signspool-api']) expect(fromApi.includes(name), name).toBe(true);
      const apiRequest = otlp.received.find((r) => r.headers['content-type'] === 'application/x-protobuf');
      expect(apiRequest?.path).toBe('/v1/traces');
      expect(apiRequest?.headers['x-collector-key']).toBe('k 1');
      // Nothing of the document, its name or the caller's key left either process.
      const everything = Buffer.concat(otlp.received.map((r) => r.body));
      for (const secret of [CONTENT.trim(), FILE_NAME, key]) expect(everything.includes(secret), secret).toBe(false);

      // Log correlation: the api's acceptance and the worker's completion carry the trace id.
      expect(logLines(api.output()).find((l) => l['msg'] === 'operation accepted' && l['opId'] === opId)?.['trace_id']).toBe(traceId);
      expect(logLines(worker.output()).find((l) => l['msg'] === 'operation completed' && l['opId'] === opId)?.['trace_id']).toBe(traceId);
    });

    it('exports what is left and exits 0 on SIGTERM', async () => {
      expect(await api.stop('SIGTERM')).toBe(0);
      expect(await worker.stop('SIGTERM')).toBe(0);
    });
  });

  describe('without it', () => {
    let all: ServiceProcess;
    beforeAll(async () => {
      // Everything an SDK would read to export anything, except the endpoint that turns tracing on.
      all = await startService(
        'all',
        {
          ...env(),
          OTEL_SERVICE_NAME: 'should-not-appear',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${otlp.url}/v1/metrics`,
          OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: `${otlp.url}/v1/logs`,
        },
        { dist: true },
      );
    });
    afterAll(async () => {
      await all?.stop('SIGKILL');
    });

    it('sends nothing, and no log line carries a trace id', async () => {
      const before = otlp.received.length;
      const traceId = randomBytes(16).toString('hex');
      const opId = await submitTraced(all.url, key, `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
      expect((await waitForTerminal(all.url, key, opId)).status).toBe('succeeded');
      expect(await all.stop('SIGTERM')).toBe(0);
      expect(otlp.received.slice(before)).toEqual([]);
      const lines = logLines(all.output());
      expect(lines.find((l) => l['msg'] === 'signspool started')?.['tracing']).toBe('off');
      expect(lines.filter((l) => 'trace_id' in l)).toEqual([]);
      expect(lines.some((l) => l['msg'] === 'operation accepted' && l['opId'] === opId)).toBe(true);
    });
  });
});
