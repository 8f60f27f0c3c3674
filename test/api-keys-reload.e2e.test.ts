/**
 * API keys revoked and added without a restart: a real api process reads API_KEYS_FILE; after the
 * file changes and the process gets SIGHUP, the revoked key is refused (401) on the status read
 * answered below express and on express's routes alike, the new key is served, and the metrics
 * say so. A broken file on SIGHUP keeps the running keys, with one error line saying why.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { auth, eventually, submit } from './harness/client.js';
import { startService, type ServiceProcess } from './harness/processes.js';
import { testPrefix } from './harness/stack.js';

describe('API keys reloaded on SIGHUP', () => {
  let dir: string;
  let keysFile: string;
  let api: ServiceProcess;
  const [oldKey, newKey] = [generateApiKey(), generateApiKey()];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-api-keys-'));
    keysFile = path.join(dir, 'api-keys.env');
    await writeFile(keysFile, `acme/old:${hashApiKey(oldKey)}\n`);
    api = await startService('api', {
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: testPrefix(),
      DATA_DIR: path.join(dir, 'data'),
      API_KEYS_FILE: keysFile,
      SPOOL_MIN_FREE_BYTES: '1MiB',
      RATE_LIMIT_REQUESTS: '0',
      DEFAULT_SIGNATURE_TYPE: 'CAdES',
    });
  });
  afterAll(async () => {
    await api?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The status of a status read (`?` after the path takes express's route instead of the fast path) and of a listing. */
  const answers = async (key: string, opId: string): Promise<number[]> =>
    Promise.all(
      [`/v1/operations/${opId}`, `/v1/operations/${opId}?`, '/v1/operations?limit=1'].map(
        async (p) => (await fetch(`${api.url}${p}`, { headers: auth(key) })).status,
      ),
    );
  const reloadMetric = async (): Promise<string[]> =>
    (await (await fetch(api.metricsUrl)).text())
      .split('\n')
      .filter((l) => /^signspool_config_(reload_total|last_reload_successful)\{config="api_keys"/.test(l));
  const logLines = (msg: string): string[] =>
    api
      .output()
      .split('\n')
      .filter((l) => l.includes(msg));

  it('revokes and adds keys without a restart, and keeps the running keys when the file is broken', async () => {
    const submitted = await submit(api.url, oldKey, [{ name: 'a.bin', content: 'a document' }]);
    expect(submitted.status).toBe(202);
    const opId = submitted.body.id;
    // Served on both paths, and remembered by the fast path (the key's hash is not computed again).
    expect(await answers(oldKey, opId)).toEqual([200, 200, 200]);
    expect(await answers(newKey, opId)).toEqual([401, 401, 401]);

    // The new key added, the old one revoked, in one change of the file.
    await writeFile(keysFile, `acme/new:${hashApiKey(newKey)}\n`);
    api.child.kill('SIGHUP');
    await eventually('the reload logged', () => logLines('API keys reloaded').length === 1, 20_000);
    expect(await answers(oldKey, opId)).toEqual([401, 401, 401]);
    expect(await answers(newKey, opId)).toEqual([200, 200, 200]);
    expect(logLines('API keys reloaded')[0]).toMatch(/"added":\["acme\/new"\],"removed":\["acme\/old"\]/);

    // A broken file: refused as a whole, the running keys stay.
    await writeFile(keysFile, `acme/new:${hashApiKey(newKey)},acme/other:not-a-hash\n`);
    api.child.kill('SIGHUP');
    await eventually('the refusal logged', () => logLines('API keys not reloaded').length === 1, 20_000);
    expect(logLines('API keys not reloaded')[0]).toContain(`${keysFile}: entries must be tenant`);
    expect(await answers(newKey, opId)).toEqual([200, 200, 200]);
    expect(await answers(oldKey, opId)).toEqual([401, 401, 401]);
    expect(await reloadMetric()).toEqual([
      'signspool_config_reload_total{config="api_keys",outcome="success"} 1',
      'signspool_config_reload_total{config="api_keys",outcome="failure"} 1',
      'signspool_config_last_reload_successful{config="api_keys"} 0',
    ]);
    expect(api.output()).not.toContain(hashApiKey(newKey));
  });
});
