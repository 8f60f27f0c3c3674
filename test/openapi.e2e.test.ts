/**
 * The OpenAPI document covers every route the express app registers, and nothing else; real
 * responses match its schemas.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationViewSchema, problemSchema } from '@signspool/api/openapi';
import { auth, submit } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

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
    if (layer.handle?.stack && typeof layer.rawPath === 'string') return expressRoutes(layer.handle.stack, `${prefix}${layer.rawPath === '/' ? '' : layer.rawPath}`);
    return [];
  });

describe('OpenAPI', () => {
  let stack: Stack;
  let doc: { openapi: string; paths: Record<string, Record<string, unknown>>; components: { securitySchemes: Record<string, unknown> } };

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    const res = await fetch(`${stack.apiUrl}/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as typeof doc;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('is OpenAPI 3.1 with the bearer scheme', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes).toHaveProperty('bearer');
  });

  it('documents bearer JWTs beside API keys, and the scope of every /v1 route with its 403', () => {
    expect(doc.components.securitySchemes['jwt']).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    const v1 = Object.entries(doc.paths).filter(([p]) => p.startsWith('/v1/'));
    expect(v1.length).toBeGreaterThanOrEqual(3);
    for (const [p, ops] of v1) {
      for (const [method, op] of Object.entries(ops as Record<string, { security: Record<string, string[]>[]; responses: Record<string, { description: string }> }>)) {
        const scope = op.security[0]?.['bearer']?.[0];
        expect(scope, `${method} ${p}`).toMatch(/^(operations:write|operations:read|webhooks:redeliver)$/);
        expect(op.security).toEqual([{ bearer: [scope] }, { jwt: [scope] }]);
        expect(op.responses['403']?.description, `${method} ${p}`).toContain('INSUFFICIENT_SCOPE');
      }
    }
  });

  it('documents exactly the routes express registers', () => {
    const router = (stack.api?.app as unknown as { router: { stack: Layer[] } }).router;
    const registered = new Set(expressRoutes(router.stack));
    const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
    expect(registered.size).toBeGreaterThanOrEqual(9);
    expect([...registered].sort()).toEqual([...documented].sort());
  });

  it('describes real responses', async () => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'o.txt', content: 'openapi' }]);
    expect(operationViewSchema.safeParse(res.body).error).toBeUndefined();
    const got = await (await fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`, { headers: auth(stack.keys.acme) })).json();
    expect(operationViewSchema.safeParse(got).error).toBeUndefined();
    const problem = await (await fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`)).json();
    expect(problemSchema.safeParse(problem).error).toBeUndefined();
  });
});
