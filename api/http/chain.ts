/**
 * Several middlewares as one express layer: each runs when the one before it calls next(), an
 * error (passed to next, thrown, or a rejected promise, as express 5 takes them) skips the rest
 * and goes to the router's error handlers. Express matches the path and wraps the call again for
 * every layer it passes through; middlewares that run for every request of a mount point gain
 * nothing from that.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';

export const chain =
  (...handlers: readonly RequestHandler[]): RequestHandler =>
  (req: Request, res: Response, done: NextFunction): void => {
    let i = 0;
    const next = (err?: unknown): void => {
      const handler = handlers[i++];
      if (err !== undefined || handler === undefined) {
        done(err);
        return;
      }
      try {
        const ret = handler(req, res, next) as unknown;
        if (ret instanceof Promise) ret.catch((error: unknown) => done(error ?? new Error('Rejected promise')));
      } catch (error) {
        done(error);
      }
    };
    next();
  };
