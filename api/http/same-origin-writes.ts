/**
 * Refuses cross-site writes to a browser-facing route (the Bull Board's API, which browsers reach
 * with HTTP Basic credentials they resend by themselves): a request that changes something must
 * come from the same origin. `Sec-Fetch-Site` other than `same-origin`, or an `Origin` other than
 * this server's (or PUBLIC_URL's), is refused; and one of the two must say same-origin, or the
 * body must be JSON (which no HTML form can send), so an old browser's form post is refused too.
 */
import type { Request, RequestHandler } from 'express';
import { SignspoolError } from '@signspool/shared/errors';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The origins this server answers as: the request's own (scheme from TRUST_PROXY), and PUBLIC_URL's. */
const ownOrigins = (req: Request, publicUrl: string | undefined): string[] => {
  const mine = [`${req.protocol}://${req.get('host') ?? ''}`];
  if (publicUrl !== undefined) mine.push(new URL(publicUrl).origin);
  return mine;
};

export const sameOriginWrites =
  (opts: { publicUrl: string | undefined }): RequestHandler =>
  (req, _res, next) => {
    if (SAFE.has(req.method)) return next();
    const site = req.get('sec-fetch-site');
    const origin = req.get('origin');
    const sameSite = site === 'same-origin';
    const sameOrigin = origin !== undefined && ownOrigins(req, opts.publicUrl).includes(origin);
    const json = req.is('application/json') === 'application/json';
    if ((site !== undefined && !sameSite) || (origin !== undefined && !sameOrigin) || !(sameSite || sameOrigin || json)) {
      return next(new SignspoolError('CROSS_SITE_REQUEST', { detail: 'changes are accepted from this origin only (a same-origin request, or a JSON body)' }));
    }
    next();
  };
