/**
 * The OpenAPI document covers every route the express app registers, and nothing else; real
 * responses and a real webhook delivery match its schemas, judged by an independent JSON Schema
 * validator (Ajv, draft 2020-12) reading the served document; Redocly's linter finds nothing.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { problemSchema } from '@signspool/api/openapi';
import { operationViewSchema } from '@signspool/shared/operations/view';
import { auth, eventually, submit, waitForTerminal } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';
import { startReceiver, type Receiver } from './harness/webhook-receiver.js';

const root = path.resolve(import.meta.dirname, '..');
const ADMIN_TOKEN = 'adm_openapi-test-token-0123456789';
const SECRET = 'whsec_' + Buffer.from('openapi-webhook-secret-0123456789').toString('base64');

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  rawPath?: string;
}

/** Every (METHOD, path) the express app routes, with nested routers' mount paths. */
const expressRoutes = (stack: Layer[], prefix = ''): string[] =>
  stack.flatMap((layer) => {
    if (layer.route) {
      const path = `${prefix}${layer.route.path === '/' && prefix ? '' : layer.route.path}`.replace(/:([A-Za-z]+)/g, '{$1}');
      return Object.keys(layer.route.methods).map((m) => `${m.toUpperCase()} ${path}`);
    }
    if (layer.handle?.stack && typeof layer.rawPath === 'string')
      return expressRoutes(layer.handle.stack, `${prefix}${layer.rawPath === '/' ? '' : layer.rawPath}`);
    return [];
  });

/** Bull Board's own UI and JSON routes: a third-party operator page, not part of the API contract. */
const isBullBoard = (route: string): boolean => / \/admin\/queues(\/|$)/.test(route);

interface Doc {
  openapi: string;
  info: { license?: { name: string }; contact?: { url?: string } };
  servers?: { url: string }[];
  tags?: { name: string }[];
  paths: Record<string, Record<string, { tags?: string[]; responses: Record<string, unknown> }>>;
  webhooks?: Record<string, { post: { parameters: { name: string; in: string; required: boolean; schema: object }[] } }>;
  components: { securitySchemes: Record<string, unknown> };
}

const run = (cmd: string, args: string[], cwd: string): Promise<{ code: number; out: string }> =>
  new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' } },
      (error, stdout, stderr) => {
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
      },
    );
  });

describe('OpenAPI', () => {
  let stack: Stack;
  let hook: Receiver;
  let doc: Doc;
  let ajv: Ajv2020;
  /** Ajv's verdict on `value` against the schema at `pointer` in the served document ('' when valid). */
  let check: (pointer: string, value: unknown) => string;

  beforeAll(async () => {
    hook = await startReceiver();
    stack = await startStack({
      env: {
        ADMIN_TOKEN,
        WEBHOOK_SECRETS: `acme:${SECRET}`,
        WEBHOOK_ALLOW: '127.0.0.1:*',
        WEBHOOK_ALLOW_HTTP: 'true',
        PUBLIC_URL: 'https://signspool.example',
      },
    });
    const res = await fetch(`${stack.apiUrl}/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as Doc;
    ajv = new Ajv2020({ strict: false, allErrors: true });
    ajv.addSchema(doc, 'openapi.json');
    check = (pointer, value) => {
      const validate = ajv.compile({ $ref: `openapi.json#${pointer}` });
      return validate(value) ? '' : ajv.errorsText(validate.errors);
    };
  });
  afterAll(async () => {
    await stack?.stop();
    await hook?.close();
  });

  it('is OpenAPI 3.1 with the bearer scheme, servers, license, contact and tags on every operation', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes).toHaveProperty('bearer');
    expect(doc.servers?.[0]?.url).toBe('https://signspool.example');
    expect(doc.info.license?.name).toBe('MIT');
    expect(doc.info.contact?.url).toBeTruthy();
    const tags = new Set((doc.tags ?? []).map((t) => t.name));
    for (const [p, ops] of Object.entries(doc.paths))
      for (const [m, op] of Object.entries(ops)) expect(op.tags?.every((t) => tags.has(t)) && op.tags.length > 0, `${m} ${p}`).toBe(true);
  });

  it('lists a 4xx on every operation that takes credentials', () => {
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [m, op] of Object.entries(ops)) {
        if (op.tags?.includes('service')) continue;
        expect(
          Object.keys(op.responses).some((s) => s.startsWith('4')),
          `${m} ${p}`,
        ).toBe(true);
        expect(op.responses, `${m} ${p}`).toHaveProperty('401');
      }
    }
  });

  it('documents bearer JWTs beside API keys, and the scope of every /v1 route with its 403', () => {
    expect(doc.components.securitySchemes['jwt']).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    const v1 = Object.entries(doc.paths).filter(([p]) => p.startsWith('/v1/') && !p.startsWith('/v1/admin'));
    expect(v1.length).toBeGreaterThanOrEqual(3);
    for (const [p, ops] of v1) {
      for (const [method, op] of Object.entries(
        ops as Record<string, { security: Record<string, string[]>[]; responses: Record<string, { description: string }> }>,
      )) {
        const scope = op.security[0]?.['bearer']?.[0];
        expect(scope, `${method} ${p}`).toMatch(/^(operations:write|operations:read|webhooks:redeliver)$/);
        expect(op.security).toEqual([{ bearer: [scope] }, { jwt: [scope] }]);
        expect(op.responses['403']?.description, `${method} ${p}`).toContain('INSUFFICIENT_SCOPE');
      }
    }
  });

  it('documents exactly the routes express registers (Bull Board’s own routes apart)', () => {
    const router = (stack.api?.app as unknown as { router: { stack: Layer[] } }).router;
    const registered = new Set(expressRoutes(router.stack).filter((r) => !isBullBoard(r)));
    const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
    expect(registered.size).toBeGreaterThanOrEqual(11);
    expect([...registered].sort()).toEqual([...documented].sort());
  });

  it('passes Redocly lint (recommended-strict), offline', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'signspool-redocly-'));
    try {
      await writeFile(path.join(dir, 'openapi.json'), JSON.stringify(doc, null, 2));
      for (const f of ['redocly.yaml', '.redocly.lint-ignore.yaml']) await copyFile(path.join(root, 'test/openapi-lint', f), path.join(dir, f));
      const r = await run(
        process.execPath,
        [path.join(root, 'node_modules/@redocly/cli/bin/cli.js'), 'lint', 'openapi.json', '--config', 'redocly.yaml', '--format', 'stylish'],
        dir,
      );
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/valid/i);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('describes real responses', async () => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'o.txt', content: 'openapi' }]);
    expect(operationViewSchema.safeParse(res.body).error).toBeUndefined();
    expect(check('/components/schemas/Operation', res.body)).toBe('');
    const got = await (await fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`, { headers: auth(stack.keys.acme) })).json();
    expect(operationViewSchema.safeParse(got).error).toBeUndefined();
    expect(check('/components/schemas/Operation', got)).toBe('');
    const problem = await (await fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`)).json();
    expect(problemSchema.safeParse(problem).error).toBeUndefined();
    expect(check('/components/schemas/Problem', problem)).toBe('');
    const limits = await (await fetch(`${stack.apiUrl}/v1/limits`, { headers: auth(stack.keys.acme) })).json();
    expect(check('/components/schemas/Limits', limits)).toBe('');
    const stats = await (await fetch(`${stack.apiUrl}/v1/admin/stats`, { headers: auth(ADMIN_TOKEN) })).json();
    expect(check('/components/schemas/AdminStats', stats)).toBe('');
    const signers = await (await fetch(`${stack.apiUrl}/v1/admin/signers`, { headers: auth(ADMIN_TOKEN) })).json();
    expect(check('/components/schemas/AdminSigners', signers)).toBe('');
    expect(signers).toMatchObject({ source: 'environment', signers: [{ name: 'default', kind: 'local', tenants: ['*'], defaultFor: ['*'] }] });
    // The document is strict: a field it does not describe fails.
    expect(check('/components/schemas/Operation', { ...(got as object), surprise: 1 })).not.toBe('');
  });

  it('describes a real operation.completed delivery: body and Standard Webhooks headers', async () => {
    const before = hook.received.length;
    const res = await submit(
      stack.apiUrl,
      stack.keys.acme,
      [
        { name: 'w1.txt', content: 'one' },
        { name: 'w2.txt', content: 'two' },
      ],
      { webhookUrl: hook.url('/contract'), externalReference: 'contract-1' },
    );
    expect(res.status).toBe(202);
    await waitForTerminal(stack.apiUrl, stack.keys.acme, res.body.id);
    await eventually('webhook received', () => hook.received.length > before);
    const got = hook.received[before];
    const event = new Webhook(SECRET).verify(got?.body ?? '', got?.headers as Record<string, string>) as { data: { id: string; documents: unknown[] } };
    expect(event.data.id).toBe(res.body.id);
    expect(event.data.documents).toHaveLength(2);
    const webhook = doc.webhooks?.['operation.completed']?.post;
    expect(webhook).toBeDefined();
    expect(check('/webhooks/operation.completed/post/requestBody/content/application~1json/schema', JSON.parse(got?.body ?? 'null'))).toBe('');
    const headers = (webhook?.parameters ?? []).filter((p) => p.in === 'header');
    expect(headers.map((h) => h.name).sort()).toEqual(['webhook-id', 'webhook-signature', 'webhook-timestamp']);
    for (const [i, h] of headers.entries()) {
      expect(h.required).toBe(true);
      expect(check(`/webhooks/operation.completed/post/parameters/${i}/schema`, got?.headers[h.name]), h.name).toBe('');
    }
  });
});
