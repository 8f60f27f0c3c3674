/** The upload admission rule (UPLOAD_CONCURRENCY, UPLOAD_TENANT_SHARE) alone: per-tenant shares, other tenants first, a tenant's first upload at once. */
import { describe, expect, it } from 'vitest';
import { UploadAdmission } from '@signspool/api/upload/admission';

describe('UploadAdmission', () => {
  it('admits up to its limit, then one per release, first come first served', async () => {
    const seen: { active: number; waiting: number }[] = [];
    const a = new UploadAdmission(2, 1, (c) => seen.push(c));
    const never = (): void => undefined;
    const r1 = await a.admit('t', never);
    const r2 = await a.admit('t', never);
    const order: number[] = [];
    const p3 = a.admit('t', never).then((r) => (order.push(3), r));
    const p4 = a.admit('t', never).then((r) => (order.push(4), r));
    expect(a.counts).toEqual({ active: 2, waiting: 2 });
    r1?.();
    r1?.(); // a release works once
    const r3 = await p3;
    expect(a.counts).toEqual({ active: 2, waiting: 1 });
    r2?.();
    const r4 = await p4;
    expect(order).toEqual([3, 4]);
    r3?.();
    r4?.();
    expect(a.counts).toEqual({ active: 0, waiting: 0 });
    expect(seen[0]).toEqual({ active: 0, waiting: 0 });
    expect(seen.at(-1)).toEqual({ active: 0, waiting: 0 });
  });

  it('caps one tenant at its share and admits the other tenants first, round-robin among equals', async () => {
    const a = new UploadAdmission(4, 0.5);
    expect(a.perTenant).toBe(2);
    const never = (): void => undefined;
    const order: string[] = [];
    const take = (tenant: string): Promise<(() => void) | undefined> => a.admit(tenant, never).then((r) => (order.push(tenant), r));
    // Tenant A fills its share and queues three more; B and C arrive later.
    const [a1, a2] = await Promise.all([take('A'), take('A')]);
    const queuedA = [take('A'), take('A'), take('A')];
    expect(a.counts).toEqual({ active: 2, waiting: 3 });
    const b1 = await take('B');
    const c1 = await take('C');
    // Every slot is taken (A 2, B 1, C 1); then B and C queue behind A's three.
    const b2 = take('B');
    const c2 = take('C');
    expect(a.counts).toEqual({ active: 4, waiting: 5 });
    order.length = 0;
    // A slot of A frees: A, B and C each hold one, so the tenant served longest ago goes first (A).
    a1?.();
    await queuedA[0];
    expect(order).toEqual(['A']);
    // Now A holds 2 (its share): the next slot goes to B, then to C, although A queued first.
    b1?.();
    await b2;
    c1?.();
    await c2;
    expect(order).toEqual(['A', 'B', 'C']);
    expect(a.tenantCounts('A')).toEqual({ active: 2, waiting: 2 });
    // A's own release admits its next upload only while it stays within its share.
    a2?.();
    await queuedA[1];
    expect(a.tenantCounts('A')).toEqual({ active: 2, waiting: 1 });
  });

  it('admits a tenant with nothing being read at once, even with every slot held by others (issue 25.1)', async () => {
    const a = new UploadAdmission(4, 0.5);
    const never = (): void => undefined;
    // A and B fill every slot with their shares and queue more.
    const held = await Promise.all(['A', 'A', 'B', 'B'].map((t) => a.admit(t, never)));
    const queued = [a.admit('A', never), a.admit('B', never)];
    expect(a.counts).toEqual({ active: 4, waiting: 2 });
    // C's first upload is read now (over the limit); its second waits like anyone's.
    const c1 = await a.admit('C', never);
    expect(a.counts).toEqual({ active: 5, waiting: 2 });
    const c2 = a.admit('C', never);
    expect(a.tenantCounts('C')).toEqual({ active: 1, waiting: 1 });
    // A slot freed while 5 are read (over the limit of 4) admits nobody who already has one being read.
    held[0]?.();
    expect(a.counts).toEqual({ active: 4, waiting: 3 });
    // A tenant whose last upload ends has nothing being read: its next is admitted at once.
    held[1]?.();
    await queued[0];
    expect(a.tenantCounts('A')).toEqual({ active: 1, waiting: 0 });
    c1?.();
    await c2;
    expect(a.tenantCounts('C')).toEqual({ active: 1, waiting: 0 });
    expect(a.counts).toEqual({ active: 4, waiting: 1 });
  }, 5000);

  it('drops a waiting upload whose client went away, and cancelling after admission does nothing', async () => {
    const a = new UploadAdmission(1);
    let cancelFirst = (): void => undefined;
    const r1 = await a.admit('t', (c) => (cancelFirst = c));
    let cancel = (): void => undefined;
    const p2 = a.admit('t', (c) => (cancel = c));
    cancel();
    expect(await p2).toBeUndefined();
    expect(a.counts).toEqual({ active: 1, waiting: 0 });
    cancelFirst();
    expect(a.counts).toEqual({ active: 1, waiting: 0 });
    r1?.();
    expect(a.counts).toEqual({ active: 0, waiting: 0 });
  });
});
