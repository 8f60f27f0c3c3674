/** The streaming JSON reader and base64 helpers (unit): paths, chunk boundaries, escapes, errors. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Base64Decoder, base64Encode } from '@signspool/worker/streams/base64-stream';
import { JsonStreamReader, type JsonPath } from '@signspool/worker/streams/json-stream';

const feed = async (json: string, chunkSize: number, stream: (p: JsonPath) => boolean) => {
  const values: [string, unknown][] = [];
  const streamed = new Map<string, string>();
  const objects: string[] = [];
  const reader = new JsonStreamReader({
    streamString: stream,
    onStringChunk: (p, c) => void streamed.set(p.join('.'), (streamed.get(p.join('.')) ?? '') + c.toString()),
    onValue: (p, v) => void values.push([p.join('.'), v]),
    onObjectEnd: (p) => void objects.push(p.join('.')),
  });
  const buf = Buffer.from(json);
  for (let i = 0; i < buf.length; i += chunkSize) await reader.write(buf.subarray(i, i + chunkSize));
  await reader.end();
  return { values, streamed, objects };
};

describe('JsonStreamReader', () => {
  const doc = {
    documentList: [
      { externalReference: 'd1', name: 'a "quoted" \\ name \u00e9 \u2603', signedContent: 'QUJD' },
      { signedContent: 'REVG', externalReference: 'd2', n: -1.5e3, t: true, f: false, z: null, arr: [1, [2, {}]] },
    ],
  };
  const json = JSON.stringify(doc, null, 1);

  it.each([1, 2, 3, 7, 64, 100_000])('gives the same result for chunks of %i bytes', async (size) => {
    const r = await feed(json, size, (p) => p.at(-1) === 'signedContent');
    expect(r.streamed).toEqual(
      new Map([
        ['documentList.0.signedContent', 'QUJD'],
        ['documentList.1.signedContent', 'REVG'],
      ]),
    );
    expect(r.values).toEqual([
      ['documentList.0.externalReference', 'd1'],
      ['documentList.0.name', 'a "quoted" \\ name \u00e9 \u2603'],
      ['documentList.1.externalReference', 'd2'],
      ['documentList.1.n', -1500],
      ['documentList.1.t', true],
      ['documentList.1.f', false],
      ['documentList.1.z', null],
      ['documentList.1.arr.0', 1],
      ['documentList.1.arr.1.0', 2],
    ]);
    expect(r.objects).toEqual(['documentList.0', 'documentList.1.arr.1.1', 'documentList.1', '']);
  });

  it.each(['{"a":', '{"a" 1}', '[1,,2]', '{"a":1}}', 'tru', '{"a":"x\\q"}', '[1 2]'])('rejects malformed JSON %s', async (bad) => {
    await expect(feed(bad, 3, () => false)).rejects.toThrow();
  });

  it('bounds collected strings', async () => {
    const reader = new JsonStreamReader({}, 10);
    await expect(reader.write(Buffer.from('{"a":"01234567890"}'))).rejects.toThrow(/exceeds 10 bytes/);
  });
});

describe('base64 streaming', () => {
  it('round-trips random data across arbitrary chunking', async () => {
    const data = randomBytes(100_003);
    async function* chunks(sizes: number[]) {
      let at = 0;
      for (let i = 0; at < data.length; i++) {
        const n = sizes[i % sizes.length] ?? 1;
        yield data.subarray(at, at + n);
        at += n;
      }
    }
    const encoded: Buffer[] = [];
    for await (const c of base64Encode(chunks([1, 5, 4096, 7, 65_536]))) encoded.push(c);
    const text = Buffer.concat(encoded).toString('latin1');
    expect(text).toBe(data.toString('base64'));
    const dec = new Base64Decoder();
    const out: Buffer[] = [];
    // Decoded bytes are views of a shared buffer: a consumer that keeps them copies them.
    const keep = (b: Buffer): void => void out.push(Buffer.from(b));
    for (let i = 0; i < text.length; i += 1001) dec.push(text.slice(i, i + 1001), keep);
    dec.end(keep);
    expect(Buffer.concat(out).equals(data)).toBe(true);
  });

  it('decodes chunks of 1 to 5 characters, whitespace anywhere, and unpadded endings', () => {
    for (const size of [0, 1, 2, 3, 4, 5, 1000, 1001, 1002]) {
      const data = randomBytes(size);
      const b64 = data.toString('base64');
      for (const step of [1, 2, 3, 5]) {
        for (const text of [b64, b64.replace(/=+$/, ''), b64.replace(/(.{7})/g, '$1\r\n ')]) {
          const dec = new Base64Decoder();
          const out: Buffer[] = [];
          const keep = (b: Buffer): void => void out.push(Buffer.from(b));
          for (let i = 0; i < text.length; i += step) dec.push(Buffer.from(text.slice(i, i + step)), keep);
          dec.end(keep);
          expect(Buffer.concat(out).equals(data), `size ${size}, step ${step}`).toBe(true);
        }
      }
    }
    const dec = new Base64Decoder();
    dec.push('QUJD' + 'R', () => undefined);
    expect(() => dec.end(() => undefined)).toThrow(/truncated/);
  });

  it('encodes and decodes large chunks piecewise (no base64 string above V8 large-object size)', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 2);
    async function* big() {
      yield data.subarray(0, 1_000_000);
      yield data.subarray(1_000_000);
    }
    const encoded: Buffer[] = [];
    for await (const c of base64Encode(big())) encoded.push(c);
    expect(Math.max(...encoded.map((c) => c.length))).toBeLessThanOrEqual(64 * 1024);
    const text = Buffer.concat(encoded);
    expect(text.toString('latin1')).toBe(data.toString('base64'));
    const dec = new Base64Decoder();
    const out: Buffer[] = [];
    const keep = (b: Buffer): void => {
      expect(b.length).toBeLessThanOrEqual(48 * 1024);
      out.push(Buffer.from(b));
    };
    dec.push(text.subarray(0, 700_001), keep);
    dec.push(text.subarray(700_001), keep);
    dec.end(keep);
    expect(Buffer.concat(out).equals(data)).toBe(true);
  });
});
