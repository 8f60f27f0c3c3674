/**
 * ApiKeys.reload (api/auth/api-keys.ts): a valid file is taken whole (a revoked key is refused at
 * once, even one matched before), a bad, empty or missing one keeps the running keys and says why
 * in one log line and the metrics, and keys set inline in API_KEYS stay as they are.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiKeys, type ApiKeySource } from '@signspool/api/auth/api-keys';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { parseApiKeyList } from '@signspool/shared/api-key';
import { createLogger } from '@signspool/shared/logger';
import { createMetrics } from '@signspool/shared/metrics';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'api-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const [oldKey, newKey] = [generateApiKey(), generateApiKey()];
const entry = (name: string, key: string, scopes = ''): string => `acme/${name}:${hashApiKey(key)}${scopes}`;

const setup = (source: ApiKeySource, initial: string) => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }),
  );
  const metrics = createMetrics({ defaultMetrics: false });
  const entries = parseApiKeyList(initial);
  if (typeof entries === 'string') throw new Error(entries);
  const keys = new ApiKeys(entries, { source, logger, metrics });
  const metric = async (name: string): Promise<string[]> =>
    (await metrics.registry.getSingleMetricAsString(name)).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  return { keys, lines, metric };
};

describe('ApiKeys.reload', () => {
  it('takes a valid API_KEYS_FILE whole: a revoked key is refused at once, even one matched before; scopes change', async () => {
    const file = path.join(dir, 'keys');
    await writeFile(file, entry('old', oldKey));
    const { keys, lines, metric } = setup({ kind: 'file', path: file, syntax: 'API_KEYS_FILE' }, entry('old', oldKey));
    expect(keys.lookup(oldKey)?.name).toBe('old');
    expect(keys.lookup(newKey)).toBeUndefined();

    await writeFile(file, `${entry('old', oldKey, ':operations:read')},\n${entry('new', newKey)}\n`);
    expect(keys.reload('signal')).toEqual({ ok: true, added: ['acme/new'], removed: [], changed: ['acme/old'] });
    expect(keys.lookup(oldKey)?.scopes).toEqual(['operations:read']);
    expect(keys.lookup(newKey)?.name).toBe('new');

    await writeFile(file, entry('new', newKey));
    expect(keys.reload('signal')).toEqual({ ok: true, added: [], removed: ['acme/old'], changed: [] });
    expect(keys.lookup(oldKey)).toBeUndefined();
    expect(keys.lookup(newKey)?.name).toBe('new');
    expect(await metric('signspool_config_reload_total')).toContain('signspool_config_reload_total{config="api_keys",outcome="success"} 2');
    expect(lines.filter((l) => l['msg'] === 'API keys reloaded')).toHaveLength(2);
    // Names, never hashes or keys.
    expect(JSON.stringify(lines)).not.toContain(hashApiKey(oldKey));
  });

  it.each([
    ['a malformed entry', (f: string) => writeFile(f, `${entry('new', newKey)},acme/x:nothex`), /: entries must be tenant/],
    ['a duplicate', (f: string) => writeFile(f, `${entry('a', newKey)},${entry('b', newKey)}`), /: the same key hash is listed twice/],
    ['an empty file', (f: string) => writeFile(f, '\n'), /: lists no key \(every client would be refused\)/],
    ['a missing file', (f: string) => rm(f), /: cannot read it \(ENOENT\)/],
  ])('keeps the running keys on %s, with one error line and the metrics saying so', async (_what, breakFile, reason) => {
    const file = path.join(dir, 'keys');
    await writeFile(file, entry('old', oldKey));
    const { keys, lines, metric } = setup({ kind: 'file', path: file, syntax: 'API_KEYS_FILE' }, entry('old', oldKey));
    const t0 = await metric('signspool_config_last_reload_success_timestamp_seconds');
    await breakFile(file);
    const result = keys.reload('signal');
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.error).toMatch(reason);
    expect(result.ok ? '' : result.error).toContain(file);
    expect(keys.lookup(oldKey)?.name).toBe('old');
    expect(keys.lookup(newKey)).toBeUndefined();
    const errors = lines.filter((l) => l['level'] === 50);
    expect(errors).toMatchObject([{ msg: 'API keys not reloaded: keeping the running keys', trigger: 'signal' }]);
    expect(await metric('signspool_config_last_reload_successful')).toEqual(['signspool_config_last_reload_successful{config="api_keys"} 0']);
    expect(await metric('signspool_config_reload_total')).toContain('signspool_config_reload_total{config="api_keys",outcome="failure"} 1');
    expect(await metric('signspool_config_last_reload_success_timestamp_seconds')).toEqual(t0);
  });

  it("reads the data directory's file with its comments, a key per line", async () => {
    const file = path.join(dir, 'api-keys');
    const { keys } = setup({ kind: 'file', path: file, syntax: 'data-dir' }, entry('old', oldKey));
    await writeFile(file, `# tenant[/name]:sha256(api key)[:scopes]\n${entry('new', newKey)}\n\n${entry('old', oldKey)}\n`);
    expect(keys.reload()).toEqual({ ok: true, added: ['acme/new'], removed: [], changed: [] });
    await writeFile(file, `${entry('new', newKey)} ${entry('old', oldKey)}\n`);
    expect(keys.reload()).toMatchObject({ ok: false, error: expect.stringContaining(`${file}: malformed line`) as unknown });
    expect(keys.lookup(newKey)?.name).toBe('new');
  });

  it('leaves keys set inline in API_KEYS as they are, saying a restart changes them', () => {
    const { keys, lines } = setup({ kind: 'environment' }, entry('old', oldKey));
    expect(keys.reload('signal')).toEqual({ ok: true, added: [], removed: [], changed: [] });
    expect(keys.lookup(oldKey)?.name).toBe('old');
    expect(lines).toMatchObject([{ level: 30, msg: expect.stringContaining('only a restart changes') as unknown }]);
  });
});
