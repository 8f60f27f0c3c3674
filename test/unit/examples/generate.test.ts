/** The sample documents in examples/ are what examples/generate.mjs writes, and small enough to keep in git. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without types (run by node, no build step)
import { examples } from '../../../examples/generate.mjs';

const dir = path.resolve(import.meta.dirname, '../../../examples');
const samples = (examples as () => { name: string; bytes: Buffer }[])();

describe('examples/', () => {
  it('holds exactly what generate.mjs writes (run `node examples/generate.mjs` after changing it)', () => {
    for (const { name, bytes } of samples) expect(readFileSync(path.join(dir, name)).equals(bytes), name).toBe(true);
  });

  it('has a small PDF, an XML invoice and a larger PDF, under 1 MB together', () => {
    const size = (n: string): number => samples.find((s) => s.name === n)?.bytes.length ?? 0;
    expect(size('invoice.pdf')).toBeGreaterThan(500);
    expect(size('invoice.xml')).toBeGreaterThan(500);
    expect(size('big.pdf')).toBeGreaterThan(100 * size('invoice.pdf'));
    expect(samples.reduce((n, s) => n + s.bytes.length, 0)).toBeLessThan(1_000_000);
  });

  it('writes PDFs whose cross-reference table points at each object', () => {
    for (const name of ['invoice.pdf', 'big.pdf']) {
      const text = samples.find((s) => s.name === name)?.bytes.toString('latin1') ?? '';
      const xref = Number(/startxref\n(\d+)\n%%EOF\n$/.exec(text)?.[1]);
      expect(text.slice(xref, xref + 4)).toBe('xref');
      const offsets = [...text.slice(xref).matchAll(/^(\d{10}) 00000 n $/gm)].map((m) => Number(m[1]));
      offsets.forEach((o, i) => expect(text.slice(o).startsWith(`${i + 1} 0 obj`)).toBe(true));
    }
  });
});
