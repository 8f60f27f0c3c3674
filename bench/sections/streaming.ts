/**
 * Section 3, streaming to the upstream: a 50 × 20 MB batch (5 with --quick) through the signstash
 * adapter in a process of its own (test/fixtures/sign-batch-rss.ts), against a bare client
 * streaming the same request body, prepared on disk, to a fake of its own; the worker's RSS growth.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { base64Encode } from '@signspool/worker/streams/base64-stream';
import { WORKER_NODE_FLAGS } from '@signspool/worker/node-flags';
import { writeRandomFile } from '../random-file.js';
import type { Section } from '../section.js';
import { MB, root, startFake } from '../stack.js';

const run = promisify(execFile);

const streaming = async (tmp: string, count: number) => {
  const fake = await startFake(1, 1e12);
  try {
    const { stdout } = await run(
      process.execPath,
      [...WORKER_NODE_FLAGS, '--expose-gc', '--import', 'tsx', path.join(root, 'test/fixtures/sign-batch-rss.ts')],
      {
        cwd: root,
        env: { ...process.env, FAKE_URL: fake.url, DOCS: String(count), DOC_BYTES: String(20 * MB) },
        maxBuffer: MB,
      },
    );
    const m = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { growthMB: number; durationMs: number; bytes: number; signed: number };
    // Baseline: the same sign request body, prepared on disk beforehand, streamed to the fake by a
    // bare client that discards the answer (no base64 on the fly, no parsing, no hashing, no spool).
    const dir = await mkdtemp(path.join(tmp, 'stream-'));
    const bodyFile = path.join(dir, 'body.json');
    const docFile = path.join(dir, 'doc');
    await writeRandomFile(docFile, 20 * MB);
    const fh = await open(bodyFile, 'w');
    await fh.write('{"description":"baseline","externalReference":"b_baseline","documents":[');
    for (let i = 0; i < count; i++) {
      await fh.write(`${i ? ',' : ''}{"documentRequest":{"base64Content":"`);
      for await (const piece of base64Encode(createReadStream(docFile, { highWaterMark: 3 * 64 * 1024 }))) await fh.write(piece);
      await fh.write(
        `","contentType":"application/pdf","externalReference":"d${i}","name":"d${i}.pdf"},"signatureInfo":{"signatureType":"PAdES","applyTimestamp":false}}`,
      );
    }
    await fh.write(']}');
    await fh.close();
    const token = (await (
      await fetch(`${fake.url}/oauth2/authorization-server/oauth/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from('signspool:signspool-secret').toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'grant_type=client_credentials',
      })
    ).json()) as { access_token: string };
    const size = (await stat(bodyFile)).size;
    const t0 = performance.now();
    const r = await request(`${fake.url}/signstash/einvoice-integration-client-ws/api/v0/document/sign/base64`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json', 'content-length': String(size) },
      body: createReadStream(bodyFile, { highWaterMark: MB }),
      headersTimeout: 600_000,
      bodyTimeout: 600_000,
    });
    await r.body.dump({ limit: Number.MAX_SAFE_INTEGER });
    const baselineSecs = (performance.now() - t0) / 1000;
    if (r.statusCode !== 200) throw new Error(`baseline request answered ${r.statusCode}`);
    await rm(dir, { recursive: true, force: true });
    return { growthMB: m.growthMB, mbps: m.bytes / MB / (m.durationMs / 1000), baselineMbps: (count * 20 * MB) / MB / baselineSecs, signed: m.signed };
  } finally {
    await fake.stop();
  }
};

export const streamingSection: Section<void> = {
  id: '3',
  title: 'streaming to the upstream',
  async run(ctx) {
    const add = ctx.report.section('3 streaming');
    const count = ctx.settings.quick ? 5 : 50;
    const st = await streaming(ctx.tmp, count);
    add({
      metric: `${count} × 20 MB batch via the adapter (baseline: a bare client streaming the same request to the fake)`,
      value: st.mbps,
      unit: 'MB/s',
      baseline: st.baselineMbps,
      ratio: st.mbps / st.baselineMbps,
      target: '≥ 0.5× baseline',
      pass: st.mbps / st.baselineMbps >= 0.5 && st.signed === count,
    });
    add({ metric: 'worker RSS growth', value: st.growthMB, unit: 'MB', target: '< 200 MB', pass: st.growthMB < 200 });
  },
};
