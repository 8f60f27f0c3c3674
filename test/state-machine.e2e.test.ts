/**
 * The state machine's Lua against a real Redis: claims (a document re-claimed by another batch
 * refuses the first batch's outcome), the accepting phase, abandon, and every move each script
 * makes checked against the tables in shared/operations/states.ts.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { DocumentUpdate } from '@signspool/shared/operations/record';
import { DOCUMENT_STATUSES, DOCUMENT_TRANSITIONS, RETRY_TRANSITIONS, type DocumentStatus } from '@signspool/shared/operations/states';
import { OperationStore } from '@signspool/shared/operations/store';
import { backlogKey } from '@signspool/shared/scheduling/tenant-backlog';
import { newId } from '@signspool/shared/spool/spool';
import { testPrefix } from './harness/stack.js';

describe('state machine', () => {
  let redis: Redis;
  let store: OperationStore;
  const prefix = testPrefix();

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
    store = new OperationStore(redis, { prefix, retentionMs: 60_000 });
  });
  afterAll(() => redis?.disconnect());

  const newOperation = async (committed = true): Promise<{ opId: string; docId: string }> => {
    const opId = newId('op');
    const docId = newId('doc');
    await store.create({
      id: opId,
      tenant: 't',
      signer: 'default',
      signatureType: 'CAdES',
      externalReference: undefined,
      createdAt: Date.now(),
      documents: [{ id: docId, name: 'a', contentType: 'text/plain', size: 1, sha256: '0'.repeat(64) }],
    });
    if (committed) await store.markAccepted(opId);
    return { opId, docId };
  };
  const signed = { size: 1, sha256: '1'.repeat(64), contentType: 'application/pdf', fileName: 'a' };

  it('refuses the outcome of a batch whose document was re-claimed by another batch', async () => {
    const { opId, docId } = await newOperation();
    expect((await store.transition(opId, [{ docId, to: 'signing', claim: 'b_one' }])).applied).toEqual([docId]);
    // The first worker stalled; another takes the document over.
    expect((await store.transition(opId, [{ docId, to: 'signing', claim: 'b_two' }])).applied).toEqual([docId]);
    const late = await store.transition(opId, [{ docId, to: 'signed', claim: 'b_one', signed: { ...signed, file: 'b_one' } }]);
    expect(late.rejected).toEqual([{ docId, status: 'signing' }]);
    expect((await store.transition(opId, [{ docId, to: 'queued', claim: 'b_one' }])).rejected).toHaveLength(1);
    const owner = await store.transition(opId, [{ docId, to: 'signed', claim: 'b_two', signed: { ...signed, file: 'b_two' } }]);
    expect([owner.applied, owner.status]).toEqual([[docId], 'succeeded']);
    const doc = (await store.get(opId))?.documents[0];
    expect([doc?.signed?.file, doc?.attempts]).toEqual(['b_two', 2]);
  });

  it('claims nothing while the submission is accepting; abandon deletes it then, and leaves a committed one', async () => {
    const a = await newOperation(false);
    expect((await store.transition(a.opId, [{ docId: a.docId, to: 'signing', claim: 'b' }])).rejected).toEqual([{ docId: a.docId, status: 'accepting' }]);
    expect(await store.abandon(a.opId)).toBe('abandoned');
    expect(await store.get(a.opId)).toBeUndefined();
    const b = await newOperation(true);
    expect(await store.abandon(b.opId)).toBe('committed');
    expect((await store.transition(b.opId, [{ docId: b.docId, to: 'signing', claim: 'b' }])).applied).toEqual([b.docId]);
  });

  it('moves the documents of many operations at once as one by one, over more operations than one script call takes', async () => {
    const ops = await Promise.all(Array.from({ length: 70 }, () => newOperation()));
    const accepting = await newOperation(false);
    const missing = { opId: newId('op'), docId: newId('doc') };
    const claims = new Map<string, DocumentUpdate[]>([...ops, accepting, missing].map((o) => [o.opId, [{ docId: o.docId, to: 'signing', claim: 'b_many' }]]));
    const claimed = await store.transitionMany(claims);
    expect([...claimed.keys()]).toEqual([...claims.keys()]);
    for (const o of ops) expect(claimed.get(o.opId)).toEqual({ status: 'processing', applied: [o.docId], rejected: [], becameTerminal: false, webhook: false });
    expect(claimed.get(accepting.opId)).toMatchObject({ applied: [], rejected: [{ docId: accepting.docId, status: 'accepting' }] });
    expect(claimed.get(missing.opId)).toMatchObject({ status: 'missing', applied: [], rejected: [] });

    // Ends: signed and failed in turn; the first one under another claim, refused.
    const ends = new Map<string, DocumentUpdate[]>(
      ops.map(({ opId, docId }, i) => [
        opId,
        [
          i % 2 === 0
            ? { docId, to: 'signed', claim: i === 0 ? 'b_other' : 'b_many', signed: { ...signed, file: 'b_many' } }
            : { docId, to: 'failed', claim: 'b_many', error: { code: 'INTERNAL', message: 'm' } },
        ],
      ]),
    );
    const ended = await store.transitionMany(ends);
    for (const [i, { opId, docId }] of ops.entries()) {
      const want =
        i === 0
          ? { status: 'processing', applied: [], rejected: [{ docId, status: 'signing' }], becameTerminal: false }
          : { status: i % 2 === 0 ? 'succeeded' : 'failed', applied: [docId], rejected: [], becameTerminal: true };
      expect(ended.get(opId), `operation ${i}`).toEqual({ ...want, webhook: false });
      expect((await store.get(opId))?.status).toBe(want.status);
    }
  });

  /** A committed operation whose one document was brought to `status` by legal moves. */
  const reach = async (status: DocumentStatus): Promise<{ opId: string; docId: string }> => {
    const o = await newOperation();
    if (status === 'queued') return o;
    if (status === 'canceled') {
      await store.cancel(o.opId);
      return o;
    }
    await store.transition(o.opId, [{ docId: o.docId, to: 'signing', claim: 'c' }]);
    if (status === 'signed') await store.transition(o.opId, [{ docId: o.docId, to: 'signed', claim: 'c', signed: { ...signed, file: 'c' } }]);
    if (status === 'failed') await store.transition(o.opId, [{ docId: o.docId, to: 'failed', claim: 'c', error: { code: 'INTERNAL', message: 'm' } }]);
    return o;
  };
  const update = (docId: string, to: DocumentStatus): DocumentUpdate =>
    to === 'signed'
      ? { docId, to, claim: 'c', signed: { ...signed, file: 'c' } }
      : to === 'failed'
        ? { docId, to, claim: 'c', error: { code: 'INTERNAL', message: 'm' } }
        : { docId, to, claim: 'c' };

  it('makes through the transition script exactly the moves DOCUMENT_TRANSITIONS declares', async () => {
    const made: string[] = [];
    const replayed: string[] = [];
    for (const from of DOCUMENT_STATUSES) {
      for (const to of DOCUMENT_STATUSES) {
        const o = await reach(from);
        const before = await redis.hget(store.key(o.opId), `doc:${o.docId}`);
        expect((await store.get(o.opId))?.documents[0]?.status).toBe(from);
        const applied = (await store.transition(o.opId, [update(o.docId, to)])).applied.length === 1;
        // The same claim's end applied again (its answer lost): reported applied, nothing changed.
        if (applied && from === to && (from === 'signed' || from === 'failed' || from === 'canceled')) {
          replayed.push(`${from}>${to}`);
          expect(await redis.hget(store.key(o.opId), `doc:${o.docId}`)).toBe(before);
        } else if (applied) made.push(`${from}>${to}`);
      }
    }
    expect(replayed.sort()).toEqual(['failed>failed', 'signed>signed']);
    const declared = Object.entries(DOCUMENT_TRANSITIONS).flatMap(([from, tos]) => tos.map((to) => `${from}>${to}`));
    expect(made.sort()).toEqual(declared.sort());
    // Nothing that ended moves again through a worker's script.
    expect(made.filter((m) => /^(signed|failed|canceled)>/.test(m))).toEqual([]);
  });

  it("retries through RETRY_TRANSITIONS only: a failed document is queued again, its error cleared, counted in its tenant's backlog again", async () => {
    const retried: string[] = [];
    for (const from of DOCUMENT_STATUSES) {
      const o = await reach(from);
      if ((await store.retry(o.opId, [o.docId])).applied.length === 1) retried.push(`${from}>queued`);
    }
    const declared = Object.entries(RETRY_TRANSITIONS).flatMap(([from, tos]) => tos.map((to) => `${from}>${to}`));
    expect(retried).toEqual(declared);

    const o = await reach('failed');
    const backlog = async (): Promise<number> => Number((await redis.hget(backlogKey(prefix), 't')) ?? 0);
    const before = await backlog();
    const r = await store.retry(o.opId, [o.docId]);
    expect([r.applied, r.status, r.round]).toEqual([[o.docId], 'queued', 1]);
    const doc = (await store.get(o.opId))?.documents[0];
    expect([doc?.status, doc?.error]).toEqual(['queued', undefined]);
    expect(await backlog()).toBe(before + 1);
    // A late worker cannot fail it back without claiming it first, nor revive a signed one.
    expect((await store.transition(o.opId, [update(o.docId, 'signing')])).applied).toEqual([o.docId]);
  });
});
