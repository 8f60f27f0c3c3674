/**
 * The route a request is labelled with in signspool_http_request_duration_seconds and refusal log
 * lines: the matched route's whole path (`/v1/operations/:id`). Express restores `req.baseUrl` when
 * an error leaves a mounted router, so by the time the error handler answers only the route's own
 * path (`/:id`) is left; the mount is remembered when the request enters it.
 */
import type { IncomingMessage } from 'node:http';
import type { Request, RequestHandler } from 'express';

const mounts = new WeakMap<IncomingMessage, string>();

/** Placed first in a mount's middleware: remembers where the request entered. */
export const rememberMount: RequestHandler = (req, _res, next) => {
  mounts.set(req, req.baseUrl);
  next();
};

/** The matched route's whole path, or undefined when no route matched. */
export const routeLabel = (req: Request): string | undefined => (req.route ? `${mounts.get(req) ?? req.baseUrl}${String(req.route.path)}` : undefined);
