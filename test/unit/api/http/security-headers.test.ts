/** The api's security headers (api/http/security-headers.ts): helmet's headers, recorded once, set by one middleware. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Request, Response } from 'express';
import { describe, expect, it } from 'vitest';
import { API_SECURITY_HEADERS, helmetHeaders, securityHeaders } from '@signspool/api/http/security-headers';

/** What helmet 8 sets with API_SECURITY_HEADERS (as helmet's own middleware did on every answer before). */
const EXPECTED: [string, string][] = [
  ['Content-Security-Policy', "default-src 'none';frame-ancestors 'none'"],
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Cross-Origin-Resource-Policy', 'same-origin'],
  ['Origin-Agent-Cluster', '?1'],
  ['Referrer-Policy', 'no-referrer'],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-DNS-Prefetch-Control', 'off'],
  ['X-Download-Options', 'noopen'],
  ['X-Frame-Options', 'DENY'],
  ['X-Permitted-Cross-Domain-Policies', 'none'],
  ['X-XSS-Protection', '0'],
];

describe('securityHeaders', () => {
  it("records helmet's headers for the api's options: every one, no HSTS", () => {
    expect(helmetHeaders(API_SECURITY_HEADERS)).toEqual(EXPECTED);
  });

  it('sets them on every answer', async () => {
    const middleware = securityHeaders();
    const server = http.createServer((req, res) => middleware(req as Request, res as Response, () => res.end('{}')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      await r.arrayBuffer();
      for (const [name, value] of EXPECTED) expect(r.headers.get(name)).toBe(value);
      expect(r.headers.get('strict-transport-security')).toBeNull();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('refuses options with a CSP directive computed per request (it could not be recorded once)', () => {
    expect(() => helmetHeaders({ contentSecurityPolicy: { useDefaults: false, directives: { scriptSrc: [() => "'nonce-abc'"] } } })).toThrow(/per request/);
  });
});
