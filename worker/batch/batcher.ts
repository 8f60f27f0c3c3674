/**
 * The batching rule, in one place.
 *
 * Documents are bucketed by key (the worker's: signing identity + signature type, so documents of
 * different tenants that share an identity coalesce). Each key may have its own limits (the
 * identity's batchMaxDocs / batchMaxBytes). A bucket is flushed:
 *  - `docs`:     when it holds BATCH_MAX_DOCS documents;
 *  - `bytes`:    when the next document would push it past BATCH_MAX_BYTES (the bucket is sent
 *                without it), or a single document alone reaches the limit;
 *  - `linger`:   when its oldest document has waited BATCH_LINGER_MS and an upstream slot is free.
 *                If every slot is busy the bucket keeps filling (a deep queue gives full batches
 *                instead of many small ones) and is sent as soon as a slot frees;
 *  - `shutdown`: on `flushAll`, whatever it holds.
 * The batcher holds no document bytes, only the items (ids, sizes, paths).
 */
import type { FlushReason } from '@signspool/shared/metrics';

export interface Batchable {
  /** Bucket key: documents with different keys never share a batch. */
  readonly bucketKey: string;
  readonly size: number;
}

export interface BatcherOptions<T extends Batchable> {
  maxDocs: number;
  maxBytes: number;
  lingerMs: number;
  /** Receives every flushed batch (non-empty). */
  onFlush: (items: T[], reason: FlushReason, key: string) => void;
  /** The limits of a key's buckets (default: maxDocs / maxBytes), read when a bucket opens. */
  limitsOf?: (key: string) => { maxDocs: number; maxBytes: number };
  /** True while an upstream slot is free for the key's batches; linger flushes wait for one. */
  hasCapacity?: (key: string) => boolean;
  now?: () => number;
}

interface Bucket<T> {
  key: string;
  maxDocs: number;
  maxBytes: number;
  items: T[];
  bytes: number;
  openedAt: number;
  timer: NodeJS.Timeout | undefined;
  due: boolean;
}

export class Batcher<T extends Batchable> {
  private readonly buckets = new Map<string, Bucket<T>>();
  private readonly opts: Required<BatcherOptions<T>>;
  private heldCount = 0;
  private stopped = false;

  constructor(opts: BatcherOptions<T>) {
    this.opts = { hasCapacity: () => true, limitsOf: () => ({ maxDocs: opts.maxDocs, maxBytes: opts.maxBytes }), now: Date.now, ...opts };
  }

  /** Documents currently waiting in buckets. */
  get held(): number {
    return this.heldCount;
  }

  get bucketCount(): number {
    return this.buckets.size;
  }

  add(item: T): void {
    if (this.stopped) throw new Error('batcher is stopped');
    let bucket = this.buckets.get(item.bucketKey);
    if (bucket && bucket.items.length > 0 && bucket.bytes + item.size > bucket.maxBytes) {
      this.flush(bucket, 'bytes');
      bucket = undefined;
    }
    if (!bucket) {
      const limits = this.opts.limitsOf(item.bucketKey);
      bucket = { key: item.bucketKey, ...limits, items: [], bytes: 0, openedAt: this.opts.now(), timer: undefined, due: false };
      this.buckets.set(item.bucketKey, bucket);
      this.arm(bucket);
    }
    bucket.items.push(item);
    bucket.bytes += item.size;
    this.heldCount += 1;
    if (bucket.items.length >= bucket.maxDocs) this.flush(bucket, 'docs');
    else if (bucket.bytes >= bucket.maxBytes) this.flush(bucket, 'bytes');
  }

  /**
   * Called when an upstream slot frees: sends the oldest bucket whose linger has expired, if opened
   * before `before` and if `eligible` (e.g. its identity has a slot of its own).
   */
  onCapacity(before = Infinity, eligible: (key: string) => boolean = () => true): void {
    let oldest: Bucket<T> | undefined;
    for (const b of this.buckets.values()) {
      if (b.due && b.openedAt < before && (!oldest || b.openedAt < oldest.openedAt) && eligible(b.key)) oldest = b;
    }
    if (oldest) this.flush(oldest, 'linger');
  }

  /** Flushes every bucket (shutdown). */
  flushAll(reason: FlushReason = 'shutdown'): void {
    for (const b of [...this.buckets.values()]) this.flush(b, reason);
  }

  /** Stops timers; items still held are returned (the caller releases them). */
  stop(): T[] {
    this.stopped = true;
    const left: T[] = [];
    for (const b of this.buckets.values()) {
      if (b.timer) clearTimeout(b.timer);
      left.push(...b.items);
    }
    this.buckets.clear();
    this.heldCount = 0;
    return left;
  }

  private arm(bucket: Bucket<T>): void {
    bucket.timer = setTimeout(() => {
      bucket.timer = undefined;
      if (this.buckets.get(bucket.key) !== bucket) return;
      if (this.opts.hasCapacity(bucket.key)) this.flush(bucket, 'linger');
      else bucket.due = true;
    }, this.opts.lingerMs);
  }

  private flush(bucket: Bucket<T>, reason: FlushReason): void {
    if (bucket.timer) clearTimeout(bucket.timer);
    if (this.buckets.get(bucket.key) === bucket) this.buckets.delete(bucket.key);
    if (bucket.items.length === 0) return;
    this.heldCount -= bucket.items.length;
    this.opts.onFlush(bucket.items, reason, bucket.key);
  }
}
