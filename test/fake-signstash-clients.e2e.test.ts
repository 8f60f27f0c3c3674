/**
 * The fake Sign'Stash's client services, spoken to over plain HTTP as the adapter does: each has
 * its own secret, its own certificate (openssl tells which one signed), a state that yields the
 * upstream's "not active" / "no certificate" answers, counters, and a secret that can be rotated.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSignstash } from './fake-signstash/server.js';
import { issue, makeRoot, SIGNER_EXT } from './harness/pki.js';
import { cmsVerify } from './harness/verify.js';

const token = async (fake: FakeSignstash, clientId: string, secret: string): Promise<{ status: number; token: string }> => {
  const res = await fetch(`${fake.authUrl}/oauth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  const body = (await res.json()) as { access_token?: string };
  return { status: res.status, token: body.access_token ?? '' };
};

const sign = async (
  fake: FakeSignstash,
  bearer: string,
  docs: { ref: string; content: string }[],
): Promise<{ status: number; body: { errorCode?: string; documentList?: { externalReference: string; signedContent: string }[] } }> => {
  const res = await fetch(`${fake.businessUrl}/api/v0/document/sign/base64`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      description: 'test',
      externalReference: 'batch-1',
      documents: docs.map((d) => ({
        documentRequest: {
          base64Content: Buffer.from(d.content).toString('base64'),
          contentType: 'application/octet-stream',
          externalReference: d.ref,
          name: `${d.ref}.bin`,
        },
        signatureInfo: { signatureType: 'CAdES', applyTimestamp: false },
      })),
    }),
  });
  return { status: res.status, body: (await res.json()) as never };
};

describe("the fake Sign'Stash's client services", () => {
  let fake: FakeSignstash;
  let dir: string;
  let certA: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fake-clients-'));
    const root = makeRoot(dir, 'issuer-a-root');
    const a = issue(dir, root, 'issuer-a', 'ec', SIGNER_EXT);
    certA = path.join(dir, 'issuer-a-chain.pem');
    spawnSync('sh', ['-c', `cat '${a.cert}' '${root.cert}' > '${certA}'`]);
    fake = new FakeSignstash({
      perRequestMs: 1,
      bytesPerSec: 1e9,
      signatures: 'real',
      clients: [
        { clientId: 'acme-pt', clientSecret: 'secret-a', keyFile: a.key, certFile: a.cert },
        { clientId: 'globex-pt', clientSecret: 'secret-b' },
      ],
    });
    await fake.start();
  });
  afterAll(async () => {
    await fake?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('signs with each client service its own certificate, and openssl tells them apart', async () => {
    const content = 'an invoice';
    const original = path.join(dir, 'original.bin');
    await writeFile(original, content);
    const rootA = path.join(dir, 'issuer-a-root.pem');
    const certB = path.join(dir, 'globex.pem');
    await writeFile(certB, fake.certificatePem('globex-pt'));
    expect(await (await fetch(`${fake.url}/_fake/certificate?client=globex-pt`)).text()).toBe(fake.certificatePem('globex-pt'));
    expect(fake.certificatePem('acme-pt')).not.toBe(fake.certificatePem('globex-pt'));

    const verify = (signed: string, caFile: string): number => cmsVerify(signed, caFile, original).status ?? -1;
    for (const [clientId, secret, own, other] of [
      ['acme-pt', 'secret-a', rootA, certB],
      ['globex-pt', 'secret-b', certB, rootA],
    ] as const) {
      const t = await token(fake, clientId, secret);
      expect(t.status).toBe(200);
      const res = await sign(fake, t.token, [{ ref: `${clientId}-1`, content }]);
      expect(res.status).toBe(200);
      const signed = path.join(dir, `${clientId}.p7s`);
      await writeFile(signed, Buffer.from(res.body.documentList?.[0]?.signedContent ?? '', 'base64'));
      expect(verify(signed, own), `${clientId} against its own issuer`).toBe(0);
      expect(verify(signed, other), `${clientId} against the other issuer`).not.toBe(0);
    }
    expect(fake.requests().map((r) => r.clientId)).toEqual(['acme-pt', 'globex-pt']);
  });

  it("refuses another client's secret, answers each state with the upstream's error, and counts per client", async () => {
    const before = fake.client('acme-pt');
    expect((await token(fake, 'acme-pt', 'secret-b')).status).toBe(401);
    expect((await token(fake, 'nobody', 'secret-a')).status).toBe(401);
    const a = await token(fake, 'acme-pt', 'secret-a');
    const b = await token(fake, 'globex-pt', 'secret-b');

    await fake.setClient('acme-pt', { state: 'inactive' });
    const inactive = await sign(fake, a.token, [{ ref: 'x1', content: 'x' }]);
    expect([inactive.status, inactive.body.errorCode]).toEqual([403, 'CLIENT_SERVICE_NOT_ACTIVE']);
    // Another client service is not affected.
    expect((await sign(fake, b.token, [{ ref: 'y1', content: 'y' }])).status).toBe(200);

    await fake.setClient('acme-pt', { state: 'no-certificate' });
    const uncertified = await sign(fake, a.token, [{ ref: 'x2', content: 'x' }]);
    expect([uncertified.status, uncertified.body.errorCode]).toEqual([422, 'CERTIFICATE_NOT_PROVISIONED']);

    await fake.setClient('acme-pt', { state: 'active' });
    const ok = await sign(fake, a.token, [
      { ref: 'x3', content: 'x' },
      { ref: 'x4', content: 'x' },
      { ref: 'x5', content: 'x' },
    ]);
    expect(ok.status).toBe(200);
    const after = fake.client('acme-pt');
    expect(after.refused - before.refused).toBe(2);
    expect(after.calls - before.calls).toBe(1);
    expect(after.documentsPerCall.at(-1)).toBe(3);
    expect(after.tokenRequests - before.tokenRequests).toBe(2);
  });

  it('rotates a secret at runtime: the old one is refused, the new one accepted, tokens issued before stay valid', async () => {
    const before = await token(fake, 'globex-pt', 'secret-b');
    const res = await fetch(`${fake.url}/_fake/clients/globex-pt`, { method: 'POST', body: JSON.stringify({ secret: 'secret-b2' }) });
    expect(res.status).toBe(200);
    expect((await token(fake, 'globex-pt', 'secret-b')).status).toBe(401);
    expect((await token(fake, 'globex-pt', 'secret-b2')).status).toBe(200);
    expect((await sign(fake, before.token, [{ ref: 'z1', content: 'z' }])).status).toBe(200);
    // The HTTP view shows states and counters, never a secret.
    const views = await (await fetch(`${fake.url}/_fake/clients`)).text();
    expect(views).toContain('globex-pt');
    expect(views).not.toMatch(/secret-/);
  });

  it('scopes an injected fault to one client service', async () => {
    const a = await token(fake, 'acme-pt', 'secret-a');
    const b = await token(fake, 'globex-pt', 'secret-b2');
    fake.injectFault({ kind: 'server_error', clientId: 'acme-pt', status: 503 });
    expect((await sign(fake, b.token, [{ ref: 'f1', content: 'f' }])).status).toBe(200);
    expect((await sign(fake, a.token, [{ ref: 'f2', content: 'f' }])).status).toBe(503);
    expect((await sign(fake, a.token, [{ ref: 'f3', content: 'f' }])).status).toBe(200);
  });
});
