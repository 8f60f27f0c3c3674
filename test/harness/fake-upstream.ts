/**
 * The fake Sign'Stash for a describe block: started before its tests, stopped after them, with the
 * client id and secret every test stack uses. `fake()` returns it inside a test or hook.
 */
import { afterAll, beforeAll } from 'vitest';
import { FakeSignstash, type FakeSignstashOptions } from '../fake-signstash/server.js';

export const useFakeSignstash = (opts: FakeSignstashOptions = {}): (() => FakeSignstash) => {
  let fake: FakeSignstash | undefined;
  beforeAll(async () => {
    fake = new FakeSignstash({ clientId: 'signspool', clientSecret: 'signspool-secret', perRequestMs: 20, bytesPerSec: 500e6, ...opts });
    await fake.start();
  });
  afterAll(async () => {
    await fake?.stop();
  });
  return () => {
    if (!fake) throw new Error("the fake Sign'Stash is used outside its describe block");
    return fake;
  };
};
