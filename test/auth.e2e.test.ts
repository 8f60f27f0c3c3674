/**
 * Authentication and scopes against a real api: bearer JWTs verified against a real local JWKS
 * server with keys made here (valid, expired, wrong audience/issuer/key, `alg: none`, no tenant
 * claim, provider key rotation), API keys with names and scopes (several per tenant), the scope
 * each route needs (403 INSUFFICIENT_SCOPE with an RFC 6750 challenge), and `signspool keys create`.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey, keyEntryOf } from '@signspool/api/auth/auth';
import { loadConfig } from '@signspool/shared/config';
import { submit } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

const ISSUER = 'https://idp.example/realms/signspool';
const AUDIENCE = 'signspool-api';

interface SigningKey {
  kid: string;
  alg: 'ES256' | 'RS256';
  privateKey: CryptoKey;
  jwk: JWK;
}

const makeKey = async (kid: string, alg: 'ES256' | 'RS256'): Promise<SigningKey> => {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
};

describe('authentication', () => {
  let stack: Stack;
  let jwks: http.Server;
  let published: JWK[] = [];
  let jwksFetches = 0;
  let k1: SigningKey;
  let k2: SigningKey;
  let impostor: SigningKey;
  const keys = { full: generateApiKey(), reader: generateApiKey(), rotated: generateApiKey() };

  beforeAll(async () => {
    [k1, k2, impostor] = await Promise.all([makeKey('k1', 'ES256'), makeKey('k2', 'RS256'), makeKey('k1', 'ES256')]);
    published = [k1.jwk];
    jwks = http.createServer((_req, res) => {
      jwksFetches += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    stack = await startStack({
      worker: false,
      env: {
        // Old entry syntax (tenant:hash) beside named keys with scopes: two keys for acme at once.
        API_KEYS: `acme:${hashApiKey(keys.full)},acme/reader:${hashApiKey(keys.reader)}:operations:read,acme/next-2027:${hashApiKey(keys.rotated)}`,
        AUTH_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
        AUTH_TENANT_CLAIM: 'org',
        AUTH_CLOCK_TOLERANCE: '5s',
        AUTH_JWKS_COOLDOWN: '0ms',
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await new Promise<void>((r) => (jwks ? jwks.close(() => r()) : r()));
  });

  const token = async (
    claims: Record<string, unknown> = {},
    o: { key?: SigningKey; issuer?: string; audience?: string; expiresIn?: string | number } = {},
  ): Promise<string> => {
    const key = o.key ?? k1;
    return new SignJWT({ org: 'acme', scope: 'operations:write operations:read', ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(o.issuer ?? ISSUER)
      .setAudience(o.audience ?? AUDIENCE)
      .setSubject('svc-backoffice')
      .setIssuedAt()
      .setExpirationTime(o.expiresIn ?? '5m')
      .sign(key.privateKey);
  };

  const get = (p: string, credential?: string) =>
    fetch(`${stack.apiUrl}${p}`, { headers: credential === undefined ? {} : { authorization: `Bearer ${credential}` } });
  const missingOp = '/v1/operations/op_00000000000000000000000000000000';

  it('accepts a valid token: its tenant owns what it submits (the tenant’s API key sees it too)', async () => {
    const t = await token();
    const res = await submit(stack.apiUrl, t, [{ name: 'jwt.txt', content: 'signed in with a token' }]);
    expect(res.status).toBe(202);
    const viaKey = await get(`/v1/operations/${res.body.id}`, keys.full);
    expect(viaKey.status).toBe(200);
    expect((await get(`/v1/operations/${res.body.id}`, t)).status).toBe(200);
  });

  it('refuses expired, wrong-audience, wrong-issuer, wrong-key, alg none and tenant-less tokens with 401 invalid_token', async () => {
    const header = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, string][] = [
      ['expired', await token({}, { expiresIn: now - 60 })],
      ['wrong audience', await token({}, { audience: 'someone-else' })],
      ['wrong issuer', await token({}, { issuer: 'https://evil.example/' })],
      ['wrong key (same kid)', await token({}, { key: impostor })],
      [
        'alg none',
        `${header({ alg: 'none', kid: 'k1', typ: 'JWT' })}.${header({ org: 'acme', scope: 'operations:read', iss: ISSUER, aud: AUDIENCE, exp: now + 300 })}.`,
      ],
      ['no tenant claim', await token({ org: undefined })],
      ['tenant claim not a tenant id', await token({ org: '../globex' })],
    ];
    for (const [what, t] of cases) {
      const res = await get(missingOp, t);
      expect(res.status, what).toBe(401);
      expect(res.headers.get('content-type'), what).toContain('application/problem+json');
      expect(((await res.json()) as { code: string }).code, what).toBe('UNAUTHORIZED');
      expect(res.headers.get('www-authenticate'), what).toMatch(/^Bearer realm="signspool", error="invalid_token", error_description="[^"]+"$/);
    }
    // The control: the same request with a good token reaches the route (404: no such operation).
    expect((await get(missingOp, await token())).status).toBe(404);
  });

  it('answers a request without credentials with a bare challenge', async () => {
    const res = await get(missingOp);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="signspool"');
  });

  it('follows a provider key rotation: a new kid is fetched and accepted, a removed key no longer is', async () => {
    const before = jwksFetches;
    published = [k2.jwk];
    const t2 = await token({}, { key: k2 });
    expect((await get(missingOp, t2)).status).toBe(404);
    expect(jwksFetches).toBeGreaterThan(before);
    // k1 is gone from the set: its tokens fail once the set has been refetched.
    expect((await get(missingOp, await token())).status).toBe(401);
    published = [k1.jwk, k2.jwk];
  });

  it('gives each route its scope: 403 INSUFFICIENT_SCOPE names it in the challenge', async () => {
    const readOnly = await token({ scope: 'operations:read' });
    const writeOnly = await token({ scope: undefined, scp: ['operations:write'] });
    const created = await submit(stack.apiUrl, writeOnly, [{ name: 's.txt', content: 'scopes' }]);
    expect(created.status).toBe(202);
    const op = `/v1/operations/${created.body.id}`;

    const expect403 = async (res: Response, scope: string) => {
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ code: 'INSUFFICIENT_SCOPE', requiredScope: scope });
      expect(res.headers.get('www-authenticate')).toContain(`error="insufficient_scope"`);
      expect(res.headers.get('www-authenticate')).toContain(`scope="${scope}"`);
    };
    const as = (credential: string, method: string, p: string) => fetch(`${stack.apiUrl}${p}`, { method, headers: { authorization: `Bearer ${credential}` } });

    for (const credential of [readOnly, keys.reader]) {
      expect((await submit(stack.apiUrl, credential, [{ name: 'r.txt', content: 'no' }])).status).toBe(403);
      await expect403(await as(credential, 'DELETE', op), 'operations:write');
      await expect403(await as(credential, 'POST', `${op}/webhook/redeliver`), 'webhooks:redeliver');
      expect((await as(credential, 'GET', op)).status).toBe(200);
    }
    await expect403(await as(writeOnly, 'GET', op), 'operations:read');
    await expect403(await as(writeOnly, 'GET', `${op}/documents/doc_00000000000000000000000000000000`), 'operations:read');
    // A key without a scope list holds every scope: redeliver gets past the scope check (400: no webhook).
    expect((await as(keys.full, 'POST', `${op}/webhook/redeliver`)).status).toBe(400);
    expect((await as(keys.full, 'DELETE', op)).status).toBe(200);
  });

  it('answers 503 (not 401) while the JWKS cannot be fetched; API keys keep working', async () => {
    const down = await startStack({
      worker: false,
      env: {
        API_KEYS: `acme:${hashApiKey(keys.full)}`,
        AUTH_JWKS_URL: 'http://127.0.0.1:9/jwks.json',
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
        AUTH_TENANT_CLAIM: 'org',
      },
    });
    try {
      const res = await fetch(`${down.apiUrl}${missingOp}`, { headers: { authorization: `Bearer ${await token()}` } });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect((await fetch(`${down.apiUrl}${missingOp}`, { headers: { authorization: `Bearer ${keys.full}` } })).status).toBe(404);
    } finally {
      await down.stop();
    }
  });

  it('answers 503 with Retry-After (not 401) while the JWKS answers 500, 404 or something that is not JSON', async () => {
    let answer: (res: http.ServerResponse) => void = (res) => res.writeHead(500).end();
    const broken = http.createServer((_req, res) => answer(res));
    await new Promise<void>((r) => broken.listen(0, '127.0.0.1', () => r()));
    const down = await startStack({
      worker: false,
      env: {
        API_KEYS: `acme:${hashApiKey(keys.full)}`,
        AUTH_JWKS_URL: `http://127.0.0.1:${(broken.address() as AddressInfo).port}/jwks.json`,
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
        AUTH_TENANT_CLAIM: 'org',
        AUTH_JWKS_COOLDOWN: '0ms',
      },
    });
    try {
      const t = await token();
      const cases: [string, (res: http.ServerResponse) => void][] = [
        ['500', (res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error')],
        ['404', (res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>not found</h1>')],
        ['not JSON', (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('<html>maintenance</html>')],
      ];
      for (const [what, a] of cases) {
        answer = a;
        const res = await fetch(`${down.apiUrl}${missingOp}`, { headers: { authorization: `Bearer ${t}` } });
        expect(res.status, what).toBe(503);
        expect(res.headers.get('retry-after'), what).toBe('5');
        expect(res.headers.get('content-type'), what).toContain('application/problem+json');
        expect(((await res.json()) as { code: string }).code, what).toBe('SERVICE_UNAVAILABLE');
      }
      // The control: once the JWKS answers, the same token reaches the route (404: no such operation).
      answer = (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [k1.jwk] }));
      expect((await fetch(`${down.apiUrl}${missingOp}`, { headers: { authorization: `Bearer ${t}` } })).status).toBe(404);
    } finally {
      await down.stop();
      await new Promise<void>((r) => broken.close(() => r()));
    }
  });

  it('lets a tenant hold several named keys at once (rotation without downtime)', async () => {
    for (const k of [keys.full, keys.rotated]) expect((await get(missingOp, k)).status).toBe(404);
    expect((await get(missingOp, generateApiKey())).status).toBe(401);
  });

  it('signspool keys create prints a key once and the entry that admits it with its scopes', async () => {
    const root = path.resolve(import.meta.dirname, '..');
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [path.join(root, 'bin/signspool.mjs'), 'keys', 'create', '--tenant', 'globex', '--name', 'ci-2027', '--scopes', 'operations:read,webhooks:redeliver'],
        { env: { ...process.env, SIGNSPOOL_API_KEY: '' } },
        (err, out) => (err ? reject(err) : resolve(out)),
      ),
    );
    const key = /^\s+(ssk_\S+)$/m.exec(stdout)?.[1] ?? '';
    const entry = /^\s+(globex\/ci-2027:[0-9a-f]{64}\S*)$/m.exec(stdout)?.[1] ?? '';
    expect(key).not.toBe('');
    expect(entry).not.toContain(key);
    const config = loadConfig({ API_KEYS: `acme:${hashApiKey(keys.full)},${entry}` });
    expect(keyEntryOf(config.apiKeys ?? [], key)).toMatchObject({ tenant: 'globex', name: 'ci-2027', scopes: ['operations:read', 'webhooks:redeliver'] });
  });
});
