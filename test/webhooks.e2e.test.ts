/**
 * Webhooks: Standard Webhooks signatures verified with the `standardwebhooks` package (also during
 * secret rotation), retries with Retry-After, 410 disabling, no redirects, redelivery, and the
 * SSRF guard refusing 25+ forbidden targets without anything reaching a listener.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@signspool/shared/metrics';
import { OperationStore } from '@signspool/shared/operations/store';
import { SsrfGuard } from '@signspool/worker/webhooks/ssrf-guard';
import { WebhookDispatcher } from '@signspool/worker/webhooks/dispatcher';
import { auth, eventually, getOperation, submit } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';
import { captureLogs } from './harness/log-capture.js';
import { startReceiver, type Receiver } from './harness/webhook-receiver.js';

const NEW_SECRET = 'whsec_' + Buffer.from('new-secret-key-0123456789abcdef').toString('base64');
const OLD_SECRET = 'whsec_' + Buffer.from('old-secret-key-0123456789abcdef').toString('base64');

describe('webhooks', () => {
  let stack: Stack;
  let hook: Receiver;
  let redis: Redis;
  let dispatcher: WebhookDispatcher;
  // The dispatcher's log (the operator's view), and the DNS answers it gets for internal names.
  const operatorLog = captureLogs();
  const internalDns: Record<string, string[]> = { 'runsc.internal.test': ['10.1.2.3'] };

  beforeAll(async () => {
    hook = await startReceiver();
    stack = await startStack({
      worker: false,
      env: {
        WEBHOOK_SECRETS: `acme:${NEW_SECRET}|${OLD_SECRET}`,
        // Any port of 127.0.0.1 (the receiver's is random); 10.9.9.9 only on 8443.
        WEBHOOK_ALLOW: '127.0.0.1:*,10.9.9.9:8443',
        WEBHOOK_ALLOW_HTTP: 'true',
        WEBHOOK_SCHEDULE: '0,100ms,200ms,300ms',
        PUBLIC_URL: 'https://signspool.example',
      },
    });
    // The dispatcher runs on its own here (the operations end by cancellation in the api).
    redis = new Redis(stack.config.redisUrl ?? '', { maxRetriesPerRequest: null });
    const store = new OperationStore(redis, { prefix: stack.config.queuePrefix, retentionMs: stack.config.retentionMs });
    dispatcher = new WebhookDispatcher({
      config: stack.config,
      redis,
      store,
      metrics: createMetrics({ defaultMetrics: false }),
      logger: operatorLog.logger,
      resolve: async (host) => internalDns[host] ?? [],
    });
    await dispatcher.start();
  });
  afterAll(async () => {
    await dispatcher?.stop();
    await redis?.quit();
    await stack?.stop();
    await hook?.close();
  });

  const endedOperation = async (webhookUrl: string) => {
    const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'w.pdf', content: 'webhook me' }], { webhookUrl, externalReference: 'wh-1' });
    expect(res.status).toBe(202);
    const del = await fetch(`${stack.apiUrl}/v1/operations/${res.body.id}`, { method: 'DELETE', headers: auth(stack.keys.acme) });
    expect(del.status).toBe(200);
    return res.body.id;
  };

  const deliveries = async (opId: string) =>
    (
      (await getOperation(stack.apiUrl, stack.keys.acme, opId)).body['webhook'] as {
        deliveries: { outcome: string; status: number | null; error?: string; deliveryId: string }[];
      }
    ).deliveries;

  it('delivers operation.completed signed per Standard Webhooks, verifiable with either rotated secret', async () => {
    const before = hook.received.length;
    const opId = await endedOperation(hook.url('/signed'));
    await eventually('webhook received', () => hook.received.length > before);
    const got = hook.received[before];
    expect(got?.path).toBe('/signed');
    const headers = {
      'webhook-id': String(got?.headers['webhook-id']),
      'webhook-timestamp': String(got?.headers['webhook-timestamp']),
      'webhook-signature': String(got?.headers['webhook-signature']),
    };
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    for (const secret of [NEW_SECRET, OLD_SECRET]) {
      const payload = new Webhook(secret).verify(got?.body ?? '', headers) as {
        type: string;
        data: { id: string; status: string; externalReference: string; documents: { error?: { code: string } }[] };
      };
      expect(payload.type).toBe('operation.completed');
      expect(payload.data).toMatchObject({ id: opId, status: 'canceled', externalReference: 'wh-1' });
      expect(payload.data.documents[0]?.error?.code).toBe('CANCELED');
    }
    expect(() => new Webhook('whsec_' + Buffer.from('some-other-secret-000000').toString('base64')).verify(got?.body ?? '', headers)).toThrow();
    expect(got?.body).not.toContain('webhook me');
    await eventually('attempt recorded', async () => (await deliveries(opId)).length === 1);
    expect((await deliveries(opId))[0]).toMatchObject({ outcome: 'delivered', status: 204 });
  });

  it('retries failures on the schedule, honouring Retry-After, with the same webhook-id', async () => {
    const before = hook.received.length;
    hook.script(
      (_q, r) => r.writeHead(500).end(),
      (_q, r) => r.writeHead(503, { 'retry-after': '1' }).end(),
    );
    const opId = await endedOperation(hook.url('/flaky'));
    await eventually('third attempt delivered', () => hook.received.length >= before + 3, 15_000);
    await eventually('three attempts recorded', async () => (await deliveries(opId)).length === 3);
    const rec = await deliveries(opId);
    expect(rec.map((d) => [d.outcome, d.status])).toEqual([
      ['failed', 500],
      ['failed', 503],
      ['delivered', 204],
    ]);
    expect(new Set(hook.received.slice(before).map((r) => r.headers['webhook-id'])).size).toBe(1);
    const at = (await getOperation(stack.apiUrl, stack.keys.acme, opId)).body['webhook'] as { deliveries: { at: string }[] };
    const gap = Date.parse(at.deliveries[2]?.at ?? '') - Date.parse(at.deliveries[1]?.at ?? '');
    expect(gap).toBeGreaterThanOrEqual(950);
    // Three requests reached the endpoint, one per recorded attempt: none after the 204.
    expect(hook.received.slice(before).filter((r) => r.path === '/flaky')).toHaveLength(3);
  });

  it('tells the tenant only that a target is not allowed (nothing of what internal names resolve to); the operator log keeps the detail', async () => {
    const internal = await endedOperation('http://runsc.internal.test/hook');
    const missing = await endedOperation('http://missing.internal.test/hook');
    for (const opId of [internal, missing]) {
      await eventually('refusal recorded', async () => (await deliveries(opId)).length === 1);
      const [d] = await deliveries(opId);
      expect(d?.outcome).toBe('refused');
      // The same words whether the name resolves to a private address or not at all.
      expect(d?.error).toBe((await deliveries(internal))[0]?.error);
      expect(d?.error).toMatch(/not an allowed webhook address/);
      expect(d?.error).not.toMatch(/10\.1\.2\.3|resolves to|does not resolve|runsc|missing/);
    }
    const details = operatorLog.lines.filter((l) => l['msg'] === 'webhook target refused by the SSRF guard').map((l) => String(l['detail']));
    expect(details.some((d) => d.includes('runsc.internal.test resolves to 10.1.2.3'))).toBe(true);
    expect(details.some((d) => d.includes('missing.internal.test does not resolve'))).toBe(true);
  });

  it('does not follow redirects', async () => {
    const before = hook.received.length;
    hook.script(
      (_q, r) => r.writeHead(302, { location: hook.url('/elsewhere') }).end(),
      (_q, r) => r.writeHead(302, { location: hook.url('/elsewhere') }).end(),
      (_q, r) => r.writeHead(302, { location: hook.url('/elsewhere') }).end(),
      (_q, r) => r.writeHead(302, { location: hook.url('/elsewhere') }).end(),
    );
    const opId = await endedOperation(hook.url('/redirecting'));
    await eventually('all attempts made', async () => (await deliveries(opId)).length === 4, 15_000);
    expect((await deliveries(opId)).every((d) => d.outcome === 'failed' && /redirect 302/.test(d.error ?? ''))).toBe(true);
    expect(hook.received.slice(before).every((r) => r.path === '/redirecting')).toBe(true);
  });

  it('disables an endpoint that answers 410 Gone (for a bounded time), and a redelivery request enables it again', async () => {
    hook.script((_q, r) => r.writeHead(410).end());
    const opId = await endedOperation(hook.url('/gone'));
    await eventually('410 recorded', async () => (await deliveries(opId)).some((d) => d.outcome === 'disabled'));
    // Another operation to the same endpoint is not even attempted.
    const second = await endedOperation(hook.url('/gone'));
    await eventually('second delivery recorded', async () => (await deliveries(second)).length > 0);
    expect((await deliveries(second))[0]).toMatchObject({ outcome: 'disabled', status: null });
    const keys = await redis.keys(`${stack.config.queuePrefix}:webhook:disabled*`);
    expect(keys).toHaveLength(1);
    expect(await redis.ttl(keys[0] ?? '')).toBeGreaterThan(0);
    // The endpoint is back: the tenant asks for a redelivery.
    hook.script((_q, r) => r.writeHead(204).end());
    const redeliver = await fetch(`${stack.apiUrl}/v1/operations/${opId}/webhook/redeliver`, { method: 'POST', headers: auth(stack.keys.acme) });
    expect(redeliver.status).toBe(202);
    const { deliveryId } = (await redeliver.json()) as { deliveryId: string };
    await eventually('redelivery recorded', async () => (await deliveries(opId)).some((d) => d.deliveryId === deliveryId));
    expect((await deliveries(opId)).find((d) => d.deliveryId === deliveryId)).toMatchObject({ outcome: 'delivered', status: 204 });
  });

  it('refuses webhook URLs at submission without https or a tenant secret', async () => {
    const noSecret = await submit(stack.apiUrl, stack.keys.globex, [{ name: 'a', content: 'a' }], { webhookUrl: 'https://hooks.example/x' });
    expect([noSecret.status, noSecret.body['code']]).toEqual([422, 'WEBHOOK_SECRET_MISSING']);
    expect(String(noSecret.body['detail'])).toMatch(/WEBHOOK_SECRETS/);
    const notUrl = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a', content: 'a' }], { webhookUrl: 'javascript:alert(1)' });
    expect(notUrl.status).toBe(400);
  });

  it('refuses at submission what can be judged before DNS (422 WEBHOOK_URL_REFUSED with the reason), keeping nothing', async () => {
    const refused: [string, RegExp][] = [
      ['https://user:secret@hooks.example/x', /credentials/],
      ['https://:secret@hooks.example/x', /credentials/],
      ['https://[::127.0.0.1]/x', /loopback, private/],
      ['https://[::ffff:0:127.0.0.1]/x', /loopback, private/],
      ['https://[64:ff9b::10.0.0.1]/x', /loopback, private/],
      ['https://[2002:a00:1::1]/x', /loopback, private/],
      ['https://10.0.0.5/x', /loopback, private/],
      ['https://0x7f000002:6379/x', /127\.0\.0\.2 is a loopback/],
      ['https://10.9.9.9/x', /other ports, not 443/],
      ['https://localhost/x', /names this machine/],
      ['https://a.b.localhost/x', /names this machine/],
      // Fully qualified spellings (trailing dot) name the same machine.
      ['https://localhost./x', /names this machine/],
      ['https://LOCALHOST./x', /names this machine/],
      ['http://localhost.:8080/x', /names this machine/],
      ['https://a.b.localhost./x', /names this machine/],
      ['https://localhost../x', /names this machine/],
    ];
    const { readdir } = await import('node:fs/promises');
    // Files only: the spool's two-character shard directories stay once made.
    const incoming = async () =>
      (await readdir(`${stack.config.spoolDir}/incoming`, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile())
        .map((e) => `${e.parentPath}/${e.name}`)
        .sort();
    const before = await incoming();
    for (const [webhookUrl, reason] of refused) {
      const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a', content: 'a' }], { webhookUrl });
      expect([res.status, res.body['code']], webhookUrl).toEqual([422, 'WEBHOOK_URL_REFUSED']);
      expect(String(res.body['detail']), webhookUrl).toMatch(reason);
      expect(String(res.body['detail']), webhookUrl).not.toContain('secret');
    }
    // Nothing was kept: the spool's incoming directory is as it was.
    expect(await incoming()).toEqual(before);
    // Allowed on its listed port; a public name is judged at connect time.
    for (const webhookUrl of ['https://10.9.9.9:8443/x', 'https://hooks.example/x', `http://127.0.0.1:${new URL(hook.url()).port}/x`]) {
      const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a', content: 'a' }], { webhookUrl });
      expect(res.status, webhookUrl).toBe(202);
    }
  });
});

describe('SSRF guard', () => {
  const forbidden = [
    'http://127.0.0.1/',
    'http://localhost/',
    'http://0.0.0.0/',
    'http://10.0.0.1/',
    'http://172.16.5.4/',
    'http://172.31.255.255/',
    'http://192.168.1.1/',
    'http://169.254.169.254/latest/meta-data/',
    'http://169.254.1.1/',
    'http://100.64.0.1/',
    'http://224.0.0.1/',
    'http://239.255.255.250/',
    'http://255.255.255.255/',
    'http://[::1]/',
    'http://[::]/',
    'http://[fe80::1]/',
    'http://[fc00::1]/',
    'http://[fd12:3456::1]/',
    'http://[fd00:ec2::254]/',
    'http://[ff02::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:169.254.169.254]/',
    'http://[::ffff:10.0.0.1]/',
    'http://[::127.0.0.1]/', // IPv4-compatible
    'http://[::10.0.0.1]/',
    'http://[::ffff:0:127.0.0.1]/', // IPv4-translated
    'http://[::ffff:0:a9fe:a9fe]/',
    'http://[64:ff9b::127.0.0.1]/', // NAT64
    'http://[64:ff9b:1::a00:1]/', // local-use NAT64
    'http://[2002:7f00:1::1]/', // 6to4 of 127.0.0.1
    'http://[2002:a9fe:a9fe::1]/', // 6to4 of 169.254.169.254
    'http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/', // Teredo (embeds 127.0.0.1, inverted)
    'http://2130706433/', // decimal 127.0.0.1
    'http://0177.0.0.1/', // octal
    'http://0x7f.0.0.1/', // hex
    'http://0x7f000001/',
    'http://017700000001/',
    'http://127.1/', // short form
    'http://10.1/',
    'http://0xa9fea9fe/', // 169.254.169.254
    'http://rebind.test/', // resolves to a private address
    'http://mixed.test/', // one public, one private address
  ];
  const resolve = async (host: string): Promise<string[]> =>
    ({ 'rebind.test': ['10.1.2.3'], 'mixed.test': ['93.184.216.34', '192.168.0.10'], localhost: ['127.0.0.1', '::1'] })[host] ?? [];

  it(`refuses ${forbidden.length} forbidden targets before any connection`, async () => {
    expect(forbidden.length).toBeGreaterThanOrEqual(25);
    const guard = new SsrfGuard({ allow: [], resolve });
    let connects = 0;
    // The inner connector is never a real socket: if the guard let a target through, it would be counted here.
    const agent = new Agent({
      connect: guard.connector((_opts, cb) => {
        connects += 1;
        cb(new Error('stub'), null);
      }),
    });
    for (const url of forbidden) {
      const err = await request(url, { dispatcher: agent }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message, url).toMatch(/refused: .* resolves to/);
    }
    expect(connects).toBe(0);
    await agent.close();
  });

  it('lets nothing reach a real loopback listener under any spelling', async () => {
    let connections = 0;
    const server = http.createServer((_q, r) => r.end('reached'));
    server.on('connection', () => (connections += 1));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const guard = new SsrfGuard({ allow: [], resolve });
    const agent = new Agent({ connect: guard.connector() });
    for (const host of ['127.0.0.1', 'localhost', '2130706433', '0177.0.0.1', '0x7f.0.0.1', '127.1', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]']) {
      const err = await request(`http://${host}:${port}/`, { dispatcher: agent }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message, host).toMatch(/refused/);
    }
    expect(connections).toBe(0);
    // A plain host or CIDR in the allowlist admits ports 80 and 443 only, not this one (it could be Redis).
    for (const allow of [['127.0.0.1'], ['127.0.0.0/8'], ['127.0.0.1:6379'], ['localhost'], [`[::1]:${port}`]]) {
      const plain = new Agent({ connect: new SsrfGuard({ allow, resolve }).connector() });
      const err = await request(`http://127.0.0.1:${port}/`, { dispatcher: plain }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message, allow.join()).toMatch(/refused/);
      await plain.close();
    }
    expect(connections).toBe(0);
    // The listed port (or any, with :*) admits it (what tests and local development use).
    for (const allow of [[`127.0.0.1:${port}`], [`127.0.0.0/8:${port}`], ['127.0.0.1:*'], [`localhost:${port}`]]) {
      const allowed = new Agent({ connect: new SsrfGuard({ allow, resolve }).connector() });
      const host = allow[0]?.startsWith('localhost') ? 'localhost' : '127.0.0.1';
      const ok = await request(`http://${host}:${port}/`, { dispatcher: allowed });
      expect(await ok.body.text(), allow.join()).toBe('reached');
      await allowed.close();
    }
    expect(connections).toBe(4);
    await agent.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('admits public addresses', async () => {
    const guard = new SsrfGuard({ allow: [], resolve: async () => ['93.184.216.34'] });
    expect(await guard.check('hooks.example')).toBe('93.184.216.34');
    expect(await guard.check('[2606:4700::1111]')).toBe('2606:4700::1111');
  });
});
