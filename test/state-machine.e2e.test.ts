/**
 * The state machine's Lua against a real Redis: claims (a document re-claimed by another batch
 * refuses the first batch's outcome), the accepting phase, abandon, and the generated facts.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { DOCUMENT_TRANSITIONS, TERMINAL_OPERATION_STATUSES } from '@signspool/shared/operations/states';
import { OperationStore } from '@signspool/shared/operations/store';
import { loadLua, statesLua } from '@signspool/shared/redis/scripts';
import { newId } from '@signspool/shared/spool/spool';
import { testPrefix } from './harness/stack.js';

describe('state machine', () => {
  let redis: Redis;
  let store: OperationStore;

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
    store = new OperationStore(redis, { prefix: testPrefix(), retentionMs: 60_000 });
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

  it('takes statuses and moves from operation-states.ts into every script', () => {
    const generated = statesLua();
    for (const s of TERMINAL_OPERATION_STATUSES) expect(generated).toContain(`['${s}'] = true`);
    for (const [from, to] of Object.entries(DOCUMENT_TRANSITIONS))
      for (const t of to) expect(generated).toMatch(new RegExp(`\\['${from}'\\] = \\{[^}]*\\['${t}'\\] = true`));
    for (const name of ['transition', 'cancel', 'accepted']) {
      const src = loadLua(name);
      expect(src).not.toMatch(/@include|'succeeded' or|== 'partially_failed'/);
      expect(src.match(/local ALLOWED/g)).toHaveLength(1);
    }
  });
});
