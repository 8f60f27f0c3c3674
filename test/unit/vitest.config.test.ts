/**
 * The test layout vitest.config.ts relies on: every test file belongs to exactly one project, a
 * unit test sits at test/unit/<path of what it tests>.test.ts, and unit tests start no servers.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

/** Every *.test.ts under test/, relative to the repository root. */
const testFiles = (dir = 'test'): string[] =>
  readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : testFiles(rel);
    return e.name.endsWith('.test.ts') ? [rel] : [];
  });

const isUnit = (f: string): boolean => f.startsWith('test/unit/') && !f.endsWith('.e2e.test.ts');
const isE2e = (f: string): boolean => /^test\/[^/]+\.e2e\.test\.ts$/.test(f);

describe('test layout', () => {
  const files = testFiles();

  it('puts every test file in the unit or the e2e project', () => {
    expect(files.length).toBeGreaterThan(10);
    expect(files.filter((f) => !isUnit(f) && !isE2e(f))).toEqual([]);
  });

  it('names each unit test after the file it tests (test/unit/<path>.test.ts for <path>.<ext>)', () => {
    const orphans = files.filter(isUnit).filter((f) => {
      const subject = f.slice('test/unit/'.length, -'.test.ts'.length);
      const dir = path.join(root, path.dirname(subject));
      const base = path.basename(subject);
      return !readdirSync(dir).some((n) => (n === base || n.startsWith(`${base}.`)) && !n.endsWith('.test.ts'));
    });
    expect(orphans).toEqual([]);
  });

  it('keeps unit tests free of the harness that starts servers and Redis', () => {
    // A type-only import is erased when compiled: it starts nothing.
    const starting = files
      .filter(isUnit)
      .filter((f) => /^import (?!type )[^;]*from '[./]*harness\/(stack|processes|redis)\.js'/m.test(readFileSync(path.join(root, f), 'utf8')));
    expect(starting).toEqual([]);
  });
});
