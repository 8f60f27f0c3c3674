/** Config parsing (unit): defaults, one line naming each bad variable, *_FILE secrets; docs/configuration.md's table. */
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, loadConfig, parseBytes, parseDuration } from '@signspool/shared/config';
import { assertHandlers } from '@signspool/shared/queue';

describe('config', () => {
  it('has defaults that start the local signer', () => {
    const c = loadConfig({});
    expect(c.signer).toBe('local');
    expect(c.batch).toEqual({ maxDocs: 50, maxBytes: 128 * 1024 * 1024, lingerMs: 250 });
    expect(c.upload.maxFileBytes).toBeGreaterThanOrEqual(20_000_000);
    expect(c.upload.maxFiles * c.upload.maxFileBytes).toBeGreaterThanOrEqual(50 * 20_000_000);
    expect(c.upload.maxTotalBytes).toBeGreaterThanOrEqual(50 * 20_000_000);
    expect(c.defaultSignatureType).toBe('CAdES');
    // A worker role process runs below the api's priority unless told otherwise.
    expect(c.workerNice).toBe(10);
  });

  it('names every bad variable, and never echoes values', () => {
    let err: unknown;
    try {
      loadConfig({ BATCH_MAX_DOCS: '0', BATCH_LINGER: 'soon', API_KEYS: 'hunter2', PORT: 'x' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg.split('\n')).toHaveLength(1);
    for (const name of ['BATCH_MAX_DOCS', 'BATCH_LINGER', 'PORT', 'API_KEYS']) expect(msg).toContain(name);
    expect(msg).not.toContain('hunter2');
    // Cross-field rules: SIGNER=signstash needs its four settings.
    expect(() => loadConfig({ SIGNER: 'signstash', SIGNSTASH_CLIENT_SECRET: 'hunter2' })).toThrow(
      /SIGNSTASH_URL: is required when SIGNER=signstash; SIGNSTASH_AUTH_URL: .*SIGNSTASH_CLIENT_ID: /,
    );
  });

  it('takes REDIS_URL as redis://, rediss://, a socket path or unix:///path, and refuses other schemes', () => {
    expect(loadConfig({ REDIS_URL: 'redis://:pw@10.0.0.5:6380/2' }).redisUrl).toBe('redis://:pw@10.0.0.5:6380/2');
    expect(loadConfig({ REDIS_URL: 'rediss://cache.example:6380' }).redisUrl).toBe('rediss://cache.example:6380');
    expect(loadConfig({ REDIS_URL: '/run/redis/redis.sock?db=2' }).redisUrl).toBe('/run/redis/redis.sock?db=2');
    // The unix:// form ioredis would silently take for 127.0.0.1:6379.
    expect(loadConfig({ REDIS_URL: 'unix:///run/redis/redis.sock?password=pw&db=2' }).redisUrl).toBe('/run/redis/redis.sock?password=pw&db=2');
    expect(loadConfig({ REDIS_URL: 'unix:/run/redis/redis.sock' }).redisUrl).toBe('/run/redis/redis.sock');
    for (const bad of ['unix://redis-host/run/redis.sock', 'http://127.0.0.1:6379', '127.0.0.1:6379', 'redis-sentinel://x:26379']) {
      expect(() => loadConfig({ REDIS_URL: bad }), bad).toThrow(/REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    }
  });

  it('reads secrets from <NAME>_FILE', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cfg-'));
    await writeFile(path.join(dir, 'secret'), 's3cret\n');
    const c = loadConfig({
      SIGNER: 'signstash',
      SIGNSTASH_URL: 'https://proxy.example/signstash/einvoice-integration-client-ws',
      SIGNSTASH_AUTH_URL: 'https://auth.example/oauth2/authorization-server',
      SIGNSTASH_CLIENT_ID: 'alias',
      SIGNSTASH_CLIENT_SECRET_FILE: path.join(dir, 'secret'),
    });
    expect(c.signstash.clientSecret).toBe('s3cret');
    expect(() => loadConfig({ SIGNSTASH_CLIENT_SECRET_FILE: path.join(dir, 'missing') })).toThrow(/SIGNSTASH_CLIENT_SECRET_FILE/);
  });

  it('parses API_KEYS entries', () => {
    const hash = 'a'.repeat(64);
    const all = ['operations:write', 'operations:read', 'webhooks:redeliver'];
    // The first syntax (tenant:hash) still parses, with a derived name and every scope.
    expect(loadConfig({ API_KEYS: `acme:${hash}, globex:${'B'.repeat(64)}` }).apiKeys).toEqual([
      { tenant: 'acme', name: 'key-aaaaaaaa', hash, scopes: all },
      { tenant: 'globex', name: 'key-bbbbbbbb', hash: 'b'.repeat(64), scopes: all },
    ]);
    // Several named keys per tenant, with scopes.
    expect(loadConfig({ API_KEYS: `acme/old:${hash},acme/new-2027:${'c'.repeat(64)}:operations:read+webhooks:redeliver` }).apiKeys).toEqual([
      { tenant: 'acme', name: 'old', hash, scopes: all },
      { tenant: 'acme', name: 'new-2027', hash: 'c'.repeat(64), scopes: ['operations:read', 'webhooks:redeliver'] },
    ]);
    for (const bad of [
      'acme:short',
      `acme:${hash}:operations:admin`,
      `acme/x:${hash},acme/x:${'c'.repeat(64)}`,
      `acme/a:${hash},globex/b:${hash}`,
      `ac me:${hash}`,
    ]) {
      expect(() => loadConfig({ API_KEYS: bad }), bad).toThrow(/API_KEYS/);
    }
  });

  it('parses WEBHOOK_ALLOW entries with ports, and refuses malformed ones', () => {
    const ok = [
      'hooks.internal',
      'hooks.internal:8443',
      'hooks.internal:*',
      '10.0.0.0/8',
      '10.0.0.0/8:8443',
      '10.1.2.3:*',
      '[fd00::/8]:443',
      '[::1]:*',
      'fd00::/8',
    ];
    expect(loadConfig({ WEBHOOK_ALLOW: ok.join(',') }).webhooks.allow).toEqual(ok);
    for (const bad of [
      'hooks.internal:0',
      'hooks.internal:70000',
      'hooks.internal:http',
      '10.0.0.0/33',
      '[hooks.internal]:443',
      'a/b/c',
      'under_score.example',
    ]) {
      expect(() => loadConfig({ WEBHOOK_ALLOW: bad }), bad).toThrow(/WEBHOOK_ALLOW/);
    }
  });

  it('requires issuer and audience with AUTH_JWKS_URL, and client certificate and key together', () => {
    expect(() => loadConfig({ AUTH_JWKS_URL: 'https://idp.example/jwks' })).toThrow(/AUTH_ISSUER.*AUTH_AUDIENCE/);
    expect(() => loadConfig({ AUTH_JWKS_URL: 'https://idp.example/jwks', AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a', AUTH_ALGORITHMS: 'none' })).toThrow(
      /AUTH_ALGORITHMS/,
    );
    expect(() => loadConfig({ AUTH_JWKS_URL: 'https://idp.example/jwks', AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a', AUTH_ALGORITHMS: 'HS256' })).toThrow(
      /AUTH_ALGORITHMS/,
    );
    expect(loadConfig({ AUTH_JWKS_URL: 'https://idp.example/jwks', AUTH_ISSUER: 'i', AUTH_AUDIENCE: 'a' }).jwt).toMatchObject({
      tenantClaim: 'tenant',
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    });
    expect(() => loadConfig({ SIGNSTASH_CLIENT_CERT_FILE: '/c.pem' })).toThrow(/SIGNSTASH_CLIENT_KEY_FILE/);
    expect(() => loadConfig({ WEBHOOK_ENDPOINTS: 'acme=https://u:p@hooks.example/x' })).toThrow(/WEBHOOK_ENDPOINTS/);
  });

  it('turns tracing on only with an OTLP endpoint, and parses its settings', async () => {
    expect(loadConfig({}).tracing).toEqual({ tracesUrl: undefined, protocol: 'http/protobuf', headers: {}, serviceName: undefined });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing.tracesUrl).toBe('http://collector:4318/v1/traces');
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example/base' }).tracing.tracesUrl).toBe('https://otlp.example/base/v1/traces');
    // The traces endpoint is taken as it is, and wins.
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:9999/custom' }).tracing.tracesUrl).toBe(
      'http://b:9999/custom',
    );
    const c = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'sp-eu',
      OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer%20abc, x-tenant = t1',
    });
    expect(c.tracing).toEqual({
      tracesUrl: 'http://a:4318/v1/traces',
      protocol: 'http/json',
      serviceName: 'sp-eu',
      headers: { authorization: 'Bearer abc', 'x-tenant': 't1' },
    });
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL: must be http\/protobuf or http\/json/);
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
    for (const bad of ['novalue', '=x', 'a b=c', 'a=%zz', 'a=x%0Ay']) {
      let msg = '';
      try {
        loadConfig({ OTEL_EXPORTER_OTLP_HEADERS: bad });
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg, bad).toMatch(/^invalid configuration: OTEL_EXPORTER_OTLP_HEADERS: /);
      expect(msg).not.toContain(bad);
    }
    // The headers may hold a vendor's key: they may come from a file.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cfg-'));
    await writeFile(path.join(dir, 'headers'), 'api-key=s3cret\n');
    expect(loadConfig({ OTEL_EXPORTER_OTLP_HEADERS_FILE: path.join(dir, 'headers') }).tracing.headers).toEqual({ 'api-key': 's3cret' });
  });

  it('parses durations and sizes', () => {
    expect([parseDuration('250'), parseDuration('250ms'), parseDuration('2s'), parseDuration('24h'), parseDuration('x')]).toEqual([
      250,
      250,
      2000,
      86_400_000,
      undefined,
    ]);
    expect([parseBytes('1024'), parseBytes('20MB'), parseBytes('20MiB'), parseBytes('1 GiB')]).toEqual([1024, 20_000_000, 20 * 1024 * 1024, 1024 ** 3]);
  });

  it('checks that every job name has exactly one handler', () => {
    expect(() => assertHandlers('sign', ['sign-document'])).not.toThrow();
    expect(() => assertHandlers('sign', [])).toThrow(/missing: sign-document/);
    expect(() => assertHandlers('sign', ['sign-document', 'sign-document'])).toThrow(/duplicated: sign-document/);
    expect(() => assertHandlers('sign', ['sign-document', 'other'])).toThrow(/unknown: other/);
  });
});

/**
 * The variables docs/configuration.md's table names: the backquoted names in the first cell of
 * each row of its table (a cell may name several: `A` / `B`).
 */
const readmeVariables = (readme: string): string[] => {
  return readme
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .flatMap((line) => [...(line.split('|')[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? ''));
};

describe("docs/configuration.md's table", () => {
  const readme = readFileSync(path.resolve(import.meta.dirname, '../../../docs/configuration.md'), 'utf8');
  const documented = readmeVariables(readme);

  it('names every variable of CONFIG_VARIABLES, and only those', () => {
    expect(documented.length).toBeGreaterThan(20);
    expect(
      CONFIG_VARIABLES.filter((v) => !documented.includes(v)),
      'in CONFIG_VARIABLES, missing from docs/configuration.md',
    ).toEqual([]);
    expect(
      documented.filter((v) => !CONFIG_VARIABLES.includes(v)),
      'in docs/configuration.md, not in CONFIG_VARIABLES',
    ).toEqual([]);
  });

  it('names each variable once', () => {
    expect(documented.filter((v, i) => documented.indexOf(v) !== i)).toEqual([]);
  });
});
