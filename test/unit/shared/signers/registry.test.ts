/**
 * SignerRegistry (unit): a reload swaps the identities only when the whole file is valid; a bad
 * file keeps the running configuration, logs one line at error and counts a failure; listeners
 * hear which identities changed (a rotated secret counts as a change); reloads never leak a secret.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { beforeEach, describe, expect, it } from 'vitest';
import { eventually } from '../../../harness/client.js';
import { loadConfig } from '@signspool/shared/config';
import { createLogger } from '@signspool/shared/logger';
import { createMetrics } from '@signspool/shared/metrics';
import { SignerRegistry } from '@signspool/shared/signers/registry';

let dir: string;
let file: string;

const writeSigners = async (names: string[], extra = ''): Promise<void> => {
  const signers = names.map(
    (n) =>
      `  ${n}:\n    kind: signstash\n    url: https://proxy.example/ws\n    authUrl: https://auth.example/oauth2\n    clientId: ${n}\n    clientSecretFile: ${path.join(dir, `${n}.secret`)}\n`,
  );
  await writeFile(file, `signers:\n${signers.join('')}${extra}tenants:\n  '*': { signers: [${names[0] ?? ''}] }\n`);
};

const setup = (env: Record<string, string> = {}) => {
  const out = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  out.on('data', (chunk: Buffer) => {
    for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  const logger = createLogger({ level: 'info' }, out);
  const metrics = createMetrics({ defaultMetrics: false });
  const registry = new SignerRegistry({ config: loadConfig({ SIGNERS_FILE: file, ...env }), logger, metrics });
  const metric = async (name: string): Promise<string> =>
    (await metrics.registry.getSingleMetricAsString(name))
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
  return { registry, lines, metric, flush: () => new Promise<void>((r) => logger.flush(() => setImmediate(r))) };
};

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signers-reg-'));
  file = path.join(dir, 'signers.yaml');
  for (const n of ['a', 'b', 'c']) await writeFile(path.join(dir, `${n}.secret`), `secret-${n}-old`);
  await writeSigners(['a', 'b']);
});

describe('SignerRegistry', () => {
  it('reloads: reports identities added, removed and changed (a rotated secret), and tells listeners', async () => {
    const { registry, metric } = setup();
    const heard: string[][] = [];
    registry.onChange((next, previous, changed) => heard.push([...changed, `${previous.names().join(',')}->${next.names().join(',')}`]));
    expect(await registry.reload()).toEqual({ ok: true, changed: [], tenantsChanged: false });
    expect(heard).toEqual([]);

    await writeFile(path.join(dir, 'b.secret'), 'secret-b-new');
    await writeSigners(['a', 'b', 'c']);
    expect(await registry.reload()).toEqual({ ok: true, changed: ['b', 'c'], tenantsChanged: false });
    const b = registry.identities.get('b');
    expect(b?.kind === 'signstash' && b.signstash.clientSecret).toBe('secret-b-new');

    await writeSigners(['c', 'b']);
    expect(await registry.reload()).toEqual({ ok: true, changed: ['a'], tenantsChanged: true });
    expect(registry.identities.names()).toEqual(['b', 'c']);
    expect(heard).toEqual([
      ['b', 'c', 'a,b->a,b,c'],
      ['a', 'a,b,c->b,c'],
    ]);
    expect(await metric('signspool_config_reload_total')).toContain('signspool_config_reload_total{config="signers",outcome="success"} 3');
  });

  it('keeps the running configuration when the file is broken, says why in one log line and the metrics', async () => {
    const { registry, lines, metric, flush } = setup();
    const before = registry.identities;
    const t0 = await metric('signspool_config_last_reload_success_timestamp_seconds');
    expect(await metric('signspool_config_last_reload_successful')).toBe('signspool_config_last_reload_successful{config="signers"} 1');

    await writeFile(path.join(dir, 'a.secret'), 'secret-a-NEW');
    await writeSigners(['a', 'b'], '  broken:\n    kind: local\n');
    const result = await registry.reload();
    expect(result).toEqual({ ok: false, error: expect.stringMatching(new RegExp(`^SIGNERS_FILE ${file}: signers.broken.keyFile: `)) as unknown });
    expect(registry.identities).toBe(before);
    const a = registry.identities.get('a');
    expect(a?.kind === 'signstash' && a.signstash.clientSecret).toBe('secret-a-old');
    expect(await metric('signspool_config_reload_total')).toContain('signspool_config_reload_total{config="signers",outcome="failure"} 1');
    expect(await metric('signspool_config_last_reload_successful')).toBe('signspool_config_last_reload_successful{config="signers"} 0');
    expect(await metric('signspool_config_last_reload_success_timestamp_seconds')).toBe(t0);

    await flush();
    const errors = lines.filter((l) => l['level'] === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: 'signing identities not reloaded: keeping the running configuration', reason: result.ok ? '' : result.error });

    // Fixed: the next reload takes it, and the gauge says so.
    await writeSigners(['a', 'b']);
    expect(await registry.reload()).toEqual({ ok: true, changed: ['a'], tenantsChanged: false });
    expect(await metric('signspool_config_last_reload_successful')).toBe('signspool_config_last_reload_successful{config="signers"} 1');
    await flush();
    expect(JSON.stringify(lines)).not.toMatch(/secret-a-/);
  });

  it('serialises concurrent reloads and survives a failing listener', async () => {
    const { registry } = setup();
    registry.onChange(() => {
      throw new Error('listener broke');
    });
    const seen: string[] = [];
    registry.onChange((next) => seen.push(next.names().join(',')));
    await writeSigners(['a', 'b', 'c']);
    const [r1, r2] = await Promise.all([registry.reload(), registry.reload()]);
    expect(r1).toEqual({ ok: true, changed: ['c'], tenantsChanged: false });
    expect(r2).toEqual({ ok: true, changed: [], tenantsChanged: false });
    expect(seen).toEqual(['a,b,c']);
    await registry.stop();
    await registry.stop();
  });

  it('without SIGNERS_FILE: the environment identity, and a reload changes nothing', async () => {
    const registry = new SignerRegistry({ config: loadConfig({}), logger: createLogger({ level: 'silent' }) });
    expect(registry.identities.names()).toEqual(['default']);
    expect(await registry.reload()).toEqual({ ok: true, changed: [], tenantsChanged: false });
  });

  it('with SIGNERS_FILE_WATCH, reloads by itself when the file or a secret file it names changes', async () => {
    const { registry } = setup({ SIGNERS_FILE_WATCH: 'true' });
    const heard: string[][] = [];
    registry.onChange((_next, _previous, changed) => heard.push([...changed]));
    await registry.start();
    try {
      await writeFile(path.join(dir, 'a.secret'), 'secret-a-rotated');
      await eventually('the rotated secret taken', () => heard.length === 1);
      expect(heard).toEqual([['a']]);
      const a = registry.identities.get('a');
      expect(a?.kind === 'signstash' && a.signstash.clientSecret).toBe('secret-a-rotated');
      await writeSigners(['a', 'b', 'c']);
      await eventually('the new identity taken', () => registry.identities.get('c') !== undefined);
    } finally {
      await registry.stop();
    }
    // Stopped: changes are no longer followed.
    await writeSigners(['a']);
    expect(await registry.reload()).toEqual({ ok: true, changed: ['b', 'c'], tenantsChanged: false });
  });
});
