/** The upload admission rule (UPLOAD_CONCURRENCY) alone: first come first served, up to its limit. */
import { describe, expect, it } from 'vitest';
import { UploadAdmission } from '@signspool/api/upload-admission';

describe('UploadAdmission', () => {
  it('admits up to its limit, then one per release, first come first served', async () => {
    const seen: { active: number; waiting: number }[] = [];
    const a = new UploadAdmission(2, (c) => seen.push(c));
    const never = (): void => undefined;
    const r1 = await a.admit(never);
    const r2 = await a.admit(never);
    const order: number[] = [];
    const p3 = a.admit(never).then((r) => (order.push(3), r));
    const p4 = a.admit(never).then((r) => (order.push(4), r));
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

  it('drops a waiting upload whose client went away, and cancelling after admission does nothing', async () => {
    const a = new UploadAdmission(1);
    let cancelFirst = (): void => undefined;
    const r1 = await a.admit((c) => (cancelFirst = c));
    let cancel = (): void => undefined;
    const p2 = a.admit((c) => (cancel = c));
    cancel();
    expect(await p2).toBeUndefined();
    expect(a.counts).toEqual({ active: 1, waiting: 0 });
    cancelFirst();
    expect(a.counts).toEqual({ active: 1, waiting: 0 });
    r1?.();
    expect(a.counts).toEqual({ active: 0, waiting: 0 });
  });
});
