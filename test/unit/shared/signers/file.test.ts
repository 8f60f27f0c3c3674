/**
 * SIGNERS_FILE (unit): the identities and tenants it defines, defaults from the environment, and
 * its refusals — each one line naming the file, the identity or tenant and the field, never a secret.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@signspool/shared/config';
import { loadSignersFile, identityDefaults, SignersFileError } from '@signspool/shared/signers/file';
import { SigningIdentities } from '@signspool/shared/signers/identities';
import { captureLogs } from '../../../harness/log-capture.js';

const SECRET = 'hunter2-very-secret';
const P12_PASSWORD = 'p12-password-very-secret';
let dir: string;

const write = async (name: string, text: string): Promise<string> => {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
};

type Json = Record<string, unknown>;
const DELETE = Symbol('delete');
/** A change to the valid file: a dotted path and its new value (DELETE removes it). */
type Patch = [path: string, value: unknown];

const apply = (root: Json, [where, value]: Patch): void => {
  const keys = where.split('.');
  const last = keys.pop() ?? '';
  const parent = keys.reduce<Json>((o, k) => o[k] as Json, root);
  if (value === DELETE) delete parent[last];
  else parent[last] = typeof value === 'function' ? (value as (r: Json) => unknown)(root) : value;
};

/** A valid file with a Sign'Stash and a local identity, changed by `patch`, written as JSON (valid YAML). */
const signersFile = async (patch?: Patch): Promise<string> => {
  const f: Json = {
    signers: {
      'acme-pt': {
        kind: 'signstash',
        url: 'https://proxy-a.example/signstash/einvoice-integration-client-ws/',
        authUrl: 'https://auth.example/oauth2/authorization-server',
        clientId: 'acme-pt',
        clientSecretFile: path.join(dir, 'acme-secret'),
        signature: { reason: 'Invoice', location: 'Lisbon', applyTimestamp: true },
        limits: { upstreamConcurrency: 2, batchMaxDocs: 20, batchMaxBytes: '10MiB' },
      },
      'globex-dev': { kind: 'local', keyFile: path.join(dir, 'g.key'), certFile: path.join(dir, 'g.crt') },
    },
    tenants: {
      acme: { signers: ['acme-pt'] },
      globex: { signers: ['globex-dev', 'acme-pt'], default: 'globex-dev' },
    },
  };
  if (patch) apply(f, patch);
  return write(`signers-${Math.random().toString(36).slice(2)}.json`, JSON.stringify(f));
};

const errorOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '(no error)';
};

const defaults = identityDefaults(loadConfig({}));
const load = (file: string): SigningIdentities => loadSignersFile(file, defaults);

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signers-'));
  await write('acme-secret', `${SECRET}\n`);
  await write('g.key', 'key');
  await write('g.crt', 'cert');
  await write('empty', '\n');
  await write('p12.pass', `${P12_PASSWORD}\n`);
});

/** globex-dev as a PKCS#12 identity with a password file. */
const p12Patch = (): Patch => ['signers.globex-dev', { kind: 'local', p12File: path.join(dir, 'g.key'), p12PasswordFile: path.join(dir, 'p12.pass') }];

describe('SIGNERS_FILE', () => {
  it('defines identities with their settings, defaults and tenants', async () => {
    const ids = load(await signersFile());
    expect(ids.names()).toEqual(['acme-pt', 'globex-dev']);
    const acme = ids.get('acme-pt');
    expect(acme?.kind).toBe('signstash');
    if (acme?.kind !== 'signstash') throw new Error('unreachable');
    expect(acme.signstash).toMatchObject({
      url: 'https://proxy-a.example/signstash/einvoice-integration-client-ws',
      clientId: 'acme-pt',
      clientSecret: SECRET,
      reason: 'Invoice',
      location: 'Lisbon',
      applyTimestamp: true,
      // Not in the file: the environment's values.
      tokenSkewMs: 60_000,
      headersTimeoutMs: 120_000,
    });
    expect(acme.signature).toEqual({ type: 'PAdES', reason: 'Invoice', location: 'Lisbon', applyTimestamp: true });
    expect(acme.limits).toEqual({ upstreamConcurrency: 2, batchMaxDocs: 20, batchMaxBytes: 10 * 1024 * 1024 });
    const globex = ids.get('globex-dev');
    expect(globex?.signature.type).toBe('CAdES');
    expect(globex?.limits).toEqual({ upstreamConcurrency: 4, batchMaxDocs: 50, batchMaxBytes: 128 * 1024 * 1024 });
    expect(ids.forTenant('acme')).toEqual({ allowed: ['acme-pt'], default: 'acme-pt' });
    expect(ids.forTenant('globex')).toEqual({ allowed: ['globex-dev', 'acme-pt'], default: 'globex-dev' });
    // No '*' entry: an unlisted tenant has no identity.
    expect(ids.forTenant('initech')).toBeUndefined();
    expect(ids.tenantsOf('acme-pt')).toEqual(['acme', 'globex']);
  });

  it("gives unlisted tenants the '*' entry, and reads YAML", async () => {
    const file = await write(
      'signers.yaml',
      [
        'signers:',
        '  shared:',
        '    kind: local',
        `    keyFile: ${path.join(dir, 'g.key')}`,
        `    certFile: ${path.join(dir, 'g.crt')}`,
        'tenants:',
        "  '*': { signers: [shared] }",
      ].join('\n'),
    );
    const ids = load(file);
    expect(ids.forTenant('anyone')).toEqual({ allowed: ['shared'], default: 'shared' });
  });

  it('never shows a secret in its public view, nor in a log line of a whole identity', async () => {
    const ids = load(await signersFile(p12Patch()));
    const { lines, logger } = captureLogs();
    logger.info({ identity: ids.get('acme-pt'), other: ids.get('globex-dev') }, 'identities');
    logger.info({ acme: ids.get('acme-pt') }, 'one');
    expect(JSON.stringify(lines)).toContain('acme-pt');
    expect(JSON.stringify(lines)).not.toContain(SECRET);
    expect(JSON.stringify(lines)).not.toContain(P12_PASSWORD);
    const view = load(await signersFile()).publicView();
    expect(JSON.stringify(view)).not.toContain(SECRET);
    expect(view.signers['acme-pt']).toMatchObject({ kind: 'signstash', clientId: 'acme-pt', tenants: ['acme', 'globex'] });
    expect(view.signers['globex-dev']).toMatchObject({ kind: 'local', certFile: path.join(dir, 'g.crt'), tenants: ['globex'] });
  });

  it('refuses each mistake with one line naming the identity or tenant and the field, never a secret', async () => {
    const cases: [Patch, string][] = [
      [['signers.acme-pt.clientSecretFile', path.join(dir, 'missing')], `signers.acme-pt.clientSecretFile: cannot read ${path.join(dir, 'missing')} (ENOENT)`],
      [['signers.acme-pt.clientSecretFile', path.join(dir, 'empty')], `signers.acme-pt.clientSecretFile: ${path.join(dir, 'empty')} is empty`],
      [['signers.acme-pt.clientSecretFile', DELETE], 'signers.acme-pt.clientSecretFile: must be a file path'],
      [['signers.acme-pt.url', 'ftp://x'], 'signers.acme-pt.url: must be an http(s) URL'],
      [['signers.acme-pt.clientSecret', SECRET], 'signers.acme-pt: Unrecognized key'],
      [['signers.acme-pt.kind', 'hsm'], 'signers.acme-pt.kind: kind must be signstash or local'],
      [['signers.acme-pt.limits.batchMaxDocs', 0], 'signers.acme-pt.limits.batchMaxDocs: '],
      [['signers.acme-pt.limits.batchMaxBytes', 'lots'], 'signers.acme-pt.limits.batchMaxBytes: must be a size'],
      [['signers.acme-pt.signature.type', 'JAdES'], 'signers.acme-pt.signature.type: '],
      [['signers.acme-pt.clientCertFile', path.join(dir, 'g.crt')], 'signers.acme-pt.clientKeyFile: clientCertFile and clientKeyFile go together'],
      [['signers.acme-pt.caFile', path.join(dir, 'no-ca.pem')], `signers.acme-pt.caFile: cannot read ${path.join(dir, 'no-ca.pem')} (ENOENT)`],
      [['signers.globex-dev.certFile', DELETE], 'signers.globex-dev.certFile: keyFile and certFile (or p12File) are required'],
      [['signers.globex-dev.p12File', path.join(dir, 'g.key')], 'signers.globex-dev.p12File: set either p12File or keyFile/certFile'],
      [['signers.globex-dev.keyFile', path.join(dir, 'nokey')], `signers.globex-dev.keyFile: cannot read`],
      [['signers.globex-dev.signature', { applyTimestamp: true }], 'signers.globex-dev.signature.applyTimestamp: needs a time-stamp authority'],
      [['signers.Acme PT', (r: Json) => (r['signers'] as Json)['acme-pt']], 'signers.Acme PT: identity name must match'],
      [['tenants.acme.signers', ['nobody']], 'tenants.acme.signers.0: unknown signer nobody'],
      [['tenants.globex.default', 'nobody'], "tenants.globex.default: nobody is not in the tenant's signers"],
      [['tenants.globex.default', DELETE], 'tenants.globex.default: is required when a tenant has several signers'],
      [['tenants.a/b', { signers: ['acme-pt'] }], "tenants.a/b: tenant must be '*' or match"],
      [['tenants.acme.signers', []], 'tenants.acme.signers: must name at least one identity'],
      [['tenants', DELETE], 'tenants: must be a map'],
      [['extra', SECRET], 'file: Unrecognized key'],
    ];
    for (const [patch, expected] of cases) {
      const file = await signersFile(patch);
      const msg = errorOf(() => load(file));
      expect(msg, expected).toContain(`SIGNERS_FILE ${file}: ${expected}`);
      expect(msg.split('\n'), expected).toHaveLength(1);
      expect(msg, expected).not.toContain(SECRET);
    }
  });

  it('reports YAML syntax errors by position only (the line might hold a secret)', async () => {
    const file = await write('broken.yaml', `signers:\n  a: { kind: local, keyFile: "${SECRET}\n`);
    const msg = errorOf(() => load(file));
    expect(msg).toMatch(new RegExp(`^SIGNERS_FILE ${file}: not valid YAML at line \\d+, column \\d+ \\(\\w+\\)$`));
    expect(msg).not.toContain(SECRET);
    expect(errorOf(() => load(path.join(dir, 'nope.yaml')))).toBe(
      `SIGNERS_FILE ${path.join(dir, 'nope.yaml')}: file: cannot read ${path.join(dir, 'nope.yaml')} (ENOENT)`,
    );
    expect(() => load(file)).toThrow(SignersFileError);
  });

  it('stops start: loadConfig refuses a bad SIGNERS_FILE with its one line', async () => {
    const file = await signersFile(['signers.acme-pt.clientSecretFile', path.join(dir, 'missing')]);
    let err: unknown;
    try {
      loadConfig({ SIGNERS_FILE: file });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`SIGNERS_FILE ${file}: signers.acme-pt.clientSecretFile: cannot read ${path.join(dir, 'missing')} (ENOENT)`);
    expect(loadConfig({ SIGNERS_FILE: await signersFile() }).signersFile).toMatch(/signers-.*\.json$/);
  });

  it('without SIGNERS_FILE: one identity `default` from the environment, for every tenant', () => {
    const local = SigningIdentities.fromEnvironment(loadConfig({}));
    expect(local.names()).toEqual(['default']);
    expect(local.get('default')).toMatchObject({ kind: 'local', signature: { type: 'CAdES' }, limits: { upstreamConcurrency: 4, batchMaxDocs: 50 } });
    expect(local.forTenant('anyone')).toEqual({ allowed: ['default'], default: 'default' });
    const env = {
      SIGNER: 'signstash',
      SIGNSTASH_URL: 'https://proxy.example/ws',
      SIGNSTASH_AUTH_URL: 'https://auth.example/oauth2',
      SIGNSTASH_CLIENT_ID: 'alias',
      SIGNSTASH_CLIENT_SECRET: SECRET,
    };
    const stash = SigningIdentities.fromEnvironment(loadConfig(env));
    expect(stash.get('default')).toMatchObject({ kind: 'signstash', signstash: { clientId: 'alias', clientSecret: SECRET }, signature: { type: 'PAdES' } });
    expect(JSON.stringify(stash.publicView())).not.toContain(SECRET);
    expect(stash.publicView()).toMatchObject({ source: 'environment', signers: { default: { clientId: 'alias', tenants: ['*'] } } });
  });
});
