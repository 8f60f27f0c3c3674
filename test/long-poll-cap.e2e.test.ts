/**
 * Long polls per tenant are capped (LONG_POLL_TENANT_MAX): past the cap a `Prefer: wait` request
 * is answered at once with the current state (no Preference-Applied, Retry-After as any poll),
 * while another tenant's long polls are still held. And GET /v1/limits may be kept a minute by the
 * client only (private) and counts in the tenant's reads per second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, eventually, submit } from './harness/client.js';
import { startStack, type Stack } from './harness/stack.js';

describe('long polls per tenant', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      worker: false,
      env: { LONG_POLL_TENANT_MAX: '3', TENANT_LIMITS: JSON.stringify({ globex: { readsPerSecond: 3 } }) },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const poll = (key: string, id: string, signal?: AbortSignal) =>
    fetch(`${stack.apiUrl}/v1/operations/${id}`, { headers: { ...auth(key), prefer: 'wait=30' }, ...(signal ? { signal } : {}) });

  it('answers a tenant past its cap at once with the current state; another tenant still waits', async () => {
    const acmeOp = (await submit(stack.apiUrl, stack.keys.acme, [{ name: 'a.txt', content: 'a' }])).body.id;
    const globexOp = (await submit(stack.apiUrl, stack.keys.globex, [{ name: 'g.txt', content: 'g' }])).body.id;
    const held = new AbortController();
    const acmeWaits = Array.from({ length: 3 }, () => poll(stack.keys.acme, acmeOp, held.signal).catch(() => undefined));
    await eventually('acme holds 3 long polls', () => stack.api?.waitingRequests === 3);

    // The fourth is not held: answered well before its 30 s wait.
    const fourth = await poll(stack.keys.acme, acmeOp, AbortSignal.timeout(10_000));
    expect(fourth.status).toBe(200);
    expect(fourth.headers.get('preference-applied')).toBeNull();
    expect(fourth.headers.get('retry-after')).toBe('2');
    expect(((await fourth.json()) as { status: string }).status).toBe('queued');
    expect(stack.api?.waitingRequests).toBe(3);

    // globex has its own count: its long poll is held, and answered when its operation ends.
    const globexWait = poll(stack.keys.globex, globexOp);
    await eventually('globex waits too', () => stack.api?.waitingRequests === 4);
    expect((await fetch(`${stack.apiUrl}/v1/operations/${globexOp}`, { method: 'DELETE', headers: auth(stack.keys.globex) })).status).toBe(200);
    const answered = await globexWait;
    expect(answered.headers.get('preference-applied')).toBe('wait=30');
    expect(((await answered.json()) as { status: string }).status).toBe('canceled');

    // A released slot is taken again.
    held.abort();
    await Promise.all(acmeWaits);
    await eventually('acme released its long polls', () => stack.api?.waitingRequests === 0);
    const again = poll(stack.keys.acme, acmeOp);
    await eventually('acme waits again', () => stack.api?.waitingRequests === 1);
    expect((await fetch(`${stack.apiUrl}/v1/operations/${acmeOp}`, { method: 'DELETE', headers: auth(stack.keys.acme) })).status).toBe(200);
    expect((await again).headers.get('preference-applied')).toBe('wait=30');
  });

  it('GET /v1/limits: private, kept a minute at most, and counted in the reads per second', async () => {
    const limits = () => fetch(`${stack.apiUrl}/v1/limits`, { headers: auth(stack.keys.globex) });
    // The previous test may have used this second's quota: the first 200 comes within the next window.
    let ok: Response | undefined;
    await eventually('a 200', async () => (ok = await limits()).status === 200);
    expect(ok?.headers.get('cache-control')).toBe('private, max-age=60');
    const answers = await Promise.all(Array.from({ length: 10 }, limits));
    const limited = answers.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]?.headers.get('retry-after')).not.toBeNull();
    expect(limited[0]?.headers.get('ratelimit-policy')).toBe('"reads";q=3;w=1');
  });
});
