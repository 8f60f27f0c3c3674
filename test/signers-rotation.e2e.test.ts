/**
 * Secret rotation without restart (issue 22), with a real worker process: while documents stream
 * in, the client service's secret changes at the fake Sign'Stash and in the identity's secret file,
 * and the worker gets SIGHUP. No document fails; the next batches use the new secret (a new token
 * is fetched with it and nothing is refused). Then a broken file on SIGHUP keeps the running
 * configuration: one error log line, signspool_config_last_reload_successful 0, documents keep signing.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { eventually, submit, waitForTerminal } from './harness/client.js';
import { startService, type ServiceProcess } from './harness/processes.js';
import { startStack, type Stack } from './harness/stack.js';

const fake = useFakeSignstash({ clients: [{ clientId: 'acme-pt', clientSecret: 'secret-2026' }], perRequestMs: 30 });

let dir: string;
let api: Stack;
let worker: ServiceProcess;
let signersFile: string;
let secretFile: string;

const writeSigners = (): Promise<void> =>
  writeFile(
    signersFile,
    [
      'signers:',
      '  acme-pt:',
      '    kind: signstash',
      `    url: ${fake().businessUrl}`,
      `    authUrl: ${fake().authUrl}`,
      '    clientId: acme-pt',
      `    clientSecretFile: ${secretFile}`,
      '    signature: { type: CAdES }',
      'tenants:',
      "  '*': { signers: [acme-pt], default: acme-pt }",
      '',
    ].join('\n'),
  );

const metric = async (name: string): Promise<string> => {
  const text = await (await fetch(`${worker.url}/metrics`)).text();
  return text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`)) ?? '';
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signers-rotation-'));
  signersFile = path.join(dir, 'signers.yaml');
  secretFile = path.join(dir, 'acme-pt.secret');
  await writeFile(secretFile, 'secret-2026\n');
  await writeSigners();
  api = await startStack({ env: { SIGNERS_FILE: signersFile }, worker: false });
  worker = await startService('worker', {
    REDIS_URL: api.config.redisUrl ?? '',
    QUEUE_PREFIX: api.config.queuePrefix,
    DATA_DIR: api.dir,
    SIGNERS_FILE: signersFile,
    BATCH_LINGER: '50ms',
    SPOOL_MIN_FREE_BYTES: '1MiB',
  });
}, 90_000);

afterAll(async () => {
  await worker?.stop();
  await api?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('secret rotation with SIGHUP', () => {
  it('signs every document while the secret is rotated under load, and keeps the configuration when the file breaks', async () => {
    const ops: string[] = [];
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++) {
        const res = await submit(api.apiUrl, api.keys.acme, [
          { name: `r${i}-a.txt`, content: `document ${i} a` },
          { name: `r${i}-b.txt`, content: `document ${i} b` },
        ]);
        expect(res.status).toBe(202);
        ops.push(res.body.id);
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    try {
      await eventually('documents signing under the old secret', () => fake().client('acme-pt').calls >= 10, 30_000);
      const tokensBefore = fake().client('acme-pt').tokenRequests;

      // The rotation: the upstream takes the new secret (tokens already issued stay valid), the file gets it, SIGHUP.
      await fake().setClient('acme-pt', { secret: 'secret-2027' });
      await writeFile(secretFile, 'secret-2027\n');
      worker.child.kill('SIGHUP');
      await eventually('a token fetched with the new secret', () => fake().client('acme-pt').tokenRequests > tokensBefore, 20_000);
      const callsAfterRotation = fake().client('acme-pt').calls;
      await eventually('documents signing under the new secret', () => fake().client('acme-pt').calls >= callsAfterRotation + 10, 30_000);
      expect(worker.output()).toContain('signing identities reloaded');

      // A broken file: the running configuration stays, one error line says why, the metrics say so.
      expect(await metric('signspool_config_last_reload_successful')).toBe('signspool_config_last_reload_successful{config="signers"} 1');
      await writeFile(signersFile, 'signers:\n  acme-pt:\n    kind: signstash\n    url: not a url\n');
      worker.child.kill('SIGHUP');
      await eventually('the failed reload counted', async () => (await metric('signspool_config_last_reload_successful')).endsWith(' 0'), 20_000);
      expect(await metric('signspool_config_reload_total{config="signers",outcome="failure"}')).toBe(
        'signspool_config_reload_total{config="signers",outcome="failure"} 1',
      );
      const errorLines = worker
        .output()
        .split('\n')
        .filter((l) => l.includes('signing identities not reloaded'));
      expect(errorLines).toHaveLength(1);
      expect(errorLines[0]).toContain(`SIGNERS_FILE ${signersFile}: signers.acme-pt.url: must be an http(s) URL`);
      expect(worker.output()).not.toContain('secret-2027');
      const callsAfterBreak = fake().client('acme-pt').calls;
      await eventually('documents still signing after the broken reload', () => fake().client('acme-pt').calls >= callsAfterBreak + 10, 30_000);
    } finally {
      loading = false;
      await load;
    }
    const failed: string[] = [];
    for (const id of ops) {
      const done = await waitForTerminal(api.apiUrl, api.keys.acme, id, 60_000);
      for (const d of done.documents) if (d.status !== 'signed') failed.push(`${d.name}: ${d.error?.code ?? d.status}`);
    }
    expect(ops.length).toBeGreaterThan(20);
    expect(failed).toEqual([]);
    expect(fake().client('acme-pt').refused).toBe(0);
  });
});
