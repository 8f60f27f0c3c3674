/**
 * The whole pipeline against the fake Sign'Stash (a real HTTP server on port 0): coalescing,
 * byte and linger bounds, the seeds' failure cases, token refresh, bisection.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeSignstash } from './fake-signstash/server.js';
import { download, submit, waitForTerminal } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

const signstashEnv = (fake: FakeSignstash, extra: Record<string, string> = {}): Record<string, string> =>
  // CAdES: the documents are arbitrary bytes (as PAdES they would be refused at submit: DOCUMENT_NOT_PDF).
  fake.clientEnv({ DEFAULT_SIGNATURE_TYPE: 'CAdES', UPSTREAM_BACKOFF_BASE: '20ms', UPSTREAM_BACKOFF_MAX: '200ms', ...extra });

describe('pipeline through the fake Sign\'Stash', () => {
  let fake: FakeSignstash;

  beforeAll(async () => {
    fake = new FakeSignstash({ clientId: 'signspool', clientSecret: 'signspool-secret', perRequestMs: 20, bytesPerSec: 500e6 });
    await fake.start();
  });
  afterAll(async () => {
    await fake?.stop();
  });
  afterEach(() => {
    fake.reset();
  });

  describe('coalescing', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ env: signstashEnv(fake, { BATCH_MAX_DOCS: '50', BATCH_LINGER: '200ms', UPSTREAM_CONCURRENCY: '4' }) });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('signs 200 concurrent single-document operations in few upstream requests', async () => {
      const docs = Array.from({ length: 200 }, (_, i) => Buffer.concat([Buffer.from(`%PDF-1.7 doc ${i}\n`), randomBytes(1000 + i)]));
      const submitStarted = Date.now();
      const accepted = await Promise.all(docs.map((content, i) => submit(stack.apiUrl, stack.keys.acme, [{ name: `doc-${i}.pdf`, content, type: 'application/pdf' }])));
      const submitMs = Date.now() - submitStarted;
      expect(accepted.map((a) => a.status)).toEqual(docs.map(() => 202));
      const done = await Promise.all(accepted.map((a) => waitForTerminal(stack.apiUrl, stack.keys.acme, a.body.id, 60_000)));
      expect(done.map((d) => d.status)).toEqual(docs.map(() => 'succeeded'));

      const requests = fake.requests().filter((r) => r.outcome === 'ok');
      const perRequest = requests.map((r) => r.documents);
      const mean = 200 / requests.length;
      console.log(`200 single-document operations → ${requests.length} upstream requests (documents per request: ${perRequest.join(', ')}; mean ${mean.toFixed(1)})`);
      expect(perRequest.reduce((a, b) => a + b, 0)).toBe(200);
      // Full batches, plus at most one linger flush per BATCH_LINGER (200 ms) while uploads were
      // still arriving (one bucket: one tenant, one signature type), plus the last one.
      console.log(`uploads arrived over ${submitMs} ms`);
      expect(requests.length).toBeLessThanOrEqual(Math.ceil(200 / 50) + Math.ceil(submitMs / 200) + 1);
      expect(requests.length).toBeLessThanOrEqual(50);

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
      stack = await startStack({ env: signstashEnv(fake, { BATCH_MAX_DOCS: '50', BATCH_MAX_BYTES: '100KiB', BATCH_LINGER: '300ms' }) });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('splits documents that together exceed BATCH_MAX_BYTES', async () => {
      const files = Array.from({ length: 6 }, (_, i) => ({ name: `b${i}.pdf`, content: randomBytes(40 * 1024) }));
      const res = await submit(stack.apiUrl, stack.keys.acme, files);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
      expect(done.status).toBe('succeeded');
      const requests = fake.requests().filter((r) => r.outcome === 'ok');
      expect(requests.length).toBe(3);
      for (const r of requests) expect(r.bytes).toBeLessThanOrEqual(100 * 1024);
    });

    it('sends a lone document after about BATCH_LINGER', async () => {
      const sent = Date.now();
      const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'lone.pdf', content: 'lone' }]);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
      expect(done.status).toBe('succeeded');
      const [request] = fake.requests();
      const waited = (request?.at ?? 0) - sent;
      console.log(`lone document reached the upstream ${waited} ms after submission (BATCH_LINGER=300ms)`);
      expect(waited).toBeGreaterThanOrEqual(300 - 10);
      expect(waited).toBeLessThan(300 + 1500);
    });
  });

  describe('failures', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ env: signstashEnv(fake, { BATCH_LINGER: '50ms', UPSTREAM_MAX_ATTEMPTS: '3' }) });
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
      fake.injectFault({ kind, times: 1 });
      const done = await one();
      expect(done.status).toBe('failed');
      expect(done.documents[0]?.error?.code).toBe(code);
      expect(done.documents[0]?.error?.message).toMatch(hint);
      expect(fake.requests().length).toBe(1);
    });

    it('refreshes an expired token once and the batch succeeds', async () => {
      await one('warm-up.pdf');
      const before = fake.tokenRequests;
      fake.expireTokens();
      const done = await one();
      expect(done.status).toBe('succeeded');
      expect(fake.tokenRequests).toBe(before + 1);
      expect(fake.requests().map((r) => r.outcome)).toEqual(['ok', 'unauthorized', 'ok']);
    });

    it('retries 429 honouring Retry-After, then succeeds', async () => {
      fake.injectFault({ kind: 'rate_limit', retryAfterS: 1, times: 1 });
      const started = Date.now();
      const done = await one();
      expect(done.status).toBe('succeeded');
      const [limited, ok] = fake.requests();
      expect(limited?.outcome).toBe('rate_limit');
      expect((ok?.at ?? 0) - (limited?.at ?? 0)).toBeGreaterThanOrEqual(950);
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it('gives up on persistent 5xx after UPSTREAM_MAX_ATTEMPTS with UPSTREAM_UNAVAILABLE', async () => {
      fake.injectFault({ kind: 'server_error', status: 503, times: 3 });
      const done = await one();
      expect(done.status).toBe('failed');
      expect(done.documents[0]?.error?.code).toBe('UPSTREAM_UNAVAILABLE');
      expect(done.documents[0]?.error?.message).toMatch(/after 3 attempts/);
      expect(fake.requests().length).toBe(3);
    });

    it('recovers from a connection reset', async () => {
      fake.injectFault({ kind: 'reset', times: 1 });
      const done = await one();
      expect(done.status).toBe('succeeded');
      expect(fake.requests().map((r) => r.outcome)).toEqual(['reset', 'ok']);
    });

    it('finds the one document the upstream rejects by bisection; the others are signed', async () => {
      fake.setRejectDocumentsNamed(['bad.pdf']);
      const files = Array.from({ length: 8 }, (_, i) => ({ name: i === 5 ? 'bad.pdf' : `ok-${i}.pdf`, content: `doc ${i}` }));
      const res = await submit(stack.apiUrl, stack.keys.acme, files);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
      expect(done.status).toBe('partially_failed');
      expect(done.documents.map((d) => [d.name, d.status, d.error?.code ?? null])).toEqual(
        files.map((f) => [f.name, f.name === 'bad.pdf' ? 'failed' : 'signed', f.name === 'bad.pdf' ? 'UPSTREAM_DOCUMENT_REJECTED' : null]),
      );
    });
  });

  it('fails with UPSTREAM_OAUTH_INVALID_CLIENT when the client credentials are wrong', async () => {
    const stack = await startStack({ env: signstashEnv(fake, { SIGNSTASH_CLIENT_SECRET: 'wrong', BATCH_LINGER: '20ms' }) });
    try {
      const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a.pdf', content: 'a' }]);
      const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
      expect(done.status).toBe('failed');
      expect(done.documents[0]?.error?.code).toBe('UPSTREAM_OAUTH_INVALID_CLIENT');
      expect(done.documents[0]?.error?.message).toMatch(/SIGNSTASH_CLIENT_ID/);
      expect(fake.requests()).toEqual([]);
    } finally {
      await stack.stop();
    }
  });
});
