/** The batching rule (unit): count, bytes, linger, capacity-aware linger, shutdown. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Batcher, type Batchable } from '@signspool/worker/batch/batcher';

interface Item extends Batchable {
  id: number;
}

const item = (id: number, size = 10, bucketKey = 'acme/CAdES'): Item => ({ id, size, bucketKey });

const setup = (opts: { maxDocs?: number; maxBytes?: number; lingerMs?: number; capacity?: () => boolean } = {}) => {
  const flushed: { ids: number[]; reason: string; key: string }[] = [];
  const batcher = new Batcher<Item>({
    maxDocs: opts.maxDocs ?? 3,
    maxBytes: opts.maxBytes ?? 1000,
    lingerMs: opts.lingerMs ?? 100,
    ...(opts.capacity ? { hasCapacity: opts.capacity } : {}),
    onFlush: (items, reason, key) => flushed.push({ ids: items.map((i) => i.id), reason, key }),
  });
  return { batcher, flushed };
};

afterEach(() => {
  vi.useRealTimers();
});

describe('Batcher', () => {
  it('flushes a bucket when it reaches maxDocs', () => {
    const { batcher, flushed } = setup({ maxDocs: 3 });
    [1, 2, 3, 4].forEach((i) => batcher.add(item(i)));
    expect(flushed).toEqual([{ ids: [1, 2, 3], reason: 'docs', key: 'acme/CAdES' }]);
    expect(batcher.held).toBe(1);
    batcher.stop();
  });

  it('never mixes bucket keys', () => {
    const { batcher, flushed } = setup({ maxDocs: 2 });
    batcher.add(item(1, 10, 'a'));
    batcher.add(item(2, 10, 'b'));
    batcher.add(item(3, 10, 'a'));
    expect(flushed).toEqual([{ ids: [1, 3], reason: 'docs', key: 'a' }]);
    expect(batcher.stop().map((i) => i.id)).toEqual([2]);
  });

  it('sends the bucket without the document that would exceed maxBytes', () => {
    const { batcher, flushed } = setup({ maxDocs: 10, maxBytes: 100 });
    batcher.add(item(1, 40));
    batcher.add(item(2, 40));
    batcher.add(item(3, 40));
    expect(flushed).toEqual([{ ids: [1, 2], reason: 'bytes', key: 'acme/CAdES' }]);
    batcher.add(item(4, 60));
    expect(flushed[1]).toEqual({ ids: [3, 4], reason: 'bytes', key: 'acme/CAdES' });
    batcher.stop();
  });

  it('sends a document larger than maxBytes alone', () => {
    const { batcher, flushed } = setup({ maxDocs: 10, maxBytes: 100 });
    batcher.add(item(1, 10));
    batcher.add(item(2, 500));
    expect(flushed).toEqual([
      { ids: [1], reason: 'bytes', key: 'acme/CAdES' },
      { ids: [2], reason: 'bytes', key: 'acme/CAdES' },
    ]);
    expect(batcher.held).toBe(0);
  });

  it('flushes a partial bucket after lingerMs', () => {
    vi.useFakeTimers();
    const { batcher, flushed } = setup({ lingerMs: 100 });
    batcher.add(item(1));
    vi.advanceTimersByTime(60);
    batcher.add(item(2));
    vi.advanceTimersByTime(39);
    expect(flushed).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(flushed).toEqual([{ ids: [1, 2], reason: 'linger', key: 'acme/CAdES' }]);
  });

  it('keeps filling a lingering bucket while no upstream slot is free', () => {
    vi.useFakeTimers();
    let free = false;
    const { batcher, flushed } = setup({ maxDocs: 5, lingerMs: 100, capacity: () => free });
    batcher.add(item(1));
    vi.advanceTimersByTime(500);
    batcher.add(item(2));
    expect(flushed).toEqual([]);
    free = true;
    batcher.onCapacity();
    expect(flushed).toEqual([{ ids: [1, 2], reason: 'linger', key: 'acme/CAdES' }]);
  });

  it('gives a free slot to a lingered bucket only if it is older than the batch waiting for one', () => {
    vi.useFakeTimers();
    const { batcher, flushed } = setup({ maxDocs: 5, lingerMs: 100, capacity: () => false });
    const opened = Date.now();
    batcher.add(item(1, 10, 'globex/CAdES'));
    vi.advanceTimersByTime(150);
    // A batch waiting since the bucket opened keeps its turn...
    batcher.onCapacity(opened);
    expect(flushed).toEqual([]);
    // ...one formed after it (a busy tenant's next full batch) lets the lingered bucket go first.
    batcher.onCapacity(opened + 50);
    expect(flushed).toEqual([{ ids: [1], reason: 'linger', key: 'globex/CAdES' }]);
  });

  it('flushes everything on shutdown', () => {
    const { batcher, flushed } = setup();
    batcher.add(item(1, 10, 'a'));
    batcher.add(item(2, 10, 'b'));
    batcher.flushAll();
    expect(flushed.map((f) => [f.ids, f.reason])).toEqual([
      [[1], 'shutdown'],
      [[2], 'shutdown'],
    ]);
    expect(batcher.stop()).toEqual([]);
  });
});
