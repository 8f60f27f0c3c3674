/**
 * Choosing a signing identity at the api (issue 22): the `signer` field or the tenant's default,
 * refused with 422 (unknown, or not the tenant's) before any document is kept — also while the
 * file part is still arriving; the operation JSON, the listing filter and the metric carry the
 * identity; the identity's signature type applies when the request names none; a reload of the
 * file applies to the next submission; a JWT names the tenant, never its identities. No worker: documents stay queued, so what is kept is exactly
 * what the api wrote.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '@signspool/shared/queue';
import { auth, eventually, submit } from './harness/client.js';
import { issue, makeRoot, SIGNER_EXT } from './harness/pki.js';
import { incomingFiles, rawConnect, uploadHead } from './harness/raw-http.js';
import { startStack, type Stack } from './harness/stack.js';

const signersYaml = (dir: string, a: { key: string; cert: string }, b: { key: string; cert: string }, globex: string[]): string =>
  [
    'signers:',
    '  acme-local:',
    '    kind: local',
    `    keyFile: ${a.key}`,
    `    certFile: ${a.cert}`,
    '  shared-local:',
    '    kind: local',
    `    keyFile: ${b.key}`,
    `    certFile: ${b.cert}`,
    '    signature: { type: XAdES }',
    'tenants:',
    '  acme: { signers: [acme-local, shared-local], default: acme-local }',
    `  globex: { signers: [${globex.join(', ')}], default: shared-local }`,
    `# ${dir}`,
    '',
  ].join('\n');

describe('choosing a signing identity at the api', () => {
  let stack: Stack;
  let dir: string;
  let file: string;
  let queue: Queue;
  let jwks: http.Server;
  let jwt: (claims: Record<string, unknown>) => Promise<string>;
  let certs: { a: { key: string; cert: string }; b: { key: string; cert: string } };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'signers-api-'));
    const root = makeRoot(dir);
    certs = { a: issue(dir, root, 'acme-signer', 'ec', SIGNER_EXT), b: issue(dir, root, 'shared-signer', 'ec', SIGNER_EXT) };
    file = path.join(dir, 'signers.yaml');
    await writeFile(file, signersYaml(dir, certs.a, certs.b, ['shared-local']));
    // A local identity provider: its tokens name the tenant in `org`.
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    jwt = (claims) =>
      new SignJWT({ scope: 'operations:write operations:read', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
        .setIssuer('https://idp.example/')
        .setAudience('signspool-api')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
    stack = await startStack({
      worker: false,
      env: {
        SIGNERS_FILE: file,
        AUTH_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
        AUTH_ISSUER: 'https://idp.example/',
        AUTH_AUDIENCE: 'signspool-api',
        AUTH_TENANT_CLAIM: 'org',
      },
    });
    queue = new Queue(QUEUES.sign, { connection: { url: stack.config.redisUrl ?? '' }, prefix: stack.config.queuePrefix });
  });
  afterAll(async () => {
    await queue?.close();
    await stack?.stop();
    await new Promise<void>((r) => (jwks ? jwks.close(() => r()) : r()));
    await rm(dir, { recursive: true, force: true });
  });

  const jobs = async (): Promise<number> => {
    const c = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed');
    return Object.values(c).reduce((n, v) => n + v, 0);
  };
  const listed = async (key: string, query = ''): Promise<{ id: string; signer: string }[]> => {
    const res = await fetch(`${stack.apiUrl}/v1/operations${query}`, { headers: auth(key) });
    expect(res.status).toBe(200);
    return ((await res.json()) as { data: { id: string; signer: string }[] }).data;
  };

  it("signs with the tenant's default, or the identity named, and says so in the operation, the listing and the metric", async () => {
    const byDefault = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a.bin', content: 'a' }]);
    expect(byDefault.status).toBe(202);
    expect(byDefault.body).toMatchObject({ signer: 'acme-local', signatureType: 'CAdES' });
    // The identity's signature type applies when the request names none.
    const named = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'b.xml', content: '<a/>' }], { signer: 'shared-local' });
    expect(named.status).toBe(202);
    expect(named.body).toMatchObject({ signer: 'shared-local', signatureType: 'XAdES' });
    const got = await fetch(`${stack.apiUrl}/v1/operations/${named.body.id}`, { headers: auth(stack.keys.acme) });
    expect(((await got.json()) as { signer: string }).signer).toBe('shared-local');
    // A request that says its type keeps it.
    const typed = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'c.bin', content: 'c' }], { signer: 'shared-local', signatureType: 'CAdES' });
    expect(typed.body).toMatchObject({ signer: 'shared-local', signatureType: 'CAdES' });

    expect((await listed(stack.keys.acme, '?signer=shared-local')).map((o) => o.id).sort()).toEqual([named.body.id, typed.body.id].sort());
    expect((await listed(stack.keys.acme, '?signer=acme-local')).map((o) => o.id)).toEqual([byDefault.body.id]);
    // globex has one identity: its default without a `default` line.
    const globex = await submit(stack.apiUrl, stack.keys.globex, [{ name: 'g.xml', content: '<g/>' }]);
    expect(globex.body).toMatchObject({ signer: 'shared-local', signatureType: 'XAdES' });

    const metrics = await (await fetch(stack.metricsUrl)).text();
    expect(metrics).toMatch(/signspool_documents_accepted_total\{signer="shared-local"\} 3/);
    expect(metrics).toMatch(/signspool_documents_accepted_total\{signer="acme-local"\} 1/);
  });

  it('refuses an unknown identity and one the tenant may not use with 422, keeping no file, job or record', async () => {
    const before = { jobs: await jobs(), ops: (await listed(stack.keys.globex)).length, files: (await incomingFiles(stack.config.spoolDir)).sort() };
    const cases: [string, string, string][] = [
      ['nobody', 'SIGNER_UNKNOWN', 'no signing identity is named "nobody"'],
      ['acme-local', 'SIGNER_NOT_ALLOWED', 'may not use'],
    ];
    for (const [signer, code, words] of cases) {
      const res = await submit(stack.apiUrl, stack.keys.globex, [{ name: 'x.bin', content: 'x' }], { signer });
      expect([res.status, res.body['code']], signer).toEqual([422, code]);
      expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(String(res.body['detail'])).toContain(words);
    }
    expect((await incomingFiles(stack.config.spoolDir)).sort()).toEqual(before.files);
    expect(await jobs()).toBe(before.jobs);
    expect((await listed(stack.keys.globex)).length).toBe(before.ops);
  });

  it('refuses before the file is stored: the 422 comes while the file part is still arriving', async () => {
    const before = await incomingFiles(stack.config.spoolDir);
    const boundary = 'signerfirst';
    const head = `--${boundary}\r\ncontent-disposition: form-data; name="signer"\r\n\r\nacme-local\r\n--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`;
    // Announces 10 MB but sends 64 KiB of the file and waits: only a check at the file part's start can answer now.
    const conn = rawConnect(stack.apiUrl, [uploadHead(stack.keys.globex, boundary, 10 * 1024 * 1024), head, Buffer.alloc(64 * 1024, 1)]);
    try {
      const res = await conn.response;
      expect(res?.status).toBe(422);
      expect((JSON.parse(res?.body ?? '{}') as { code?: string }).code).toBe('SIGNER_NOT_ALLOWED');
    } finally {
      conn.socket.destroy();
    }
    expect(await incomingFiles(stack.config.spoolDir)).toEqual(before);
  });

  it('refuses a signer field sent after the files (400), keeping nothing', async () => {
    const before = { files: await incomingFiles(stack.config.spoolDir), jobs: await jobs() };
    const form = new FormData();
    form.append('file', new Blob(['late']), 'late.bin');
    form.append('signer', 'shared-local');
    const res = await fetch(`${stack.apiUrl}/v1/operations`, { method: 'POST', headers: auth(stack.keys.acme), body: form });
    const body = (await res.json()) as { code: string; detail: string };
    expect([res.status, body.code]).toEqual([400, 'VALIDATION_FAILED']);
    expect(body.detail).toMatch(/signer: send this field before the file parts/);
    await eventually('no new spool file', async () => (await incomingFiles(stack.config.spoolDir)).length === before.files.length);
    expect(await jobs()).toBe(before.jobs);
  });

  it('applies a reload of the file to the next submission', async () => {
    const registry = stack.api?.signers;
    expect(registry).toBeDefined();
    await writeFile(file, signersYaml(dir, certs.a, certs.b, ['shared-local', 'acme-local']));
    try {
      expect((await registry?.reload())?.ok).toBe(true);
      const res = await submit(stack.apiUrl, stack.keys.globex, [{ name: 'y.bin', content: 'y' }], { signer: 'acme-local' });
      expect([res.status, res.body['signer']]).toEqual([202, 'acme-local']);
    } finally {
      await writeFile(file, signersYaml(dir, certs.a, certs.b, ['shared-local']));
      await registry?.reload();
    }
    const refused = await submit(stack.apiUrl, stack.keys.globex, [{ name: 'z.bin', content: 'z' }], { signer: 'acme-local' });
    expect([refused.status, refused.body['code']]).toEqual([422, 'SIGNER_NOT_ALLOWED']);
  });

  it("takes a JWT's tenant and that tenant's identities from the file, whatever else the token claims", async () => {
    const token = await jwt({ org: 'globex', signers: ['acme-local'], signer: 'acme-local' });
    const byDefault = await submit(stack.apiUrl, token, [{ name: 'j.xml', content: '<j/>' }]);
    expect([byDefault.status, byDefault.body['signer']]).toEqual([202, 'shared-local']);
    const refused = await submit(stack.apiUrl, token, [{ name: 'k.bin', content: 'k' }], { signer: 'acme-local' });
    expect([refused.status, refused.body['code']]).toEqual([422, 'SIGNER_NOT_ALLOWED']);
    const acme = await submit(stack.apiUrl, await jwt({ org: 'acme' }), [{ name: 'l.bin', content: 'l' }], { signer: 'acme-local' });
    expect([acme.status, acme.body['signer']]).toEqual([202, 'acme-local']);
  });
});
