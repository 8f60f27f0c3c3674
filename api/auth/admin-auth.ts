/**
 * The operators' credential: `Authorization: Bearer <ADMIN_TOKEN>` (or HTTP Basic with the token as
 * password, so a browser can open /admin/queues). Compared in constant time through sha256;
 * API keys never grant it, and it grants no tenant's operations.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { SignspoolError } from '@signspool/shared/errors';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The token presented by a request: a bearer token, or the password of Basic credentials. */
const presentedToken = (header: string): string | undefined => {
  const bearer = /^Bearer\s+(\S{1,512})$/i.exec(header);
  if (bearer?.[1]) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]{1,1024})$/i.exec(header);
  if (!basic?.[1]) return undefined;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
};

/** `challenge` is the WWW-Authenticate scheme offered on 401 (Basic for the browser UI). */
export const requireAdminToken = (token: string, challenge: 'Bearer' | 'Basic' = 'Bearer'): RequestHandler => {
  const expected = digest(token);
  return (req, res, next) => {
    const header = req.headers.authorization ?? '';
    const presented = presentedToken(header);
    if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
      res.setHeader('WWW-Authenticate', `${challenge} realm="signspool admin"`);
      next(new SignspoolError('UNAUTHORIZED', { detail: header ? 'the admin token is not valid' : 'send Authorization: Bearer <ADMIN_TOKEN>' }));
      return;
    }
    next();
  };
};
