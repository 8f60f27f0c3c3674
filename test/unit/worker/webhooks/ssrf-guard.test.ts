/**
 * The SSRF guard at connect time: every resolved address is judged, the connection goes to the
 * judged address (so a second, rebinding lookup cannot change it), WEBHOOK_ALLOW exceptions apply
 * per port, and the refusal keeps its detail for the operator's log.
 */
import { describe, expect, it } from 'vitest';
import { SsrfError, SsrfGuard } from '@signspool/worker/webhooks/ssrf-guard';

const resolver = (table: Record<string, string[]>) => {
  const calls: string[] = [];
  return { calls, resolve: async (host: string): Promise<string[]> => (calls.push(host), table[host] ?? []) };
};

describe('SsrfGuard.check', () => {
  it('returns the first address of a name that resolves to public addresses only', async () => {
    const r = resolver({ 'hooks.example.com': ['93.184.216.34', '2606:2800:220:1::1'] });
    const guard = new SsrfGuard({ allow: [], resolve: r.resolve });
    await expect(guard.check('hooks.example.com')).resolves.toBe('93.184.216.34');
  });

  it('refuses a name when any of its addresses is forbidden, naming it for the operator', async () => {
    const r = resolver({ 'mixed.example.com': ['93.184.216.34', '10.0.0.7'] });
    const guard = new SsrfGuard({ allow: [], resolve: r.resolve });
    const err = await guard.check('mixed.example.com').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SsrfError);
    expect((err as Error).message).toContain('10.0.0.7');
  });

  it('refuses a name that does not resolve, and a resolver that fails', async () => {
    const guard = new SsrfGuard({ allow: [], resolve: async () => [] });
    await expect(guard.check('nowhere.example')).rejects.toThrow(/does not resolve/);
    const failing = new SsrfGuard({ allow: [], resolve: async () => Promise.reject(new Error('SERVFAIL')) });
    await expect(failing.check('nowhere.example')).rejects.toBeInstanceOf(SsrfError);
  });

  it('judges literal addresses without a lookup, including trailing-dot and bracketed forms', async () => {
    const r = resolver({});
    const guard = new SsrfGuard({ allow: [], resolve: r.resolve });
    await expect(guard.check('127.0.0.1')).rejects.toBeInstanceOf(SsrfError);
    await expect(guard.check('[::1]')).rejects.toBeInstanceOf(SsrfError);
    await expect(guard.check('8.8.8.8')).resolves.toBe('8.8.8.8');
    expect(r.calls).toEqual([]);
  });

  it('normalises the name before resolving it (LOCALHOST. is localhost)', async () => {
    const r = resolver({ localhost: ['127.0.0.1'] });
    const guard = new SsrfGuard({ allow: [], resolve: r.resolve });
    await expect(guard.check('LOCALHOST.')).rejects.toBeInstanceOf(SsrfError);
    expect(r.calls).toEqual(['localhost']);
  });

  it('admits an allowed network on its ports only, and says when the port is the problem', async () => {
    const r = resolver({ 'hooks.internal': ['10.1.2.3'] });
    const guard = new SsrfGuard({ allow: ['10.0.0.0/8:8443'], resolve: r.resolve });
    await expect(guard.check('hooks.internal', 8443)).resolves.toBe('10.1.2.3');
    await expect(guard.check('hooks.internal', 443)).rejects.toThrow(/lists it for other ports, not 443/);
  });

  it('admits an allowed host name whatever it resolves to', async () => {
    const r = resolver({ 'receiver.test': ['127.0.0.1'] });
    const guard = new SsrfGuard({ allow: ['receiver.test:*'], resolve: r.resolve });
    await expect(guard.check('receiver.test', 9999)).resolves.toBe('127.0.0.1');
  });
});

describe('SsrfGuard.connector', () => {
  it('connects to the address it judged, keeping the name for TLS, with one lookup', async () => {
    const r = resolver({ 'hooks.example.com': ['93.184.216.34'] });
    const guard = new SsrfGuard({ allow: [], resolve: r.resolve });
    const seen: { hostname: string; servername?: string | null | undefined }[] = [];
    const connect = guard.connector(((opts: { hostname: string; servername?: string | null | undefined }, cb: (err: Error | null, socket: null) => void) => {
      seen.push({ hostname: opts.hostname, servername: opts.servername });
      cb(null, null);
    }) as never);
    await new Promise<void>((resolve, reject) =>
      connect(
        { hostname: 'hooks.example.com', protocol: 'https:', port: '', host: 'hooks.example.com' } as never,
        (...args: [Error, null] | [null, unknown]) => (args[0] ? reject(args[0]) : resolve()),
      ),
    );
    expect(seen).toEqual([{ hostname: '93.184.216.34', servername: 'hooks.example.com' }]);
    expect(r.calls).toEqual(['hooks.example.com']);
  });

  it('fails the connection without connecting when the target is refused', async () => {
    const guard = new SsrfGuard({ allow: [], resolve: async () => ['169.254.169.254'] });
    let connected = false;
    const connect = guard.connector((() => (connected = true)) as never);
    const err = await new Promise<Error | null>((resolve) =>
      connect({ hostname: 'metadata.example', protocol: 'https:', port: '', host: 'metadata.example' } as never, (...args: [Error, null] | [null, unknown]) =>
        resolve(args[0]),
      ),
    );
    expect(err).toBeInstanceOf(SsrfError);
    expect(connected).toBe(false);
  });
});
