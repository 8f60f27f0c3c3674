/**
 * Finding work without keeping every id: listing a tenant's operations (filters, cursor pages that
 * return each operation exactly once while others are inserted), an operation's documents page by
 * page, and retrying the documents of an operation that failed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSignstash } from './fake-signstash/server.js';
import { auth, submit, waitForTerminal } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';
import { startReceiver, type Receiver } from './harness/webhook-receiver.js';

interface Page {
  data: { id: string; status: string; externalReference: string | null }[];
  has_more: boolean;
  next_cursor: string | null;
}

const list = async (s: Stack, key: string, query: Record<string, string>): Promise<{ status: number; body: Page }> => {
  const res = await fetch(`${s.apiUrl}/v1/operations?${new URLSearchParams(query).toString()}`, { headers: auth(key) });
  return { status: res.status, body: (await res.json()) as Page };
};

describe('listing', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { RATE_LIMIT_REQUESTS: '0' } });
  });
  afterAll(async () => stack?.stop());

  it('returns every operation exactly once across pages while others are inserted', async () => {
    const ids: string[] = [];
    const submitMany = async (n: number, into: string[]): Promise<void> => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < n) {
            next++;
            const r = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a.txt', content: 'x' }]);
            expect(r.status).toBe(202);
            into.push(r.body.id);
          }
        }),
      );
    };
    await submitMany(1000, ids);
    const later: string[] = [];
    const inserting = submitMany(200, later);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const page: { status: number; body: Page } = await list(stack, stack.keys.acme, { limit: '97', ...(cursor ? { starting_after: cursor } : {}) });
      expect(page.status).toBe(200);
      seen.push(...page.body.data.map((o) => o.id));
      cursor = page.body.next_cursor;
      if (!page.body.has_more) break;
    }
    await inserting;
    expect(new Set(seen).size).toBe(seen.length);
    const earlier = new Set(ids);
    expect(seen.filter((id) => earlier.has(id)).sort()).toEqual([...ids].sort());
    // The other tenant sees none of them.
    expect((await list(stack, stack.keys.globex, {})).body.data).toEqual([]);
  });

  it('filters by status, externalReference and creation time, and refuses a bad cursor', async () => {
    const before = new Date().toISOString();
    const tagged = await submit(stack.apiUrl, stack.keys.globex, [{ name: 'a.txt', content: 'x' }], { externalReference: 'invoice-42' });
    await submit(stack.apiUrl, stack.keys.globex, [{ name: 'b.txt', content: 'y' }]);
    const canceled = await submit(stack.apiUrl, stack.keys.globex, [{ name: 'c.txt', content: 'z' }]);
    await fetch(`${stack.apiUrl}/v1/operations/${canceled.body.id}`, { method: 'DELETE', headers: auth(stack.keys.globex) });
    const ids = async (q: Record<string, string>) => (await list(stack, stack.keys.globex, q)).body.data.map((o) => o.id);
    expect(await ids({ externalReference: 'invoice-42' })).toEqual([tagged.body.id]);
    expect(await ids({ status: 'canceled' })).toEqual([canceled.body.id]);
    expect(await ids({ created_after: before })).toHaveLength(3);
    expect(await ids({ created_before: before })).toHaveLength(0);
    expect((await list(stack, stack.keys.globex, { starting_after: 'bm90LWEtY3Vyc29y' })).status).toBe(400);
    expect((await list(stack, stack.keys.globex, { limit: '1000' })).status).toBe(400);
  });

  it("pages through an operation's documents", async () => {
    const files = Array.from({ length: 7 }, (_, i) => ({ name: `d${i}.txt`, content: `d${i}` }));
    const op = await submit(stack.apiUrl, stack.keys.acme, files);
    const names: string[] = [];
    let cursor: string | null = null;
    for (;;) {
      const url: string = `${stack.apiUrl}/v1/operations/${op.body.id}/documents?limit=3${cursor ? `&starting_after=${cursor}` : ''}`;
      const page = (await (await fetch(url, { headers: auth(stack.keys.acme) })).json()) as {
        data: { name: string; id: string }[];
        has_more: boolean;
        next_cursor: string | null;
      };
      names.push(...page.data.map((d) => d.name));
      if (!page.has_more) break;
      cursor = page.next_cursor;
    }
    expect(names).toEqual(files.map((f) => f.name));
  });
});

describe('retry', () => {
  let fake: FakeSignstash;
  let stack: Stack;
  let hook: Receiver;
  beforeAll(async () => {
    fake = new FakeSignstash({ clientId: 'signspool', clientSecret: 'signspool-secret', perRequestMs: 5, bytesPerSec: 1e9 });
    await fake.start();
    hook = await startReceiver();
    stack = await startStack({
      env: fake.clientEnv({
        DEFAULT_SIGNATURE_TYPE: 'CAdES',
        BATCH_LINGER: '20ms',
        UPSTREAM_MAX_ATTEMPTS: '1',
        UPSTREAM_BREAKER_THRESHOLD: '100',
        WEBHOOK_SECRETS: `acme:whsec_${Buffer.from('retry-webhook-secret-0123456789').toString('base64')}`,
        WEBHOOK_ALLOW: '127.0.0.1:*',
        WEBHOOK_ALLOW_HTTP: 'true',
      }),
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await hook?.close();
    await fake?.stop();
  });

  it('re-queues documents that failed with a retryable code; the operation ends again and its webhook fires again', async () => {
    fake.injectFault({ kind: 'server_error', status: 503, times: 1 });
    const op = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a.pdf', content: 'retry me' }], { webhookUrl: hook.url('/retry') });
    const failed = await waitForTerminal(stack.apiUrl, stack.keys.acme, op.body.id);
    expect([failed.status, failed.documents[0]?.error?.code]).toEqual(['failed', 'UPSTREAM_UNAVAILABLE']);
    const retry = await fetch(`${stack.apiUrl}/v1/operations/${op.body.id}/retry`, { method: 'POST', headers: auth(stack.keys.acme) });
    expect(retry.status).toBe(202);
    const done = await waitForTerminal(stack.apiUrl, stack.keys.acme, op.body.id);
    expect(done.status).toBe('succeeded');
    const again = await fetch(`${stack.apiUrl}/v1/operations/${op.body.id}/retry`, { method: 'POST', headers: auth(stack.keys.acme) });
    expect([again.status, ((await again.json()) as { code: string }).code]).toEqual([409, 'NOTHING_TO_RETRY']);
    const deadline = Date.now() + 10_000;
    while (hook.received.filter((e) => e.path === '/retry').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const events = hook.received.filter((e) => e.path === '/retry');
    expect(events.map((e) => (JSON.parse(e.body) as { data: { status: string } }).data.status)).toEqual(['failed', 'succeeded']);
    expect(new Set(events.map((e) => e.headers['webhook-id'])).size).toBe(2);
  });

  it('does not retry a document the upstream rejected, even with ?all=true', async () => {
    fake.setRejectDocumentsNamed(['bad.pdf']);
    const op = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'bad.pdf', content: 'rejected' }]);
    const failed = await waitForTerminal(stack.apiUrl, stack.keys.acme, op.body.id);
    expect(failed.documents[0]?.error?.code).toBe('UPSTREAM_DOCUMENT_REJECTED');
    const retry = await fetch(`${stack.apiUrl}/v1/operations/${op.body.id}/retry?all=true`, { method: 'POST', headers: auth(stack.keys.acme) });
    expect(retry.status).toBe(409);
    fake.setRejectDocumentsNamed([]);
  });
});
