/**
 * The baseline of `npm run bench:worker`: a bare batch client doing the least a batch needs. For
 * each batch it reads the documents' spooled files, streams Sign'Stash's sign request (the same
 * JSON the worker sends) to the fake, parses the answer with JSON.parse and writes each signed
 * document to a new file, fsynced, the directory fsynced once per batch. No Redis, no BullMQ, no
 * streaming decoder, no hashing, no records. Forked by bench/worker-cost.ts: reads its work from
 * the IPC message `{fakeUrl, outDir, batches: string[][], warmup: string[][], concurrency}` and
 * answers `{cpuMs, documents}`, the CPU of the measured batches only.
 */
import { open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';

interface Work {
  fakeUrl: string;
  outDir: string;
  batches: string[][];
  warmup: string[][];
  concurrency: number;
}

const agent = new Agent({ keepAliveTimeout: 10_000 });

const tokenOf = async (fakeUrl: string): Promise<string> => {
  const r = await request(`${fakeUrl}/oauth2/authorization-server/oauth/token`, {
    method: 'POST',
    dispatcher: agent,
    headers: { authorization: `Basic ${Buffer.from('signspool:signspool-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  return ((await r.body.json()) as { access_token: string }).access_token;
};

let n = 0;
const signBatch = async (w: Work, token: string, dir: Awaited<ReturnType<typeof open>>, files: string[]): Promise<void> => {
  const batch = `b${n++}`;
  // The request streamed as the worker sends it: each document read and base64-encoded in turn.
  const parts: Buffer[] = [Buffer.from(`{"description":"bare batch of ${files.length} documents","externalReference":"${batch}","documents":[`)];
  for (const [i, f] of files.entries()) {
    parts.push(
      Buffer.from(`${i ? ',' : ''}{"documentRequest":{"base64Content":"`),
      Buffer.from((await readFile(f)).toString('base64'), 'latin1'),
      Buffer.from(
        `","contentType":"application/pdf","externalReference":"${batch}d${i}","name":"d${i}.pdf"},"signatureInfo":{"signatureType":"CAdES","applyTimestamp":false}}`,
      ),
    );
  }
  parts.push(Buffer.from(']}'));
  const r = await request(`${w.fakeUrl}/signstash/einvoice-integration-client-ws/api/v0/document/sign/base64`, {
    method: 'POST',
    dispatcher: agent,
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json',
      'content-length': String(parts.reduce((a, b) => a + b.length, 0)),
    },
    body: Readable.from(parts),
  });
  if (r.statusCode !== 200) throw new Error(`the fake answered ${r.statusCode}`);
  const answer = (await r.body.json()) as { documentList: { externalReference: string; signedContent: string }[] };
  for (const d of answer.documentList) {
    const fh = await open(path.join(w.outDir, d.externalReference), 'wx');
    await fh.writeFile(Buffer.from(d.signedContent, 'base64'));
    await fh.sync();
    await fh.close();
  }
  await dir.sync();
};

/** The batches, `concurrency` at a time (as the worker's UPSTREAM_CONCURRENCY). */
const runAll = async (w: Work, token: string, batches: string[][]): Promise<void> => {
  const dir = await open(w.outDir, 'r');
  let next = 0;
  await Promise.all(
    Array.from({ length: w.concurrency }, async () => {
      while (next < batches.length) await signBatch(w, token, dir, batches[next++] ?? []);
    }),
  );
  await dir.close();
};

process.once('message', (msg) => {
  void (async () => {
    const w = msg as Work;
    const token = await tokenOf(w.fakeUrl);
    await runAll(w, token, w.warmup);
    const c0 = process.cpuUsage();
    await runAll(w, token, w.batches);
    const c = process.cpuUsage(c0);
    await writeFile(path.join(w.outDir, 'done'), '');
    process.send?.({ cpuMs: (c.user + c.system) / 1000, documents: w.batches.reduce((a, b) => a + b.length, 0) });
    await agent.close();
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
