import { describe, expect, it } from 'vitest';
import { DeliverySlots } from '@signspool/worker/webhooks/delivery-slots';

describe('DeliverySlots', () => {
  it('leaves room for a newcomer: a lone tenant holds half, one endpoint half of that', () => {
    const slots = new DeliverySlots(8);
    const held = [];
    for (let i = 0; i < 8; i += 1) {
      const s = slots.tryAcquire('a', 'https://hung.example');
      if (s) held.push(s);
    }
    expect(held).toHaveLength(2);
    // Another endpoint of the same tenant, then another tenant, still get slots.
    expect(slots.tryAcquire('a', 'https://other.example')).toBeDefined();
    expect(slots.tryAcquire('b', 'https://b.example')).toBeDefined();
  });

  it('a tenant with many hung endpoints holds at most its share', () => {
    const slots = new DeliverySlots(8);
    let n = 0;
    for (let i = 0; i < 20; i += 1) if (slots.tryAcquire('a', `https://h${i}.example`)) n += 1;
    expect(n).toBe(4);
    expect(slots.tryAcquire('b', 'https://b.example')).toBeDefined();
  });

  it('gives every tenant at least one slot while any is free, and never more than the total', () => {
    const slots = new DeliverySlots(3);
    const got = ['a', 'b', 'c', 'd'].map((t) => slots.tryAcquire(t, 'https://x.example') !== undefined);
    expect(got).toEqual([true, true, true, false]);
  });

  it('release is idempotent and frees the share', () => {
    const slots = new DeliverySlots(2);
    const s = slots.tryAcquire('a', 'e');
    expect(slots.tryAcquire('a', 'e')).toBeUndefined();
    s?.release();
    s?.release();
    expect(slots.tryAcquire('a', 'e')).toBeDefined();
  });

  it('wakes parked deliveries a freed slot can take, one per endpoint, endpoints in turn', () => {
    const slots = new DeliverySlots(4);
    const hung = slots.tryAcquire('a', 'e1');
    expect(slots.tryAcquire('a', 'e1')).toBeUndefined();
    expect(slots.park('a', 'e1', 'j1')).toBe(0);
    expect(slots.park('a', 'e1', 'j2')).toBe(1);
    expect(slots.parkedAt('a', 'e1')).toBe(2);
    expect(slots.wake()).toEqual([]);
    hung?.release();
    expect(slots.wake()).toEqual(['j1']);
    slots.unpark('j2');
    expect(slots.parkedCount).toBe(0);
  });

  it('parks a refused delivery before its job is delayed: a slot freed during the delay wakes it, and the caller is told', async () => {
    const slots = new DeliverySlots(4);
    const held = slots.tryAcquire('acme', 'https://a');
    expect(held).toBeDefined();
    // acme alone: 2 of 4 for the tenant, 1 for its one endpoint.
    expect(slots.tryAcquire('acme', 'https://a')).toBeUndefined();
    let delayed = (): void => undefined;
    const parking = slots.parkDuring('acme', 'https://a', 'job-2', () => new Promise<void>((resolve) => (delayed = resolve)));
    // The delivery in flight ends while the refused job is still being delayed.
    held?.release();
    expect(slots.wake()).toEqual(['job-2']);
    delayed();
    expect(await parking).toBe(true);
    expect(slots.parkedCount).toBe(0);
  });

  it('leaves a refused delivery parked when no slot frees during the delay, and unparks it when the delay fails', async () => {
    const slots = new DeliverySlots(4);
    slots.tryAcquire('acme', 'https://a');
    expect(await slots.parkDuring('acme', 'https://a', 'job-2', () => Promise.resolve())).toBe(false);
    expect(slots.parkedAt('acme', 'https://a')).toBe(1);
    await expect(slots.parkDuring('acme', 'https://a', 'job-3', () => Promise.reject(new Error('lock lost')))).rejects.toThrow('lock lost');
    expect(slots.parkedAt('acme', 'https://a')).toBe(1);
  });
});
