/** Middlewares as one layer (api/http/chain.ts): in order, and an error in any form skips the rest. */
import type { Request, RequestHandler, Response } from 'express';
import { describe, expect, it } from 'vitest';
import { chain } from '@signspool/api/http/chain';

/** Runs `handlers` as one chain; resolves with what the chain passed on, and the names of the handlers that ran. */
const run = (handlers: (ran: string[]) => RequestHandler[]): Promise<{ passed: unknown; ran: string[] }> => {
  const ran: string[] = [];
  return new Promise((resolve) => {
    chain(...handlers(ran))({} as Request, {} as Response, (passed?: unknown) => resolve({ passed, ran }));
  });
};

const step =
  (name: string): ((ran: string[]) => RequestHandler) =>
  (ran) =>
  (_req, _res, next) => {
    ran.push(name);
    next();
  };

describe('chain', () => {
  it('runs each handler when the one before calls next, then passes on', async () => {
    const later: (ran: string[]) => RequestHandler = (ran) => (_req, _res, next) => {
      ran.push('later');
      setImmediate(next);
    };
    expect(await run((ran) => [step('a')(ran), later(ran), step('b')(ran)])).toEqual({ passed: undefined, ran: ['a', 'later', 'b'] });
  });

  it.each([
    ['passed to next', (): RequestHandler => (_req, _res, next) => next(new Error('boom'))],
    [
      'thrown',
      (): RequestHandler => () => {
        throw new Error('boom');
      },
    ],
    ['a rejected promise', (): RequestHandler => () => Promise.reject(new Error('boom'))],
  ])('an error %s skips the rest and is passed on', async (_how, failing) => {
    const { passed, ran } = await run((r) => [step('a')(r), failing(), step('b')(r)]);
    expect(ran).toEqual(['a']);
    expect(passed).toBeInstanceOf(Error);
    expect((passed as Error).message).toBe('boom');
  });
});
