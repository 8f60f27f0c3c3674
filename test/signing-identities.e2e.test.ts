/**
 * The acceptance test of issue 22, with real processes (an api and a worker, bin/start.ts): two
 * tenants signed by different issuers — acme by a Sign'Stash client service of the fake (signing
 * for real with its own certificate), globex by a local certificate — and a third tenant, initech,
 * sharing acme's identity. Every signed document verifies against its own issuer's CA and fails
 * against the other's, judged by openssl (CAdES, and the PAdES signature's CMS over its byte
 * range), pdfsig (PAdES integrity) and xmlsec1 (XAdES); acme's and initech's documents share an
 * upstream call. GET /v1/admin/signers and `signspool signers` show each identity with no secret,
 * and no secret reaches the processes' logs.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PDFDocument } from 'pdf-lib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import type { AdminSigners } from '@signspool/api/admin-signers';
import { FakeSignstash } from './fake-signstash/server.js';
import { auth, download, eventually, submit, waitForTerminal, type OperationView } from './harness/client.js';
import { issue, makeRoot, SIGNER_EXT, type Issued } from './harness/pki.js';
import { startService, type ServiceProcess } from './harness/processes.js';
import { cmsVerify, padesParts, pdfsig, xmlsecVerify, type ToolResult } from './harness/verify.js';
import { testPrefix } from './harness/stack.js';

const root = path.resolve(import.meta.dirname, '..');
const ADMIN_TOKEN = 'adm_identities-test-token-0123456789abcdef';
const SIGNSTASH_SECRET = 'acme-pt-Secret-7f3a9c1e5b';

const cli = (args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/signspool.mjs'), ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });

describe('signing identities across processes (issue 22 acceptance)', () => {
  let dir: string;
  let fake: FakeSignstash;
  let api: ServiceProcess | undefined;
  let worker: ServiceProcess | undefined;
  let issuers: { acme: Issued & { root: string }; globex: Issued & { root: string } };
  const keys = { acme: generateApiKey(), globex: generateApiKey(), initech: generateApiKey() };
  /** Per tenant, the operations it submitted. */
  const ops: Record<keyof typeof keys, OperationView[]> = { acme: [], globex: [], initech: [] };
  const originals = new Map<string, string>();
  let signersFile = '';
  let signersJson: { signers: Record<string, unknown>; tenants: Record<string, { signers: string[]; default?: string }> };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'identities-'));
    // Two issuers, each with its own CA: a document verifies against its issuer's CA only.
    const rootA = makeRoot(dir, 'issuer-a-root');
    const rootB = makeRoot(dir, 'issuer-b-root');
    issuers = {
      acme: { ...issue(dir, rootA, 'acme-pt-signer', 'ec', SIGNER_EXT), root: rootA.cert },
      globex: { ...issue(dir, rootB, 'globex-signer', 'rsa', SIGNER_EXT), root: rootB.cert },
    };
    fake = new FakeSignstash({
      perRequestMs: 5,
      bytesPerSec: 1e9,
      signatures: 'real',
      clients: [{ clientId: 'acme-pt', clientSecret: SIGNSTASH_SECRET, keyFile: issuers.acme.key, certFile: issuers.acme.cert }],
    });
    await fake.start();
    const secretFile = path.join(dir, 'acme-pt.secret');
    await writeFile(secretFile, `${SIGNSTASH_SECRET}\n`, { mode: 0o600 });
    signersFile = path.join(dir, 'signers.json');
    signersJson = {
      signers: {
        // Four documents of acme and initech fill one CAdES batch (see the mixing check below).
        'acme-pt': {
          kind: 'signstash',
          url: fake.businessUrl,
          authUrl: fake.authUrl,
          clientId: 'acme-pt',
          clientSecretFile: secretFile,
          limits: { batchMaxDocs: 4 },
        },
        'globex-local': { kind: 'local', keyFile: issuers.globex.key, certFile: issuers.globex.cert },
      },
      tenants: { acme: { signers: ['acme-pt'] }, initech: { signers: ['acme-pt'] }, globex: { signers: ['globex-local'] } },
    };
    await writeFile(signersFile, JSON.stringify(signersJson));
    const env = {
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: testPrefix(),
      DATA_DIR: dir,
      SIGNERS_FILE: signersFile,
      API_KEYS: Object.entries(keys)
        .map(([tenant, key]) => `${tenant}:${hashApiKey(key)}`)
        .join(','),
      ADMIN_TOKEN,
      BATCH_LINGER: '2s',
      SPOOL_MIN_FREE_BYTES: '1MiB',
      LOG_LEVEL: 'debug',
    };
    api = await startService('api', env);
    // Everything is queued before the worker starts: it pulls the tenants' documents round-robin,
    // so acme's and initech's CAdES documents meet in one bucket of acme-pt.
    const pdf = async (label: string): Promise<Buffer> => {
      const doc = await PDFDocument.create();
      doc.addPage().drawText(label);
      return Buffer.from(await doc.save());
    };
    const send = async (tenant: keyof typeof keys, files: { name: string; content: Buffer | string }[], signatureType: string): Promise<void> => {
      const res = await submit(api?.url ?? '', keys[tenant], files, { signatureType });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      ops[tenant].push(res.body);
      for (const [i, d] of res.body.documents.entries()) originals.set(d.id, typeof files[i]?.content === 'string' ? (files[i]?.content as string) : '');
    };
    await send(
      'acme',
      [
        { name: 'a1.bin', content: 'acme one' },
        { name: 'a2.bin', content: 'acme two' },
      ],
      'CAdES',
    );
    await send(
      'initech',
      [
        { name: 'i1.bin', content: 'initech one' },
        { name: 'i2.bin', content: 'initech two' },
      ],
      'CAdES',
    );
    await send('acme', [{ name: 'a.pdf', content: await pdf('acme') }], 'PAdES');
    await send('acme', [{ name: 'a.xml', content: '<Invoice><ID>acme</ID></Invoice>' }], 'XAdES');
    await send('globex', [{ name: 'g.bin', content: 'globex one' }], 'CAdES');
    await send('globex', [{ name: 'g.pdf', content: await pdf('globex') }], 'PAdES');
    await send('globex', [{ name: 'g.xml', content: '<Invoice><ID>globex</ID></Invoice>' }], 'XAdES');
    worker = await startService('worker', env);
  });
  afterAll(async () => {
    await worker?.stop();
    await api?.stop();
    await fake?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("signs every tenant's documents with its own issuer: each verifies against its issuer's CA and fails against the other's", async () => {
    const own = { acme: issuers.acme.root, initech: issuers.acme.root, globex: issuers.globex.root };
    const other = { acme: issuers.globex.root, initech: issuers.globex.root, globex: issuers.acme.root };
    let checked = 0;
    for (const tenant of ['acme', 'initech', 'globex'] as const) {
      for (const op of ops[tenant]) {
        const done = await waitForTerminal(api?.url ?? '', keys[tenant], op.id, 60_000);
        expect(done.status, JSON.stringify(done.documents.map((d) => d.error))).toBe('succeeded');
        expect((done as OperationView & { signer?: string }).signer).toBe(tenant === 'globex' ? 'globex-local' : 'acme-pt');
        for (const d of done.documents) {
          const dl = await download(api?.url ?? '', keys[tenant], done.id, d.id);
          expect(dl.status).toBe(200);
          const signed = path.join(dir, `${d.id}.signed`);
          await writeFile(signed, dl.body);
          // Files the tools read: the detached content of CAdES, the byte range and CMS of PAdES.
          const content = `${signed}.content`;
          const cms = done.signatureType === 'PAdES' ? `${signed}.cms` : signed;
          if (done.signatureType === 'PAdES') {
            // pdfsig judges the PDF's signature over the whole file; openssl judges its CMS against a CA.
            expect(pdfsig(signed).out).toMatch(/Total document signed[\s\S]*Signature is Valid\./);
            const parts = padesParts(dl.body);
            await writeFile(content, parts.content);
            await writeFile(cms, parts.cms);
          } else await writeFile(content, originals.get(d.id) ?? '');
          const verify = (ca: string): ToolResult => (done.signatureType === 'XAdES' ? xmlsecVerify(signed, ca) : cmsVerify(cms, ca, content));
          const mine = verify(own[tenant]);
          expect(mine.status, `${tenant} ${done.signatureType} against its own issuer: ${mine.out}`).toBe(0);
          const theirs = verify(other[tenant]);
          expect(theirs.status, `${tenant} ${done.signatureType} against the other issuer`).not.toBe(0);
          checked += 1;
        }
      }
    }
    expect(checked).toBe(9);
  });

  it("coalesces acme's and initech's documents into one upstream call of their shared identity", () => {
    const tenantOf = new Map<string, string>();
    for (const tenant of ['acme', 'initech'] as const) for (const op of ops[tenant]) for (const d of op.documents) tenantOf.set(d.id, tenant);
    const calls = fake.requests().filter((r) => r.outcome === 'ok' && r.clientId === 'acme-pt');
    const mixed = calls.filter((r) => new Set(r.docs.map((d) => tenantOf.get(d.externalReference))).size === 2);
    expect(mixed.length, JSON.stringify(calls.map((r) => r.docs.map((d) => tenantOf.get(d.externalReference))))).toBeGreaterThanOrEqual(1);
    // globex's documents never went to the Sign'Stash client service.
    const globexDocs = new Set(ops.globex.flatMap((o) => o.documents.map((d) => d.id)));
    expect(calls.flatMap((r) => r.docs).filter((d) => globexDocs.has(d.externalReference))).toEqual([]);
  });

  it('shows each identity to the operator (admin route and CLI) with its state, and no secret anywhere', async () => {
    // Workers publish each identity's state every few seconds (shared/circuit-state.ts).
    let text = '';
    let view: AdminSigners = { generatedAt: '', source: '', signers: [], tenants: {} };
    await eventually(
      'both identities reported by the worker',
      async () => {
        const res = await fetch(`${api?.url ?? ''}/v1/admin/signers`, { headers: auth(ADMIN_TOKEN) });
        expect(res.status).toBe(200);
        text = await res.text();
        view = JSON.parse(text) as AdminSigners;
        return view.signers.length === 2 && view.signers.every((s) => s.reported);
      },
      30_000,
    );
    const byName = new Map(view.signers.map((s) => [s.name, s]));
    expect(byName.get('acme-pt')).toMatchObject({
      kind: 'signstash',
      clientId: 'acme-pt',
      tenants: ['acme', 'initech'],
      defaultFor: ['acme', 'initech'],
      reported: true,
      circuit: { state: 'closed' },
      certificate: null,
    });
    expect(Date.parse(byName.get('acme-pt')?.token?.validUntil ?? '')).toBeGreaterThan(Date.now());
    expect(byName.get('globex-local')).toMatchObject({ kind: 'local', tenants: ['globex'], reported: true, circuit: { state: 'closed' }, token: null });
    expect(byName.get('globex-local')?.certificate?.subject).toContain('globex-signer');
    expect(Date.parse(byName.get('globex-local')?.certificate?.notAfter ?? '')).toBeGreaterThan(Date.now());
    // An API key is not the admin token.
    expect((await fetch(`${api?.url ?? ''}/v1/admin/signers`, { headers: auth(keys.acme) })).status).toBe(401);

    const printed = await cli(['signers'], { SIGNSPOOL_URL: api?.url ?? '', SIGNSPOOL_ADMIN_TOKEN: ADMIN_TOKEN });
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/acme-pt {2}signstash {2}circuit closed {2}tenants acme,initech/);
    expect(printed.stdout).toMatch(/globex-local {2}local .*\n {2}certificate .*globex-signer.*, expires /);

    for (const [what, out] of [
      ['admin view', text],
      ['CLI', printed.stdout],
      ['api log', api?.output() ?? ''],
      ['worker log', worker?.output() ?? ''],
    ] as const) {
      expect(out, what).not.toContain(SIGNSTASH_SECRET);
      expect(out, what).not.toContain(Buffer.from(`acme-pt:${SIGNSTASH_SECRET}`).toString('base64'));
      expect(out, what).not.toContain(await readFile(issuers.globex.key, 'utf8').then((k) => k.split('\n')[1] ?? 'x'));
    }
  });

  it('takes a changed file on SIGHUP at the api: the next submission follows it', async () => {
    const asAcmePt = () => submit(api?.url ?? '', keys.globex, [{ name: 'h.bin', content: 'after the reload' }], { signer: 'acme-pt', signatureType: 'CAdES' });
    const before = await asAcmePt();
    expect([before.status, before.body['code']]).toEqual([422, 'SIGNER_NOT_ALLOWED']);
    signersJson.tenants['globex'] = { signers: ['globex-local', 'acme-pt'], default: 'globex-local' };
    await writeFile(signersFile, JSON.stringify(signersJson));
    api?.child.kill('SIGHUP');
    let accepted: Awaited<ReturnType<typeof asAcmePt>> | undefined;
    await eventually('globex may use acme-pt after SIGHUP', async () => {
      const res = await asAcmePt();
      if (res.status === 202) accepted = res;
      else expect(res.body['code']).toBe('SIGNER_NOT_ALLOWED');
      return res.status === 202;
    });
    expect(accepted?.body['signer']).toBe('acme-pt');
    expect(api?.output()).toMatch(/signing identities reloaded/);
  });
});
