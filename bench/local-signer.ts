/**
 * `npm run bench:signer`: the local signer's cost. For 200 KB PDFs (PAdES), XMLs (XAdES) and
 * binaries (CAdES), batches of 50 signed through LocalSigner.signBatch in a child process (a
 * worker's work: read from the spool, sign, write the result over a spare file as in steady state,
 * each batch to its own result paths): documents per CPU-second (per
 * core) and the child's peak RSS, beside the bare signature measured in the same child (CMS over
 * the document's SHA-256 with the bytes already in memory; for XML, XAdES over a one-element
 * document plus hashing the bytes): the ratio is what the document handling costs; and beside the
 * bare program over the same spooled files (read, hash, sign, write the result over a spare file
 * and fsync it, a directory fsync per batch; no parsing): the ratio is what the format's work (the
 * PDF's structure and update, XML's canonical form) and the runner's glue cost. Then the peak
 * RSS growth for one large document of each kind (20 MB), and the
 * submit-time format check per document.
 *
 * The child runs as production runs the worker: from a bundle made with scripts/build.mjs's
 * esbuild options (BENCH_SIGNER_RUNTIME=tsx runs it under tsx instead, as `npm run dev` does; tsx
 * wraps every closure in a name helper, which costs the signer far more than the bare program), and
 * signs BENCH_SIGNER_WARMUP unmeasured batches first, the bare program as many (a running worker
 * has its code compiled: the JIT's work is part of the first few hundred documents' CPU).
 *
 * As a section of `npm run bench`: `const rows = await localSignerSection()` (rows as printed).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, ftruncateSync, openSync, readSync, writevSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PDFDocument } from 'pdf-lib';
import { documentFormatError } from '@signspool/api/upload/document-format';
import { silentLogger } from '@signspool/shared/logger';
import type { SignatureType } from '@signspool/shared/queue';
import { Spool } from '@signspool/shared/spool/spool';
import { WORKER_NODE_FLAGS } from '@signspool/worker/node-flags';
import type { BatchDocument } from '@signspool/worker/signer';
import { CmsBuilder } from '@signspool/worker/signers/local/cms';
import { LocalSigner } from '@signspool/worker/signers/local/local';
import { loadOrCreateSigningIdentity } from '@signspool/worker/signers/local/cert';
import { XadesEnvelopedSigner } from '@signspool/worker/signers/local/xades-enveloped';
import { readScriptSettings } from './settings.js';

const KB = 1024;
const MB = 1024 * KB;
const BATCH = 50;
const { batches: BATCHES, xmlBatches: XML_BATCHES, warmup: WARMUP, runtime: RUNTIME } = readScriptSettings(process.env).signer;

export interface SignerRow {
  metric: string;
  value: number;
  unit: string;
  baseline?: number;
  ratio?: number;
}

/** A PDF of about `size` bytes (a page and an incompressible stream), made with pdf-lib. */
export const makePdf = async (size: number): Promise<Buffer> => {
  const pdf = await PDFDocument.create();
  pdf.addPage();
  pdf.context.register(pdf.context.stream(randomBytes(size)));
  return Buffer.from(await pdf.save());
};
/** An invoice-like UTF-8 XML of about `size` bytes. */
export const makeXml = (size: number): Buffer => {
  const line = (i: number): string =>
    `<Line><ID>${i}</ID><Item>Widget ${i} – größe ${i % 7}</Item><Amount currency="EUR">${(i * 1.37).toFixed(2)}</Amount></Line>\n`;
  const parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<Invoice xmlns="urn:signspool:bench">\n'];
  let n = parts[0]?.length ?? 0;
  for (let i = 0; n < size - 20; i++) {
    const l = line(i);
    parts.push(l);
    n += Buffer.byteLength(l);
  }
  parts.push('</Invoice>\n');
  return Buffer.from(parts.join(''));
};
const makeDoc = (type: SignatureType, size: number): Promise<Buffer> | Buffer =>
  type === 'PAdES' ? makePdf(size) : type === 'XAdES' ? makeXml(size) : randomBytes(size);

const status = async (field: string): Promise<number> =>
  Number(new RegExp(`${field}:\\s+(\\d+)`).exec(await readFile('/proc/self/status', 'utf8'))?.[1] ?? 0) * KB;
/** Resets this process's peak RSS (VmHWM), so it measures what follows. */
const resetPeak = (): Promise<void> => writeFile('/proc/self/clear_refs', '5').catch(() => undefined);
const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/**
 * Writes a file and fsyncs it, as the api stores an upload: a spare (a retired upload) has its
 * blocks allocated, whereas a file just written and not yet written back would have them
 * allocated by the fsync of whoever writes over it (ext4's delayed allocation).
 */
const writeDurable = async (file: string, place: (file: string) => Promise<void>): Promise<void> => {
  await place(file);
  const fh = await open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
};

/**
 * In the child: signs batches of `size`-byte documents; prints a JSON result. With `source` (the
 * one-large-document runs), the document is that file, made and hashed by the parent (`sha256`,
 * its hex digest): made or read here, the memory
 * freed after making it would still be in this process's RSS when the baseline is taken, and the
 * signer's buffers would reuse it.
 */
const child = async (type: SignatureType, target: number, batches: number, warmup: number, source?: string, sourceSha256?: string): Promise<void> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-signer-'));
  try {
    const spool = new Spool(path.join(dir, 'spool'));
    await spool.init();
    const signer = new LocalSigner({ dataDir: path.join(dir, 'data'), keyFile: undefined, certFile: undefined, spool, logger: silentLogger() });
    await signer.start();
    const content = source === undefined ? await makeDoc(type, target) : undefined;
    // A made PDF or XML is a little over or under the target: the upload's size is the content's.
    const size = content?.length ?? (await stat(source ?? '')).size;
    const sha256 = content ? createHash('sha256').update(content).digest('hex') : (sourceSha256 ?? '');
    const place = (file: string): Promise<void> => (content ? writeFile(file, content) : copyFile(source ?? '', file));
    const perBatch = Math.min(BATCH, batches === 0 ? 1 : BATCH);
    const docs: BatchDocument[] = [];
    for (let i = 0; i < perBatch; i++) {
      const p = spool.incomingPath('op_bench', `doc_${i}`);
      await mkdir(path.dirname(p), { recursive: true });
      await place(p);
      docs.push({
        opId: 'op_bench',
        docId: `doc_${i}`,
        name: `d${i}`,
        contentType: 'application/octet-stream',
        size,
        sha256,
        path: p,
        resultPath: '',
      });
    }
    const signal = new AbortController().signal;
    let runs = 0;
    const run = async (documents = docs): Promise<void> => {
      // Each batch its own result paths, as batch ids are unique (no result replaces an earlier one).
      const batchId = `b${++runs}`;
      const batchDocs = documents.map((d) => ({ ...d, resultPath: spool.signedPath(d.opId, d.docId, batchId) }));
      const results = await signer.signBatch({ batchId, tenant: 't', signatureType: type, documents: batchDocs }, signal);
      if (results.some((r) => !r.ok)) throw new Error(`${type}: a document failed`);
    };
    const n = Math.max(1, batches);
    // A worker in steady state writes each result over a spare file (the upload of a document it
    // signed earlier, retired by the batch runner): one per result to write, retired before each
    // batch (a process keeps at most 1024 spares: made all at once, the last batches' results
    // would be new files).
    const retireSpares = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const p = spool.tmpPath('upload');
        await writeDurable(p, place);
        await spool.retire(p, size);
      }
    };
    await retireSpares(2);
    // The bare signature, in the same process: no spool, no document handling.
    const identity = await loadOrCreateSigningIdentity({ dataDir: path.join(dir, 'data'), keyFile: undefined, certFile: undefined, logger: silentLogger() });
    const cms = new CmsBuilder(identity);
    const xades = new XadesEnvelopedSigner(identity);
    const oneElement = Buffer.from('<a/>');
    const bareSignature = async (bytes: Buffer): Promise<Buffer[]> => {
      const digest = createHash('sha256').update(bytes).digest();
      if (type === 'XAdES') return (await xades.sign(oneElement))?.parts ?? [];
      const { head, tail } = cms.encode(cms.sign(digest, { signingTime: type !== 'PAdES' }));
      return [head, tail];
    };
    // Not in the one-large-document runs (no document in memory there).
    const bare = async (count: number): Promise<void> => {
      if (content) for (let i = 0; i < count; i++) await bareSignature(content);
    };
    // The bare program: the least a durable signed result of a spooled document needs, with no
    // parsing: read the file, hash and sign it, write the document (but for a detached CAdES) and
    // the signature over an existing file of the document's size (new pages cost 3-4x here, and
    // the signer writes over spares too), cut it to length, fsync it; a directory fsync per batch.
    const bareDir = path.join(dir, 'bare');
    await mkdir(bareDir);
    const bareDirFd = openSync(bareDir, 'r');
    const bareSpares = batches === 0 ? 0 : 2 + perBatch * (n + warmup);
    for (let i = 0; i < bareSpares; i++) await writeDurable(path.join(bareDir, `r${i}`), place);
    let bareFiles = 0;
    // One read buffer for all documents, as the signer reuses its own (a new one per document costs page faults here).
    const readBuffer = Buffer.allocUnsafeSlow(size);
    // Synchronous calls: the least CPU per file operation (no thread-pool hop, no promise).
    const bareProgram = async (documents: readonly BatchDocument[]): Promise<void> => {
      for (const d of documents) {
        const input = openSync(d.path, 'r');
        let length = 0;
        try {
          for (let got = -1; got !== 0 && length < size; length += got) got = readSync(input, readBuffer, length, size - length, length);
        } finally {
          closeSync(input);
        }
        const bytes = readBuffer.subarray(0, length);
        const signature = await bareSignature(bytes);
        const out = openSync(path.join(bareDir, `r${bareFiles++}`), 'r+');
        try {
          const written = writevSync(out, type === 'CAdES' ? signature : [bytes, ...signature]);
          ftruncateSync(out, written);
          fsyncSync(out);
        } finally {
          closeSync(out);
        }
      }
      fsyncSync(bareDirFd);
    };
    // Key import, first compilation. The one-large-document runs sign a 200 KB document of the
    // kind here: signing the large one, its freed buffers would be under the baseline too.
    const first = async (): Promise<BatchDocument[]> => {
      if (source === undefined) return docs.slice(0, 2);
      const small = await makeDoc(type, 200 * KB);
      const p = spool.incomingPath('op_bench', 'doc_first');
      await writeFile(p, small);
      return [
        {
          opId: 'op_bench',
          docId: 'doc_first',
          name: 'first',
          contentType: 'application/octet-stream',
          size: small.length,
          sha256: createHash('sha256').update(small).digest('hex'),
          path: p,
          resultPath: '',
        },
      ];
    };
    await run(await first());
    await bare(2);
    if (bareSpares > 0) await bareProgram(docs.slice(0, 2));
    global.gc?.();
    await resetPeak();
    const rssBefore = await status('VmRSS');
    // The warm-up after the forced GC: a full GC between warm-up and measurement had V8 drop type
    // feedback and optimized code of the XML scanner, recompiled in the first measured batch.
    for (let b = 0; b < warmup; b++) {
      await retireSpares(perBatch);
      await run();
      await bare(perBatch);
      await bareProgram(docs);
    }
    // Each batch followed by the bare signatures of as many documents: the machine's load drifts
    // alike over both (ratios within a run).
    let cpuS = 0;
    let wallMs = 0;
    let bareCpuS = 0;
    let programCpuS = 0;
    for (let b = 0; b < n; b++) {
      await retireSpares(perBatch);
      const c0 = cpu();
      const t0 = performance.now();
      await run();
      wallMs += performance.now() - t0;
      cpuS += cpu() - c0;
      const b0 = cpu();
      await bare(perBatch);
      bareCpuS += cpu() - b0;
      // Not in the one-large-document runs: they measure the signer's peak RSS.
      if (bareSpares === 0) continue;
      const p0 = cpu();
      await bareProgram(docs);
      programCpuS += cpu() - p0;
    }
    closeSync(bareDirFd);
    const wallS = wallMs / 1000;
    const peak = await status('VmHWM');
    const bareN = perBatch * n;
    process.stdout.write(`${JSON.stringify({ docs: perBatch * n, wallS, cpuS, rssBefore, peak, bareN, bareCpuS, programCpuS })}\n`);
    await signer.stop();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
};

interface ChildResult {
  docs: number;
  wallS: number;
  cpuS: number;
  rssBefore: number;
  peak: number;
  bareN: number;
  bareCpuS: number;
  /** CPU of the bare program over the same documents (bareN of them). */
  programCpuS: number;
}

const ROOT = path.resolve(import.meta.dirname, '..');
let bundled: string | undefined;
/**
 * How the child is run: this file bundled by scripts/build.mjs (into .tmp/ of this tree, where its
 * imports resolve from node_modules), built once per process; or this file under tsx.
 */
const childScript = (): string[] => {
  if (RUNTIME === 'tsx') return ['--import', 'tsx', import.meta.filename];
  if (bundled === undefined) {
    const outdir = path.join(ROOT, '.tmp', 'bench-signer');
    const built = spawnSync(
      process.execPath,
      [path.join(ROOT, 'scripts', 'build.mjs'), '--entry', `local-signer=${path.relative(ROOT, import.meta.filename)}`, '--outdir', outdir],
      {
        cwd: ROOT,
        stdio: 'inherit',
      },
    );
    if (built.status !== 0) throw new Error(`bench:signer: bundling the child failed (exit ${built.status})`);
    bundled = path.join(outdir, 'local-signer.js');
  }
  return [bundled];
};

const runChild = (type: SignatureType, size: number, batches: number, warmup = 0, source?: { file: string; sha256: string }): Promise<ChildResult> =>
  new Promise((resolve, reject) => {
    const args = ['--child', type, String(size), String(batches), String(warmup), ...(source === undefined ? [] : [source.file, source.sha256])];
    const p = spawn(process.execPath, [...WORKER_NODE_FLAGS, '--expose-gc', ...childScript(), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.on('error', reject);
    p.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ChildResult) : reject(new Error(`bench child ${type} exited ${code}`)),
    );
  });

/** `quick`: one batch per format, no warm-up batches and no 20 MB documents (CI's short form). */
export const localSignerSection = async (print: (row: SignerRow) => void = printRow, opts: { quick?: boolean } = {}): Promise<SignerRow[]> => {
  const batches = opts.quick ? 1 : BATCHES;
  const rows: SignerRow[] = [];
  const add = (r: SignerRow): void => {
    rows.push(r);
    print(r);
  };
  for (const type of ['PAdES', 'XAdES', 'CAdES'] as const) {
    const r = await runChild(type, 200 * KB, type === 'XAdES' ? Math.min(XML_BATCHES, batches) : batches, opts.quick ? 0 : WARMUP);
    const perCore = r.docs / r.cpuS;
    const bare = r.bareN / r.bareCpuS;
    add({
      metric: `${type} 200 KB, batches of ${BATCH}: documents per CPU-second (bare signature as baseline)`,
      value: perCore,
      unit: 'docs/s/core',
      baseline: bare,
      ratio: perCore / bare,
    });
    const program = r.bareN / r.programCpuS;
    add({
      metric: `${type} 200 KB, batches of ${BATCH}: documents per CPU-second (bare program as baseline: read, hash, sign, write over a spare file, fsync)`,
      value: perCore,
      unit: 'docs/s/core',
      baseline: program,
      ratio: perCore / program,
    });
    add({ metric: `${type} 200 KB: wall-clock documents/s (one process)`, value: r.docs / r.wallS, unit: 'docs/s' });
    add({ metric: `${type} 200 KB: worker peak RSS while signing (before: ${fmt(r.rssBefore / MB)} MB)`, value: r.peak / MB, unit: 'MB' });
  }
  for (const [type, size] of opts.quick
    ? []
    : ([
        ['PAdES', 20 * MB],
        ['CAdES', 20 * MB],
        ['XAdES', 20 * MB],
      ] as const)) {
    // The document made here and handed to the child as a file: the child's RSS is the signer's.
    const made = await mkdtemp(path.join(os.tmpdir(), 'bench-signer-doc-'));
    let r: ChildResult;
    try {
      const file = path.join(made, 'document');
      const content = await makeDoc(type, size);
      await writeFile(file, content);
      r = await runChild(type, size, 0, 0, { file, sha256: createHash('sha256').update(content).digest('hex') });
    } finally {
      await rm(made, { recursive: true, force: true });
    }
    const growth = (r.peak - r.rssBefore) / MB;
    add({
      metric: `${type} one ${size / MB} MB document: peak RSS growth over the process before it (warmed up on a 200 KB one; baseline: the document's size)`,
      value: growth,
      unit: 'MB',
      baseline: size / MB,
      ratio: growth / (size / MB),
    });
  }
  // The check at submit (api/upload/document-format.ts), per 200 KB document.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-format-'));
  try {
    for (const type of ['PAdES', 'XAdES'] as const) {
      const file = path.join(dir, type);
      await writeFile(file, await makeDoc(type, 200 * KB));
      for (let i = 0; i < 20; i++) await documentFormatError(type, file);
      const c0 = cpu();
      const N = 200;
      for (let i = 0; i < N; i++) if ((await documentFormatError(type, file)) !== null) throw new Error('format check refused a good document');
      add({ metric: `${type} submit-time format check, 200 KB document (api CPU)`, value: ((cpu() - c0) / N) * 1e6, unit: 'µs/doc' });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
};

const fmt = (n: number): string => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));
const printRow = (r: SignerRow): void => {
  console.log(
    [
      'signer',
      r.metric,
      `${fmt(r.value)} ${r.unit}`,
      r.baseline === undefined ? '' : `${fmt(r.baseline)} ${r.unit}`,
      r.ratio === undefined ? '' : `${fmt(r.ratio)}×`,
    ].join(' | '),
  );
};

const argv = process.argv;
if (argv[2] === '--child') {
  await child(argv[3] as SignatureType, Number(argv[4]), Number(argv[5]), Number(argv[6] ?? 0), argv[7], argv[8]);
} else if (import.meta.filename === path.resolve(argv[1] ?? '')) {
  console.log(
    `signspool bench:signer: ${BATCHES} batches of ${BATCH} per type (XAdES: ${XML_BATCHES}) after ${WARMUP} unmeasured batches, the child run ${RUNTIME === 'tsx' ? 'under tsx' : 'from the production bundle (scripts/build.mjs)'}, ${os.cpus().length} CPUs (shared machine: compare ratios)`,
  );
  console.log('section | metric | value | baseline | ratio');
  await localSignerSection();
}
