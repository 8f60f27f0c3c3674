import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileWriter, pipeInto, SpoolWriteStream } from '@signspool/shared/spool/file-io';
import { Base64FileSink } from '@signspool/worker/streams/base64-file-sink';

const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;

describe('page-cache I/O', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pcio-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('SpoolWriteStream writes every byte of a multi-piece stream and leaves no descriptor open', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const target = path.join(dir, 'out');
    const before = await openFds();
    const pieces = Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
    await pipeline(Readable.from(pieces), new SpoolWriteStream(target, 'wx'));
    expect((await readFile(target)).equals(data)).toBe(true);
    expect(await openFds()).toBe(before);
  });

  it("SpoolWriteStream with 'wx' refuses an existing file and keeps it as it was", async () => {
    const target = path.join(dir, 'taken');
    await writeFile(target, 'kept');
    const before = await openFds();
    await expect(pipeline(Readable.from([Buffer.from('new')]), new SpoolWriteStream(target, 'wx'))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(target, 'utf8')).toBe('kept');
    expect(await openFds()).toBe(before);
  });

  it("SpoolWriteStream with 'overwrite' rewrites a reused file in place and cuts it to what it wrote", async () => {
    const target = path.join(dir, 'spare');
    await writeFile(target, 'an older and longer content');
    const ino = (await stat(target)).ino;
    await pipeline(Readable.from([Buffer.from('sh'), Buffer.from('ort')]), new SpoolWriteStream(target, 'overwrite'));
    expect(await readFile(target, 'utf8')).toBe('short');
    expect((await stat(target)).ino).toBe(ino);
    // Longer than before: it grows.
    await pipeline(Readable.from([Buffer.from('a newer content, longer than the short one')]), new SpoolWriteStream(target, 'overwrite'));
    expect(await readFile(target, 'utf8')).toBe('a newer content, longer than the short one');
  });

  it("SpoolWriteStream with 'overwrite' does not create a file that is not there", async () => {
    await expect(pipeline(Readable.from([Buffer.from('x')]), new SpoolWriteStream(path.join(dir, 'absent'), 'overwrite'))).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });

  it('SpoolWriteStream closes its descriptor when the source fails midway', async () => {
    const target = path.join(dir, 'partial');
    const before = await openFds();
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(1000);
      throw new Error('client went away');
    }
    const out = new SpoolWriteStream(target, 'wx');
    const closed = new Promise((resolve) => out.once('close', resolve));
    await expect(pipeline(failing(), out)).rejects.toThrow('client went away');
    await closed;
    expect(await openFds()).toBe(before);
  });

  it("FileWriter writes its pieces, cuts a reused ('overwrite') file to them, and closes; abort after finish is harmless", async () => {
    const target = path.join(dir, 'reused');
    await writeFile(target, randomBytes(64 * 1024));
    const before = await openFds();
    const w = await FileWriter.open(target, 'overwrite');
    w.write(Buffer.from('hello '));
    w.write(Buffer.from('world'));
    expect(w.bytes).toBe(11);
    await w.finish();
    w.abort();
    expect(await readFile(target, 'utf8')).toBe('hello world');
    expect(await openFds()).toBe(before);
    await expect(FileWriter.open(target, 'wx')).rejects.toMatchObject({ code: 'EEXIST' });
  });

  it("FileWriter opens a reused ('overwrite') file without libuv's pool: it opens while every pool thread is busy", async () => {
    const target = path.join(dir, 'reused');
    await writeFile(target, randomBytes(1024));
    // Each pool thread blocked in open(2) of a FIFO until a writer opens it.
    const fifos = Array.from({ length: Number(process.env['UV_THREADPOOL_SIZE'] ?? 4) }, (_, i) => path.join(dir, `fifo-${i}`));
    for (const f of fifos) execFileSync('mkfifo', [f]);
    const readers = fifos.map((f) => open(f, 'r'));
    try {
      // A file opened on the calling thread is there before the next turn of the event loop.
      const opened = await Promise.race([FileWriter.open(target, 'overwrite'), new Promise<'blocked'>((resolve) => setImmediate(() => resolve('blocked')))]);
      expect(opened).toBeInstanceOf(FileWriter);
      if (opened instanceof FileWriter) opened.abort();
    } finally {
      const writers = fifos.map((f) => openSync(f, 'w'));
      for (const r of await Promise.all(readers)) await r.close();
      for (const w of writers) closeSync(w);
    }
  });

  it('Base64FileSink decodes into its file, fsyncs at close, and abort after close is harmless', async () => {
    const data = randomBytes(300 * 1024 + 1);
    const target = path.join(dir, 'signed');
    const before = await openFds();
    const sink = await Base64FileSink.open(target);
    const text = Buffer.from(data.toString('base64'));
    for (let i = 0; i < text.length; i += 7000) await sink.push(text.subarray(i, i + 7000));
    const decoded = await sink.finish();
    await sink.close({ sync: true });
    await sink.abort();
    expect(decoded.size).toBe(data.length);
    expect((await readFile(target)).equals(data)).toBe(true);
    expect(await openFds()).toBe(before);
  });

  it('Base64FileSink over a longer reused file leaves exactly the decoded bytes', async () => {
    const target = path.join(dir, 'reused');
    await writeFile(target, randomBytes(500 * 1024));
    const data = randomBytes(200 * 1024 + 2);
    const sink = await Base64FileSink.open(target, 'overwrite');
    await sink.push(Buffer.from(data.toString('base64')));
    const decoded = await sink.finish();
    await sink.close({ sync: true });
    expect(decoded.size).toBe(data.length);
    expect((await readFile(target)).equals(data)).toBe(true);
  });

  it('pipeInto resolves once the file is written, hashed, fsynced and closed', async () => {
    const data = randomBytes(700 * 1024 + 3);
    const target = path.join(dir, 'piped');
    const before = await openFds();
    const out = new SpoolWriteStream(target, 'wx', { sha256: true });
    await pipeInto(Readable.from([data.subarray(0, 65536), data.subarray(65536)]), out);
    expect(out.bytes).toBe(data.length);
    expect(out.digest()).toBe(createHash('sha256').update(data).digest('hex'));
    expect((await readFile(target)).equals(data)).toBe(true);
    expect(await openFds()).toBe(before);
  });

  it('pipeInto rejects and closes the file when the source fails, or closes before its end', async () => {
    const before = await openFds();
    const failing = new PassThrough();
    const p1 = pipeInto(failing, new SpoolWriteStream(path.join(dir, 'a'), 'wx'));
    failing.write(Buffer.alloc(1000));
    failing.destroy(new Error('client went away'));
    await expect(p1).rejects.toThrow('client went away');

    const cut = new PassThrough();
    const p2 = pipeInto(cut, new SpoolWriteStream(path.join(dir, 'b'), 'wx'));
    cut.write(Buffer.alloc(1000));
    cut.destroy();
    await expect(p2).rejects.toThrow(/closed before its end/);

    // A destination that fails (here: the file exists already) rejects too.
    await writeFile(path.join(dir, 'c'), 'kept');
    await expect(pipeInto(Readable.from([Buffer.from('x')]), new SpoolWriteStream(path.join(dir, 'c'), 'wx'))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await openFds()).toBe(before);
  });
});
