/**
 * The signstash adapter against the fake (no Redis): token sharing, timeouts, error mapping, and
 * worker memory for a 200 MB batch, measured in a child process.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@signspool/shared/logger';
import { Spool } from '@signspool/shared/spool/spool';
import type { BatchDocument, DocumentResult } from '@signspool/worker/signer';
import { parseRetryAfter } from '@signspool/worker/http-util';
import { mapFailure, SignstashSigner } from '@signspool/worker/signers/signstash/adapter';
import { SignstashTokenManager } from '@signspool/worker/signers/signstash/token';
import { Agent } from 'undici';
import { expectedSignedSha256, FakeSignstash } from './fake-signstash/server.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');

describe('signstash adapter', () => {
  let fake: FakeSignstash;
  let dir: string;
  let spool: Spool;

  beforeAll(async () => {
    fake = new FakeSignstash({ perRequestMs: 5, bytesPerSec: 1e9 });
    await fake.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'adapter-'));
    spool = new Spool(dir);
    await spool.init();
  });
  afterAll(async () => {
    await fake?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const signer = (over: Partial<ConstructorParameters<typeof SignstashSigner>[0]['config']> = {}) =>
    new SignstashSigner({
      config: fake.signerConfig({ reason: 'invoice', location: 'Lisboa', ...over }),
      spool,
      logger: silentLogger(),
    });

  const docsFor = async (prefix: string, contents: string[]): Promise<BatchDocument[]> =>
    Promise.all(
      contents.map(async (c, i) => {
        const docId = `doc_${prefix}${i}`;
        const file = spool.incomingPath('op_adapter', docId);
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, c);
        return {
          opId: 'op_adapter',
          docId,
          name: `${docId}.xml`,
          contentType: 'application/xml',
          size: Buffer.byteLength(c),
          sha256: createHash('sha256').update(c).digest('hex'),
          path: file,
          resultPath: spool.signedPath('op_adapter', docId, 'b1'),
        };
      }),
    );
  const batch = (documents: BatchDocument[], batchId = 'b_test') => ({ batchId, tenant: 't', signatureType: 'XAdES' as const, documents });
  const okCount = (rs: DocumentResult[]) => rs.filter((r) => r.ok).length;

  it('signs a batch in one request; results carry what the fake returned', async () => {
    fake.reset();
    const s = signer();
    // Sizes 4, 9, 5 and 300001: every remainder modulo 3 (the fake re-encodes the last partial quantum).
    const contents = ['<a/>', '<b>ü</b>', '<c/>x', ''.padEnd(300_001, 'x')];
    const docs = await docsFor('ok', contents);
    const results = await s.signBatch(batch(docs, 'b_ok'), new AbortController().signal);
    expect(okCount(results)).toBe(4);
    for (const [i, r] of results.entries()) {
      if (!r.ok) throw new Error('not ok');
      expect(r.sha256).toBe(expectedSignedSha256(Buffer.from(contents[i] ?? ''), 'XAdES'));
      expect(r.contentType).toBe('application/xml');
    }
    expect(fake.requests()).toMatchObject([{ externalReference: 'b_ok', documents: 4, outcome: 'ok' }]);
    await s.stop();
  });

  it('the fake answers content + trailer for padded, unpadded and wrapped base64, and refuses what is not base64', async () => {
    const token = (
      (await (
        await fetch(`${fake.authUrl}/oauth/token`, {
          method: 'POST',
          headers: {
            authorization: `Basic ${Buffer.from('signspool:signspool-secret').toString('base64')}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: 'grant_type=client_credentials',
        })
      ).json()) as { access_token: string }
    ).access_token;
    const send = (base64Content: string) =>
      fetch(`${fake.businessUrl}/api/v0/document/sign/base64`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          externalReference: 'b_raw',
          documents: [
            { documentRequest: { base64Content, contentType: 'text/plain', externalReference: 'd', name: 'd.txt' }, signatureInfo: { signatureType: 'CAdES' } },
          ],
        }),
      });
    for (const content of ['', 'a', 'ab', 'abc', 'hello world, 26 characters']) {
      const b64 = Buffer.from(content).toString('base64');
      for (const text of [b64, b64.replace(/=+$/, ''), b64.replace(/(.{4})/g, '$1\r\n')]) {
        const r = await send(text);
        expect(r.status, JSON.stringify(text)).toBe(200);
        const { documentList } = (await r.json()) as { documentList: { signedContent: string }[] };
        const signed = Buffer.from(documentList[0]?.signedContent ?? '', 'base64');
        const original = Buffer.from(content);
        expect(signed.subarray(0, original.length).equals(original), JSON.stringify(text)).toBe(true);
        expect(signed.toString().slice(original.length)).toBe(`\n%%SIGNSTASH-FAKE-SIGNATURE CAdES ${createHash('sha256').update(original).digest('hex')}\n`);
        expect(createHash('sha256').update(signed).digest('hex')).toBe(expectedSignedSha256(original, 'CAdES'));
      }
    }
    for (const bad of ['QUJD*', 'QU JD!', 'QUJDRA==QUJD']) expect((await send(bad)).status, bad).toBe(400);
  });

  it('shares one token refresh among concurrent batches', async () => {
    const s = signer();
    await s.signBatch(batch(await docsFor('warm', ['w'])), new AbortController().signal);
    fake.expireTokens();
    const before = fake.tokenRequests;
    const results = await Promise.all(
      [0, 1, 2].map(async (i) => s.signBatch(batch(await docsFor(`c${i}`, [`c${i}`]), `b_c${i}`), new AbortController().signal)),
    );
    expect(results.map(okCount)).toEqual([1, 1, 1]);
    expect(fake.tokenRequests - before).toBe(1);
    await s.stop();
  });

  it('gives up with UPSTREAM_TOKEN_INVALID when a fresh token is rejected too', async () => {
    const s = signer();
    fake.injectFault({ kind: 'token_invalid', times: 2 });
    await expect(s.signBatch(batch(await docsFor('ti', ['t'])), new AbortController().signal)).rejects.toMatchObject({
      code: 'UPSTREAM_TOKEN_INVALID',
      retryable: true,
    });
    await s.stop();
  });

  it('times out a slow upstream with UPSTREAM_TIMEOUT', async () => {
    const s = signer({ headersTimeoutMs: 300 });
    fake.injectFault({ kind: 'slow', delayMs: 1500 });
    await expect(s.signBatch(batch(await docsFor('slow', ['s'])), new AbortController().signal)).rejects.toMatchObject({
      code: 'UPSTREAM_TIMEOUT',
      retryable: true,
    });
    await s.stop();
  });

  it('maps a refused connection to UPSTREAM_NETWORK', async () => {
    const s = signer({ url: 'http://127.0.0.1:9/signstash/einvoice-integration-client-ws', authUrl: 'http://127.0.0.1:9/oauth2/authorization-server' });
    await expect(s.signBatch(batch(await docsFor('net', ['n'])), new AbortController().signal)).rejects.toMatchObject({
      code: 'UPSTREAM_NETWORK',
      retryable: true,
    });
    await s.stop();
  });

  // A lifetime at or below SIGNSTASH_TOKEN_SKEW must not mean a token request before every batch.
  it.each([60, 10])('reuses a %i s token for several batches although SIGNSTASH_TOKEN_SKEW is 60 s', async (ttl) => {
    const short = new FakeSignstash({ perRequestMs: 1, bytesPerSec: 1e9, tokenTtlS: ttl });
    await short.start();
    const agent = new Agent();
    try {
      const tokens = new SignstashTokenManager({
        authUrl: short.authUrl,
        clientId: 'signspool',
        clientSecret: 'signspool-secret',
        skewMs: 60_000,
        dispatcher: agent,
        logger: silentLogger(),
      });
      const got = [await tokens.getToken(), await tokens.getToken(), await tokens.getToken()];
      expect(new Set(got).size).toBe(1);
      expect(short.tokenRequests).toBe(1);
    } finally {
      await agent.close();
      await short.stop();
    }
  });

  it('maps upstream failures to the catalog', () => {
    const f = (status: number, errorCode?: string, message?: string, retryAfterMs?: number) =>
      mapFailure({ status, errorCode, message, retryAfterMs, externalReference: 'doc_x' });
    expect(f(403, 'CLIENT_SERVICE_NOT_ACTIVE')).toMatchObject({ code: 'UPSTREAM_CLIENT_SERVICE_INACTIVE', retryable: false });
    expect(f(400, undefined, 'Client service is not in active status').code).toBe('UPSTREAM_CLIENT_SERVICE_INACTIVE');
    expect(f(422, 'CERTIFICATE_NOT_PROVISIONED')).toMatchObject({ code: 'UPSTREAM_CERTIFICATE_NOT_PROVISIONED', retryable: false });
    expect(f(429, undefined, undefined, 3000)).toMatchObject({ code: 'UPSTREAM_RATE_LIMITED', retryable: true, retryAfterMs: 3000 });
    expect(f(502)).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', retryable: true });
    expect(f(400, 'INVALID_DOCUMENT')).toMatchObject({ code: 'UPSTREAM_DOCUMENT_REJECTED', extensions: { externalReference: 'doc_x' } });
    // A document's name in the message never overrides the code.
    expect(f(400, 'INVALID_DOCUMENT', 'Document my-certificate.pdf could not be signed').code).toBe('UPSTREAM_DOCUMENT_REJECTED');
    expect(f(400, 'INVALID_DOCUMENT', 'Document not active.pdf could not be signed').code).toBe('UPSTREAM_DOCUMENT_REJECTED');
    expect(f(400, undefined, 'Document not active.pdf could not be signed').code).toBe('UPSTREAM_REJECTED');
    expect(f(404)).toMatchObject({ code: 'UPSTREAM_REJECTED', retryable: false });
    // A document's error entry in a 200 answer (no status of its own): the same table.
    const doc = (errorCode: string) => mapFailure({ status: undefined, errorCode, message: undefined, retryAfterMs: undefined, externalReference: 'doc_x' });
    expect(
      ['INVALID_DOCUMENT', 'CERTIFICATE_NOT_PROVISIONED', 'TOO_MANY_REQUESTS', 'UNAVAILABLE', 'SOMETHING_ELSE'].map((c) => [doc(c).code, doc(c).retryable]),
    ).toEqual([
      ['UPSTREAM_DOCUMENT_REJECTED', false],
      ['UPSTREAM_CERTIFICATE_NOT_PROVISIONED', false],
      ['UPSTREAM_RATE_LIMITED', true],
      ['UPSTREAM_UNAVAILABLE', true],
      ['UPSTREAM_REJECTED', false],
    ]);
    expect([
      parseRetryAfter('2'),
      parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:58 GMT')),
      parseRetryAfter('soon'),
    ]).toEqual([2000, 2000, undefined]);
  });

  it('keeps worker memory flat for a 200 MB batch (RSS growth < 100 MB)', async () => {
    fake.setLatency({ perRequestMs: 5, bytesPerSec: 1e10 });
    const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(root, 'test/fixtures/sign-batch-rss.ts')], {
      cwd: root,
      env: { ...process.env, FAKE_URL: fake.url, DOCS: '10', DOC_BYTES: String(20 * 1024 * 1024) },
      maxBuffer: 1024 * 1024,
    });
    const m = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
      growthMB: number;
      signed: number;
      durationMs: number;
      bytes: number;
      baselineRssMB: number;
      peakRssMB: number;
    };
    console.log(`200 MB batch through the signstash adapter: RSS ${m.baselineRssMB} → ${m.peakRssMB} MB (growth ${m.growthMB} MB) in ${m.durationMs} ms`);
    expect(m.signed).toBe(10);
    expect(m.growthMB).toBeLessThan(100);
  });
});
