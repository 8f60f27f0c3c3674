/**
 * A burst of uploads into a small spool, with a slow upstream: every acknowledged document ends
 * signed (the api keeps room for the worker's results of what it accepted, shared/spool/room.ts,
 * and reserves room for each upload it admits, api/upload/space.ts); the uploads beyond the room
 * get 507 with Retry-After. A batch that only just fits is bisected without waiting on its own
 * room. The spool is an 8 MiB tmpfs (skipped where one cannot be mounted: run
 * as root with mount(8)).
 */
import { createHash } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedSignedSha256, FakeSignstash } from './fake-signstash/server.js';
import { submit, waitForTerminal } from './harness/client.js';
import { startStack, testPrefix, type Stack } from './harness/stack.js';
import { mountTmpfs } from './harness/tmpfs.js';

const { dir, mounted, remove } = await mountTmpfs('burst', '8m');

/** Deterministic sizes of 40–120 KB. */
const sizeOf = (i: number): number => 40_000 + (createHash('sha256').update(String(i)).digest().readUInt32BE(0) % 80_000);

describe.skipIf(!mounted)('a burst of uploads into a small spool', () => {
  let fake: FakeSignstash;
  let stack: Stack;
  beforeAll(async () => {
    fake = new FakeSignstash({ perRequestMs: 1500, bytesPerSec: 1e9 });
    await fake.start();
    stack = await startStack({
      env: fake.clientEnv({
        DEFAULT_SIGNATURE_TYPE: 'CAdES',
        SPOOL_MIN_FREE_BYTES: '1MiB',
        UPLOAD_MAX_FILE_BYTES: '128KiB',
        UPLOAD_MAX_TOTAL_BYTES: '128KiB',
        BATCH_MAX_DOCS: '8',
        BATCH_MAX_BYTES: '512KiB',
        BATCH_LINGER: '50ms',
      }),
      reuse: { dir, prefix: `t${Date.now().toString(36)}` },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await fake?.stop();
    await remove();
  });

  it('signs every acknowledged document and refuses the rest with 507 + Retry-After', async () => {
    const clients = 8;
    const perClient = 20;
    const accepted: { id: string; content: Buffer }[] = [];
    const refused: { status: number; retryAfter: string | null }[] = [];
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        for (let k = 0; k < perClient; k++) {
          const i = c * perClient + k;
          const content = Buffer.alloc(sizeOf(i), i % 251);
          const res = await submit(stack.apiUrl, c % 2 ? stack.keys.globex : stack.keys.acme, [{ name: `d${i}.bin`, content }]);
          if (res.status === 202) accepted.push({ id: `${c % 2}:${res.body.id}`, content });
          else refused.push({ status: res.status, retryAfter: res.headers.get('retry-after') });
        }
      }),
    );
    // The burst outgrew the spool: some were refused, each with 507 and Retry-After.
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.filter((r) => r.status !== 507 || r.retryAfter === null)).toEqual([]);
    expect(accepted.length).toBeGreaterThan(0);
    // Every acknowledged document ends signed, with the bytes the upstream signed.
    const ends = await Promise.all(
      accepted.map(async ({ id, content }) => {
        const [tenant, opId] = id.split(':') as [string, string];
        const done = await waitForTerminal(stack.apiUrl, tenant === '1' ? stack.keys.globex : stack.keys.acme, opId, 180_000);
        const doc = done.documents[0];
        return doc?.status === 'signed' && doc.signed?.sha256 === expectedSignedSha256(content, 'CAdES')
          ? 'signed'
          : `${done.status} ${doc?.error?.code ?? ''}`;
      }),
    );
    expect(ends.filter((e) => e !== 'signed')).toEqual([]);
  });
});

const tight = await mountTmpfs('tight', '8m');
const { dir: tightDir, mounted: tightMounted } = tight;

describe.skipIf(!tightMounted)("a batch that only just fits the worker's room", () => {
  let fake: FakeSignstash;
  const stacks: Stack[] = [];
  beforeAll(async () => {
    fake = new FakeSignstash({ perRequestMs: 5, bytesPerSec: 1e9 });
    await fake.start();
  });
  afterAll(async () => {
    await Promise.all(stacks.map((s) => s.stop()));
    await fake?.stop();
    await tight.remove();
  });

  it('is bisected when the upstream rejects a document without naming it (its halves do not wait on its room)', async () => {
    const prefix = testPrefix();
    const base = { DEFAULT_SIGNATURE_TYPE: 'CAdES', UPLOAD_MAX_FILE_BYTES: '1MiB', BATCH_MAX_DOCS: '2', BATCH_LINGER: '5s' };
    const api = await startStack({ env: fake.clientEnv({ ...base, SPOOL_MIN_FREE_BYTES: '64KiB' }), worker: false, reuse: { dir: tightDir, prefix } });
    stacks.push(api);
    const files = ['bad.bin', 'good.bin'].map((name, i) => ({ name, content: Buffer.alloc(1024 * 1024, i + 1) }));
    const res = await submit(api.apiUrl, api.keys.acme, files);
    expect(res.status).toBe(202);
    // The worker's floor leaves room for the two results and 100 KiB more: not for a third.
    const st = await statfs(tightDir);
    const floor = st.bavail * st.bsize - 2 * (1024 * 1024 + 32 * 1024) - 100 * 1024;
    fake.setRejectDocumentsNamed(['bad.bin'], { unnamed: true });
    const worker = await startStack({ env: fake.clientEnv({ ...base, SPOOL_MIN_FREE_BYTES: String(floor) }), api: false, reuse: { dir: tightDir, prefix } });
    stacks.push(worker);
    const done = await waitForTerminal(api.apiUrl, api.keys.acme, res.body.id, 30_000);
    expect(Object.fromEntries(done.documents.map((d) => [d.name, d.status === 'signed' ? 'signed' : d.error?.code]))).toEqual({
      'bad.bin': 'UPSTREAM_DOCUMENT_REJECTED',
      'good.bin': 'signed',
    });
  });
});
