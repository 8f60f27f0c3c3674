/**
 * What Sign'Stash says about single documents inside a 200 answer: a document left out of the
 * documentList, or answered with an error entry, is tried again when the catalog calls its error
 * retryable (counted attempts, the others of the batch end at once), and a document's own
 * `errorCode` maps through the same table as a request-level one.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeSignstash } from './fake-signstash/server.js';
import { submit, waitForTerminal, type OperationView } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

describe("a document's own answer in a 200", () => {
  let fake: FakeSignstash;
  const stacks: Stack[] = [];
  beforeAll(async () => {
    fake = new FakeSignstash({ perRequestMs: 5, bytesPerSec: 1e9 });
    await fake.start();
  });
  afterEach(async () => {
    await Promise.all(stacks.splice(0).map((s) => s.stop()));
    fake.reset();
  });
  afterAll(async () => {
    await fake?.stop();
  });

  /** Three documents in one batch (it flushes when the third arrives); returns the finished operation and the documents each upstream call carried. */
  const run = async (env: Record<string, string> = {}): Promise<{ done: OperationView; calls: string[][] }> => {
    const s = await startStack({
      env: fake.clientEnv({
        DEFAULT_SIGNATURE_TYPE: 'CAdES',
        BATCH_MAX_DOCS: '3',
        BATCH_LINGER: '5s',
        UPSTREAM_BACKOFF_BASE: '50ms',
        UPSTREAM_BACKOFF_MAX: '200ms',
        ...env,
      }),
    });
    stacks.push(s);
    const files = ['a.txt', 'b.txt', 'c.txt'].map((name) => ({ name, content: `content of ${name}` }));
    const res = await submit(s.apiUrl, s.keys.acme, files);
    expect(res.status).toBe(202);
    const done = await waitForTerminal(s.apiUrl, s.keys.acme, res.body.id, 30_000);
    const byRef = new Map(done.documents.map((d) => [d.id, d.name]));
    const calls = fake.requests().map((r) => r.docs.map((d) => byRef.get(d.externalReference) ?? d.externalReference).sort());
    return { done, calls };
  };
  const outcomes = (done: OperationView): Record<string, string> =>
    Object.fromEntries(done.documents.map((d) => [d.name, d.status === 'signed' ? 'signed' : (d.error?.code ?? d.status)]));

  it('retries a document the answer left out, alone, and signs it', async () => {
    fake.injectFault({ kind: 'omit_document' });
    const { done, calls } = await run();
    expect(outcomes(done)).toEqual({ 'a.txt': 'signed', 'b.txt': 'signed', 'c.txt': 'signed' });
    expect(calls).toEqual([['a.txt', 'b.txt', 'c.txt'], ['a.txt']]);
  });

  it('retries a document answered with a retryable errorCode, mapped like a request-level one', async () => {
    fake.injectFault({ kind: 'document_error', errorCode: 'UNAVAILABLE', times: 2 });
    const { done, calls } = await run();
    expect(outcomes(done)).toEqual({ 'a.txt': 'signed', 'b.txt': 'signed', 'c.txt': 'signed' });
    expect(calls).toEqual([['a.txt', 'b.txt', 'c.txt'], ['a.txt'], ['a.txt']]);
  });

  it.each([
    ['INVALID_DOCUMENT', 'UPSTREAM_DOCUMENT_REJECTED'],
    ['CERTIFICATE_NOT_PROVISIONED', 'UPSTREAM_CERTIFICATE_NOT_PROVISIONED'],
  ])("fails at once a document answered with %s (not retryable): the catalog's %s", async (errorCode, code) => {
    fake.injectFault({ kind: 'document_error', errorCode });
    const { done, calls } = await run();
    expect(outcomes(done)).toEqual({ 'a.txt': code, 'b.txt': 'signed', 'c.txt': 'signed' });
    expect(calls).toEqual([['a.txt', 'b.txt', 'c.txt']]);
  });

  it('gives up after UPSTREAM_MAX_ATTEMPTS answers that leave the document out', async () => {
    fake.injectFault({ kind: 'omit_document', times: 10 });
    const { done, calls } = await run({ UPSTREAM_MAX_ATTEMPTS: '3' });
    expect(outcomes(done)).toEqual({ 'a.txt': 'UPSTREAM_BAD_RESPONSE', 'b.txt': 'signed', 'c.txt': 'signed' });
    expect(done.documents.find((d) => d.name === 'a.txt')?.error?.message).toContain('gave up after 3 attempts');
    expect(calls).toEqual([['a.txt', 'b.txt', 'c.txt'], ['a.txt'], ['a.txt']]);
  });
});
