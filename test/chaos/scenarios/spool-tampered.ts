/**
 * Spool files deleted or altered after upload, while their documents wait in the queue. A
 * tampered document must fail SPOOL_FILE_MISSING (deleted) or SPOOL_FILE_CORRUPT (altered), which
 * is a correct answer, or be signed from the bytes the client sent (if it was read before); it
 * must never be signed from altered bytes. Every other document must be signed.
 */
import { open, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { shardOf } from '@signspool/shared/spool/spool';
import type { Scenario } from '../driver.js';

const tampered = new Map<string, 'deleted' | 'altered'>();

export const spoolTampered: Scenario = {
  name: 'spool-file-deleted-or-altered',
  title: 'upload files deleted or altered in the spool before they are signed',
  // A slow upstream (2 workers × 5 documents / 2 s = 5 documents/s) fed at 8/s: a queue builds up,
  // whose files we touch, and drains within the settle time once the load stops.
  settings: (base) => ({
    docs: Math.min(base.docs, 80),
    docsPerSec: 8,
    fake: { perRequestMs: 2000, bytesPerSec: 500e6 },
    env: { UPSTREAM_CONCURRENCY: '1', BATCH_MAX_DOCS: '5' },
  }),
  async run(ctx) {
    tampered.clear();
    await ctx.waitAcked(12);
    const recent = ctx.acks().slice(-6);
    for (const ack of recent) {
      for (const d of ack.docs) {
        const file = path.join(ctx.spoolDir, 'incoming', shardOf(ack.opId), `${ack.opId}.${d.id}`);
        if (!(await stat(file).catch(() => undefined))) continue;
        const kind = tampered.size % 2 === 0 ? 'deleted' : 'altered';
        if (kind === 'deleted') await unlink(file).catch(() => undefined);
        else {
          // Same size, different bytes.
          const fh = await open(file, 'r+');
          await fh.write(Buffer.from('TAMPERED'), 0, 8, 100);
          await fh.close();
        }
        tampered.set(d.id, kind);
      }
    }
    const n = [...tampered.values()];
    ctx.note(`${n.filter((k) => k === 'deleted').length} files deleted, ${n.filter((k) => k === 'altered').length} altered`);
    if (tampered.size === 0) throw new Error('no queued upload file to tamper with');
  },
  acceptsFailure(docId, code) {
    const kind = tampered.get(docId);
    return (kind === 'deleted' && code === 'SPOOL_FILE_MISSING') || (kind === 'altered' && code === 'SPOOL_FILE_CORRUPT');
  },
};
