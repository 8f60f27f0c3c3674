/**
 * read-operation.lua's revisions: the api keeps status answers while an operation's record stays
 * at the same revision (api/read/status-answers.ts), so every Lua script that changes a record must
 * count its `rev` up, or a read would show an older state. Each script that writes a hash is listed
 * here as changing an operation record (and then must count the revision) or as writing other
 * hashes only; a new script that writes one fails until it is listed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const LUA = new URL('../../../../shared/lua/', import.meta.url);
/** Scripts (and includes) that change an operation record; create.lua writes a new one (no revision until committed). */
const RECORD_WRITERS = ['accepted.lua', 'cancel.lua', 'retry.lua', 'includes/apply.lua', 'includes/settle.lua'];
/** Scripts that write other hashes only, or delete a whole record (a missing record is never kept). */
const OTHERS = ['create.lua', 'abandon.lua', 'fair-share.lua', 'includes/backlog.lua', 'includes/window.lua', 'upload-limits.lua'];
const HASH_WRITE = /redis\.call\('(HSET|HDEL|HINCRBY|HSETNX|HMSET|HINCRBYFLOAT)'/;

const scripts = (): string[] =>
  readdirSync(LUA, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.lua'))
    .map((f) => f.replaceAll('\\', '/'));

describe('operation record revisions', () => {
  it('every script that changes an operation record counts its revision', () => {
    for (const f of RECORD_WRITERS) expect(readFileSync(new URL(f, LUA), 'utf8'), f).toMatch(/redis\.call\('HINCRBY', [A-Za-z[\]0-9]+, 'rev', 1\)/);
  });

  it('every script that writes a hash is listed', () => {
    const writers = scripts().filter((f) => HASH_WRITE.test(readFileSync(new URL(f, LUA), 'utf8')));
    for (const f of writers) expect([...RECORD_WRITERS, ...OTHERS], `${f} writes a hash: list it in this test`).toContain(f);
  });
});
