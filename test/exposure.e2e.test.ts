/**
 * What the network sees on each port: by default the api's /metrics is on a port of its own
 * (METRICS_PORT, 9465), never on the api's; /docs and /openapi.json on the api's port unless
 * DOCS_PUBLIC=false; METRICS_PORT=api puts /metrics on the api's port, only with METRICS_TOKEN;
 * METRICS_TOKEN puts /metrics behind a bearer token (api and worker).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@signspool/shared/config';
import { createMetrics } from '@signspool/shared/metrics';
import { ServiceHttpServer } from '@signspool/shared/service-http';
import { startStack, type Stack } from './harness/stack.js';

const TOKEN = 'metrics-token-0123456789abcdef';

describe('what each port exposes', () => {
  const stacks: Stack[] = [];
  afterAll(async () => {
    await Promise.all(stacks.map((s) => s.stop()));
  });
  const start = async (env: Record<string, string>): Promise<Stack> => {
    const s = await startStack({ worker: false, env });
    stacks.push(s);
    return s;
  };
  const status = async (url: string, headers: Record<string, string> = {}) => (await fetch(url, { headers })).status;

  it('by default serves /metrics on its own port (9465), not on the api port; /docs and /openapi.json on the api port', async () => {
    expect(loadConfig({}).metrics.port).toBe(9465);
    // The harness sets METRICS_PORT=0 (tests run side by side); everything else is the default.
    const s = await start({});
    const onApi = await fetch(`${s.apiUrl}/metrics`);
    expect(onApi.status).toBe(404);
    expect(((await onApi.json()) as { code: string }).code).toBe('ROUTE_NOT_FOUND');
    expect(new URL(s.metricsUrl).port).not.toBe(new URL(s.apiUrl).port);
    expect(await status(s.metricsUrl)).toBe(200);
    expect(await status(`${s.apiUrl}/docs`)).toBe(200);
    expect(await status(`${s.apiUrl}/openapi.json`)).toBe(200);
  });

  it('METRICS_PORT=api needs METRICS_TOKEN, and must differ from PORT otherwise', () => {
    expect(() => loadConfig({ METRICS_PORT: 'api' })).toThrow(/METRICS_PORT: .*METRICS_TOKEN/);
    expect(() => loadConfig({ METRICS_PORT: '8080', PORT: '8080' })).toThrow(/METRICS_PORT: must differ from PORT/);
    expect(() => loadConfig({ METRICS_PORT: 'nine' })).toThrow(/METRICS_PORT/);
    expect(loadConfig({ METRICS_PORT: 'api', METRICS_TOKEN: TOKEN }).metrics.port).toBeUndefined();
  });

  it('with METRICS_PORT and DOCS_PUBLIC=false, the api port serves the API only', async () => {
    const s = await start({ METRICS_PORT: '0', METRICS_TOKEN: TOKEN, DOCS_PUBLIC: 'false' });
    for (const p of ['/metrics', '/docs', '/openapi.json', '/docs/assets/swagger-ui.css']) {
      const res = await fetch(`${s.apiUrl}${p}`);
      expect(res.status, p).toBe(404);
      expect(((await res.json()) as { code: string }).code, p).toBe('ROUTE_NOT_FOUND');
    }
    const metricsUrl = s.api?.metricsUrl ?? '';
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(new URL(metricsUrl).port).not.toBe(new URL(s.apiUrl).port);
    const denied = await fetch(metricsUrl);
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toContain('Bearer');
    expect(await status(metricsUrl, { authorization: `Bearer ${TOKEN}x` })).toBe(401);
    const ok = await fetch(metricsUrl, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('signspool_');
    // Nothing else on the metrics port, not even the API.
    expect(await status(metricsUrl.replace('/metrics', '/v1/operations'), { authorization: `Bearer ${TOKEN}` })).toBe(404);
    // The health checks stay open on the api port.
    expect(await status(`${s.apiUrl}/healthz`)).toBe(200);
  });

  it('with METRICS_PORT=api, /metrics on the api port needs the token', async () => {
    const s = await start({ METRICS_PORT: 'api', METRICS_TOKEN: TOKEN });
    expect(s.metricsUrl).toBe(`${s.apiUrl}/metrics`);
    const denied = await fetch(`${s.apiUrl}/metrics`);
    expect(denied.status).toBe(401);
    expect(denied.headers.get('content-type')).toContain('application/problem+json');
    expect(await status(`${s.apiUrl}/metrics`, { authorization: `Bearer ${TOKEN}` })).toBe(200);
  });

  it("the worker's /metrics needs METRICS_TOKEN when set; its health checks do not", async () => {
    const server = new ServiceHttpServer({
      host: '127.0.0.1',
      port: 0,
      metrics: { metrics: createMetrics({ defaultMetrics: false }), token: TOKEN },
      readiness: async () => ({ ready: true, checks: {} }),
    });
    const url = await server.start();
    try {
      expect(await status(`${url}/metrics`)).toBe(401);
      expect(await status(`${url}/metrics`, { authorization: `Bearer ${TOKEN}` })).toBe(200);
      expect(await status(`${url}/healthz`)).toBe(200);
      expect(await status(`${url}/readyz`)).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it('api and worker answer /readyz in one shape: 200 with each check, else 503 problem+json naming what fails', async () => {
    const s = await start({});
    const api = await fetch(`${s.apiUrl}/readyz`);
    expect(api.status).toBe(200);
    expect(await api.json()).toEqual({ status: 'ready', checks: { redis: 'ok', spool: 'ok' } });
    let ready = true;
    const server = new ServiceHttpServer({
      host: '127.0.0.1',
      port: 0,
      readiness: async () => ({ ready, checks: { redis: ready ? 'ok' : 'no answer within 1000 ms', spool: 'ok' } }),
    });
    const url = await server.start();
    try {
      expect(await (await fetch(`${url}/readyz`)).json()).toEqual({ status: 'ready', checks: { redis: 'ok', spool: 'ok' } });
      ready = false;
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(await res.json()).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        detail: 'redis: no answer within 1000 ms',
        checks: { redis: 'no answer within 1000 ms', spool: 'ok' },
      });
      // Served only what it was given: no /metrics here.
      expect(await status(`${url}/metrics`)).toBe(404);
    } finally {
      await server.stop();
    }
  });
});
