/**
 * The security headers of every answer (nosniff, no framing, a CSP that allows nothing: the API
 * serves JSON; /docs and /admin/queues set their own CSP). Helmet decides them, once at start:
 * its middleware runs against a recording response, and each request then gets the recorded
 * headers from one middleware instead of passing through helmet's eleven. HSTS belongs to the
 * TLS terminator in front of the api.
 */
import type { Request, RequestHandler, Response } from 'express';
import helmet, { type HelmetOptions } from 'helmet';

export const API_SECURITY_HEADERS: Readonly<HelmetOptions> = {
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  strictTransportSecurity: false,
  frameguard: { action: 'deny' },
};

/** The headers helmet sets with `options` (it may only set static headers: nothing per request). */
export const helmetHeaders = (options: Readonly<HelmetOptions>): [string, string][] => {
  const csp = options.contentSecurityPolicy;
  const directives = typeof csp === 'object' ? Object.values(csp.directives ?? {}) : [];
  if (directives.some((d) => typeof d === 'function' || (typeof d === 'object' && d !== null && [...d].some((v) => typeof v === 'function'))))
    throw new Error('security headers: a CSP directive computed per request cannot be recorded once');
  const headers: [string, string][] = [];
  let done = false;
  const recorder = {
    setHeader: (name: string, value: unknown) => headers.push([name, String(value)]),
    removeHeader: () => undefined,
  };
  helmet(options)({ headers: {} } as Request, recorder as unknown as Response, (err?: unknown) => {
    if (err) throw err instanceof Error ? err : new Error(String(err));
    done = true;
  });
  if (!done) throw new Error('helmet did not set its headers synchronously');
  return headers;
};

/** Middleware: sets the headers helmet would set with `options` (or the headers helmetHeaders gave). */
export const securityHeaders = (options: Readonly<HelmetOptions> | readonly (readonly [string, string])[] = API_SECURITY_HEADERS): RequestHandler => {
  const headers = Array.isArray(options) ? options : helmetHeaders(options as Readonly<HelmetOptions>);
  return (_req, res, next) => {
    for (const [name, value] of headers) res.setHeader(name, value);
    next();
  };
};
