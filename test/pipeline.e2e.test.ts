/**
 * The whole pipeline against the fake Sign'Stash (a real HTTP server on port 0): coalescing,
 * byte and linger bounds, the seeds' failure cases, token refresh, bisection.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { download, submit, waitForTerminal } from './harness/client.js';
import type { FakeSignstash } from './fake-signstash/server.js';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { useApiThenWorker } from './harness/queued-first.js';
import { startStack, type Stack } from './harness/stack.js';

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

const signstashEnv = (fake: FakeSignstash, extra: Record<string, string> = {}): Record<string, string> =>
  // CAdES: the documents are arbitrary bytes (as PAdES they would be refused at submit: DOCUMENT_NOT_PDF).
  fake.clientEnv({ DEFAULT_SIGNATURE_TYPE: 'CAdES', UPSTREAM_BACKOFF_BASE: '20ms', UPSTREAM_BACKOFF_MAX: '200ms', ...extra });

describe("pipeline through the fake Sign'Stash", () => {
  const fake = useFakeSignstash();
  afterEach(() => {
    fake().reset();
  });

  describe('coalescing', () => {
    const env = (): Record<string, string> =>
      signstashEnv(fake(), { BATCH_MAX_DOCS: '50', BATCH_LINGER: '2s', UPSTREAM_CONCURRENCY: '4', RATE_LIMIT_REQUESTS: '0' });
    // The api alone first: all 200 documents are queued before a worker starts, so how many share a
    // request does not depend on how fast this machine accepts uploads (that is bench section 1).
    const queued = useApiThenWorker(env);

    it('signs 200 concurrent single-document operations in few upstream requests', async () => {
      const stack = queued.api();
      const docs = Array.from({ length: 200 }, (_, i) => Buffer.concat([Buffer.from(`%PDF-1.7 doc ${i}\n`), randomBytes(1000 + i)]));
      const accepted = await Promise.all(
        docs.map((content, i) => submit(stack.apiUrl, stack.keys.acme, [{ name: `doc-${i}.pdf`, content, type: 'application/pdf' }])),
      );
      expect(accepted.map((a) => a.status)).toEqual(docs.map(() => 202));
      await queued.startWorker();
      const done = await Promise.all(accepted.map((a) => waitForTerminal(stack.apiUrl, stack.keys.acme, a.body.id, 60_000)));
      expect(done.map((d) => d.status)).toEqual(docs.map(() => 'succeeded'));

      const requests = fake()
        .requests()
        .filter((r) => r.outcome === 'ok');
      const perRequest = requests.map((r) => r.documents);
      const mean = 200 / requests.length;
      console.log(
        `200 single-document operations → ${requests.length} upstream requests (documents per request: ${perRequest.join(', ')}; mean ${mean.toFixed(1)})`,
      );
      expect(perRequest.reduce((a, b) => a + b, 0)).toBe(200);
      // Four full batches when nothing interferes; at least 10 documents per request on average even
      // if the linger (2 s here) ends a batch while the worker is still fetching its jobs.
      expect(requests.length).toBeLessThanOrEqual(20);
      expect(Math.max(...perRequest)).toBeLessThanOrEqual(50);

      // Downloads are byte-equal to what the fake returned for each document.
      const returned = new Map(requests.flatMap((r) => r.docs.map((d) => [d.externalReference, d.sha256Out] as const)));
      for (const [i, op] of done.entries()) {
        const doc = op.documents[0];
        expect(doc?.status).toBe('signed');
        const dl = await download(stack.apiUrl, stack.keys.acme, op.id, doc?.id ?? '');
        expect(dl.status).toBe(200);
        expect(dl.headers.get('content-type')).toBe('application/pkcs7-signature');
        expect(sha256(dl.body)).toBe(returned.get(doc?.id ?? ''));
        expect(dl.body.subarray(0, docs[i]?.length).equals(docs[i] ?? Buffer.alloc(0))).toBe(true);
      }
    });
  });

  describe('bounds', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ env: signstashEnv(fake(), { BATCH_MAX_DOCS: '50', BATCH_MAX_BYTES: '100KiB', BATCH_LINGER: '300ms' }) });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('splits documents that together exceed BATCH_MAX_BYTES', async () => {
      const files = Array.from({ length: 6 }, (_, i) => ({ name: `b${i}.pdf`, content: randomBytes(40 * 1024) }));
      const res = await submit(stack.apiUrl, stack.keys.acme, files);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
      expect(done.status).toBe('succeeded');
      const requests = fake()
        .requests()
        .filter((r) => r.outcome === 'ok');
      // Two 40 KiB documents fit in 100 KiB, three do not: at least 3 requests (more if a linger
      // expired between two jobs' arrival), every one within the bound, each document sent once.
      expect(requests.length).toBeGreaterThanOrEqual(3);
      expect(requests.map((r) => r.documents).reduce((a, b) => a + b, 0)).toBe(6);
      for (const r of requests) expect(r.bytes).toBeLessThanOrEqual(100 * 1024);
    });

    it('sends a lone document after about BATCH_LINGER', async () => {
      // Batches flushed so far, by reason (summed over any other label).
      const flushes = async (): Promise<Record<string, number>> => {
        const out: Record<string, number> = {};
        for (const v of (await stack.metrics.batchFlushes.get()).values) out[String(v.labels.reason)] = (out[String(v.labels.reason)] ?? 0) + v.value;
        return out;
      };
      const before = await flushes();
      const sent = Date.now();
      const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'lone.pdf', content: 'lone' }]);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
      expect(done.status).toBe('succeeded');
      const [request] = fake().requests();
      const waited = (request?.at ?? 0) - sent;
      console.log(`lone document reached the upstream ${waited} ms after submission (BATCH_LINGER=300ms)`);
      expect(waited).toBeGreaterThanOrEqual(300 - 10);
      // Sent alone because its linger expired, not because a size bound was reached or the worker
      // stopped (how soon: bench section 4, "at 1 doc/s").
      expect(request?.documents).toBe(1);
      const after = await flushes();
      expect(Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]))).toEqual({ docs: 0, bytes: 0, linger: 1, shutdown: 0 });
    });
  });

  describe('failures', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ env: signstashEnv(fake(), { BATCH_LINGER: '50ms', UPSTREAM_MAX_ATTEMPTS: '3' }) });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    const one = async (name = 'a.pdf') => {
      const res = await submit(stack.apiUrl, stack.keys.acme, [{ name, content: `content of ${name}` }]);
      expect(res.status).toBe(202);
      return waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
    };

    it.each([
      ['service_inactive', 'UPSTREAM_CLIENT_SERVICE_INACTIVE', /backoffice/i],
      ['certificate_not_provisioned', 'UPSTREAM_CERTIFICATE_NOT_PROVISIONED', /certificate/i],
    ] as const)('%s fails the documents at once with %s', async (kind, code, hint) => {
      fake().injectFault({ kind, times: 1 });
      const done = await one();
      expect(done.status).toBe('failed');
      expect(done.documents[0]?.error?.code).toBe(code);
      expect(done.documents[0]?.error?.message).toMatch(hint);
      expect(fake().requests().length).toBe(1);
    });

    it('refreshes an expired token once and the batch succeeds', async () => {
      await one('warm-up.pdf');
      const before = fake().tokenRequests;
      fake().expireTokens();
      const done = await one();
      expect(done.status).toBe('succeeded');
      expect(fake().tokenRequests).toBe(before + 1);
      expect(
        fake()
          .requests()
          .map((r) => r.outcome),
      ).toEqual(['ok', 'unauthorized', 'ok']);
    });

    it('retries 429 honouring Retry-After, then succeeds', async () => {
      fake().injectFault({ kind: 'rate_limit', retryAfterS: 1, times: 1 });
      const started = Date.now();
      const done = await one();
      expect(done.status).toBe('succeeded');
      const [limited, ok] = fake().requests();
      expect(limited?.outcome).toBe('rate_limit');
      expect((ok?.at ?? 0) - (limited?.at ?? 0)).toBeGreaterThanOrEqual(950);
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it('gives up on persistent 5xx after UPSTREAM_MAX_ATTEMPTS with UPSTREAM_UNAVAILABLE', async () => {
      fake().injectFault({ kind: 'server_error', status: 503, times: 3 });
      const done = await one();
      expect(done.status).toBe('failed');
      expect(done.documents[0]?.error?.code).toBe('UPSTREAM_UNAVAILABLE');
      expect(done.documents[0]?.error?.message).toMatch(/after 3 attempts/);
      expect(fake().requests().length).toBe(3);
    });

    it('recovers from a connection reset', async () => {
      fake().injectFault({ kind: 'reset', times: 1 });
      const done = await one();
      expect(done.status).toBe('succeeded');
      expect(
        fake()
          .requests()
          .map((r) => r.outcome),
      ).toEqual(['reset', 'ok']);
    });

    // A rejected document's name must not decide the batch's fate (the upstream's message quotes it).
    it.each([
      ['named by the upstream', 'bad.pdf', false],
      ['named my-certificate.pdf', 'my-certificate.pdf', false],
      ['named "not active.pdf"', 'not active.pdf', false],
      ['not named by the upstream (found by halving)', 'bad.pdf', true],
    ])('fails only the document the upstream rejects (%s); the others are signed', async (_label, bad, unnamed) => {
      fake().setRejectDocumentsNamed([bad], { unnamed });
      const files = Array.from({ length: 8 }, (_, i) => ({ name: i === 5 ? bad : `ok-${i}.pdf`, content: `doc ${i}` }));
      const res = await submit(stack.apiUrl, stack.keys.acme, files);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
      expect(done.status).toBe('partially_failed');
      expect(done.documents.map((d) => [d.name, d.status, d.error?.code ?? null])).toEqual(
        files.map((f) => [f.name, f.name === bad ? 'failed' : 'signed', f.name === bad ? 'UPSTREAM_DOCUMENT_REJECTED' : null]),
      );
    });
  });

  it('ends an upstream outage longer than every retry with each document signed once (circuit breaker, one-document probes)', async () => {
    const stack = await startStack({
      env: signstashEnv(fake(), { BATCH_LINGER: '50ms', UPSTREAM_MAX_ATTEMPTS: '3', UPSTREAM_BREAKER_THRESHOLD: '2', UPSTREAM_BREAKER_COOLDOWN: '300ms' }),
    });
    try {
      fake().injectFault({ kind: 'server_error', status: 503, times: 12 });
      const files = Array.from({ length: 5 }, (_, i) => ({ name: `outage-${i}.pdf`, content: `outage document ${i}` }));
      const res = await submit(stack.apiUrl, stack.keys.acme, files);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id, 60_000);
      expect(done.documents.map((d) => d.status)).toEqual(files.map(() => 'signed'));
      const requests = fake().requests();
      expect(requests.filter((r) => r.outcome !== 'ok')).toHaveLength(12);
      // Once open, the circuit lets one document through per probe.
      expect(
        requests
          .slice(2)
          .filter((r) => r.outcome !== 'ok')
          .every((r) => r.documents === 1),
      ).toBe(true);
      const signedOnce = requests.filter((r) => r.outcome === 'ok').flatMap((r) => r.docs.map((d) => d.externalReference));
      expect(signedOnce.sort()).toEqual(done.documents.map((d) => d.id).sort());
    } finally {
      await stack.stop();
    }
  });

  it('fails with UPSTREAM_OAUTH_INVALID_CLIENT when the client credentials are wrong', async () => {
    const stack = await startStack({ env: signstashEnv(fake(), { SIGNSTASH_CLIENT_SECRET: 'wrong', BATCH_LINGER: '20ms' }) });
    try {
      const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a.pdf', content: 'a' }]);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
      expect(done.status).toBe('failed');
      expect(done.documents[0]?.error?.code).toBe('UPSTREAM_OAUTH_INVALID_CLIENT');
      expect(done.documents[0]?.error?.message).toMatch(/SIGNSTASH_CLIENT_ID/);
      expect(fake().requests()).toEqual([]);
    } finally {
      await stack.stop();
    }
  });
});
