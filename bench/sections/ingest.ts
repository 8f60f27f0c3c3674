/**
 * Section 2, ingest: one operation of 50 × 20 MB (5 with --quick) uploaded to the api, against a
 * minimal server that writes the same request body to a file and fsyncs it; the api's RSS growth.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import { multipartBody } from '../../cli/multipart.js';
import { writeRandomFile } from '../random-file.js';
import { rssOf, sampleRss } from '../rss.js';
import type { BenchContext, Section } from '../section.js';
import { MB, stackEnv, startRole } from '../stack.js';

const ingest = async (ctx: BenchContext, count: number) => {
  const { env: e, tmp } = ctx;
  const srcDir = await mkdtemp(path.join(tmp, 'ingest-src-'));
  const files: { name: string; path: string; size: number }[] = [];
  for (let i = 0; i < count; i++) {
    const p = path.join(srcDir, `f${i}.pdf`);
    await writeRandomFile(p, 20 * MB);
    files.push({ name: `f${i}.pdf`, path: p, size: 20 * MB });
  }
  const send = async (url: string, headers: Record<string, string>, pid?: number) => {
    const mp = multipartBody(files);
    const rss = sampleRss(pid);
    const before = await rssOf(pid);
    const t0 = performance.now();
    const r = await request(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': mp.contentType, 'content-length': String(mp.length) },
      body: Readable.from(mp.body()),
    });
    await r.body.dump();
    const secs = (performance.now() - t0) / 1000;
    const peak = await rss.stop();
    if (r.statusCode >= 300) throw new Error(`ingest answered ${r.statusCode}`);
    return { mbps: mp.length / MB / secs, rssGrowth: (peak - before) / MB };
  };
  // Baseline: a minimal server that writes the request body to a file and fsyncs it.
  const sinkFile = path.join(srcDir, 'sink');
  const server = http.createServer((req, res) => {
    void (async () => {
      await pipeline(req, createWriteStream(sinkFile));
      const fh = await open(sinkFile, 'r');
      await fh.sync();
      await fh.close();
      res.writeHead(202).end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const baseline = await send(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, {});
  server.close();
  await rm(sinkFile, { force: true });
  const dir = await mkdtemp(path.join(tmp, 'ingest-'));
  const api = await startRole('api', stackEnv(ctx.settings, e, dir, {}));
  const ours = await send(`${api.url}/v1/operations`, { authorization: `Bearer ${e.key}` }, api.child.pid);
  await api.stop();
  await rm(dir, { recursive: true, force: true });
  await rm(srcDir, { recursive: true, force: true });
  return { ours, baseline };
};

export const ingestSection: Section<void> = {
  id: '2',
  title: 'ingest',
  async run(ctx) {
    const add = ctx.report.section('2 ingest');
    const count = ctx.settings.quick ? 5 : 50;
    const ing = await ingest(ctx, count);
    add({
      metric: `${count} × 20 MB in one operation`,
      value: ing.ours.mbps,
      unit: 'MB/s',
      baseline: ing.baseline.mbps,
      ratio: ing.ours.mbps / ing.baseline.mbps,
      target: '≥ 0.7× baseline',
      pass: ing.ours.mbps / ing.baseline.mbps >= 0.7,
    });
    add({ metric: 'api RSS growth during the upload', value: ing.ours.rssGrowth, unit: 'MB', target: '< 150 MB', pass: ing.ours.rssGrowth < 150 });
  },
};
