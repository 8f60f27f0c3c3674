/**
 * The api SIGKILLed with uploads in flight (8 uploads of 2 MiB declared, 256 KiB of each sent,
 * beside the steady load), then restarted on its port. Acknowledged documents must all complete;
 * the uploads that never got an answer must leave nothing behind once ORPHAN_GRACE has passed
 * (the files and keys left columns, counted after retention and the grace).
 */
import { randomBytes } from 'node:crypto';
import { rawConnect, uploadHead } from '../../harness/raw-http.js';
import type { Scenario } from '../driver.js';
import { listFiles } from '../leftovers.js';

const UPLOADS = 8;
const DECLARED = 2 * 1024 * 1024;
const SENT = 256 * 1024;

export const apiSigkill: Scenario = {
  name: 'api-sigkill-mid-upload',
  title: 'the api SIGKILLed with 8 uploads half sent, and restarted',
  // Operations that end while no api answers must still be readable when one does again.
  settings: (base) => ({ retentionMs: Math.max(base.retentionMs, 30_000), orphanGraceMs: Math.max(base.orphanGraceMs, 30_000) }),
  async run(ctx) {
    await ctx.waitAcked(6);
    const before = (await listFiles(ctx.spoolDir)).length;
    const boundary = `chaos${randomBytes(8).toString('hex')}`;
    const part = `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="half.pdf"\r\ncontent-type: application/pdf\r\n\r\n`;
    const conns = Array.from({ length: UPLOADS }, () =>
      rawConnect(ctx.api.url, [uploadHead(ctx.apiKey, boundary, DECLARED, { 'idempotency-key': randomBytes(12).toString('hex') }), part, randomBytes(SENT)]),
    );
    // The api has begun writing them (files in the spool), or 5 s passed.
    await ctx.waitFor('the half-sent uploads in the spool', async () => (await listFiles(ctx.spoolDir)).length >= before + 1, 5000).catch(() => undefined);
    const inSpool = (await listFiles(ctx.spoolDir)).length - before;
    await ctx.restartApi('SIGKILL');
    const answered = (await Promise.all(conns.map((c) => Promise.race([c.response, new Promise((r) => setTimeout(r, 1000))])))).filter(Boolean).length;
    for (const c of conns) c.socket.destroy();
    ctx.note(`${UPLOADS} uploads half sent at the kill (${inSpool} more files in the spool then); ${answered} got an answer`);
  },
};
