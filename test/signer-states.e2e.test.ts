/**
 * Signing identities' states as workers publish them (shared/circuit-state.ts), against real
 * Redis: GET /v1/admin/signers reads one state per identity over the live workers — the worst
 * circuit, the latest token expiry and error — and stops reporting a worker that went silent.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { forgetSignerStates, publishSignerStates, readSignerStates } from '@signspool/shared/circuit-state';

let redis: Redis;
const prefix = `t${randomBytes(5).toString('hex')}`;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});

afterAll(() => {
  redis.disconnect();
});

describe('signer states', () => {
  it('merge the live workers: worst circuit, latest token expiry and error; silent workers expire; removed identities go', async () => {
    const now = Date.now();
    await publishSignerStates(
      redis,
      prefix,
      { a: { circuit: 'closed', tokenValidUntil: now + 1000 }, b: { circuit: 'half_open', lastError: { code: 'UPSTREAM_NETWORK', at: now - 50 } } },
      60_000,
      'w1',
    );
    await publishSignerStates(
      redis,
      prefix,
      { a: { circuit: 'open', tokenValidUntil: now + 5000, lastError: { code: 'UPSTREAM_TIMEOUT', at: now - 10 } }, b: { circuit: 'closed' } },
      60_000,
      'w2',
    );
    await publishSignerStates(redis, prefix, { c: { circuit: 'closed', certificate: { subject: 'CN=c', notAfter: now + 86_400_000 } } }, 1_000, 'w3');
    expect(await readSignerStates(redis, prefix, now)).toEqual({
      a: { circuit: 'open', tokenValidUntil: now + 5000, lastError: { code: 'UPSTREAM_TIMEOUT', at: now - 10 } },
      b: { circuit: 'half_open', lastError: { code: 'UPSTREAM_NETWORK', at: now - 50 } },
      c: { circuit: 'closed', certificate: { subject: 'CN=c', notAfter: now + 86_400_000 } },
    });
    // w3 stopped publishing: its entry expires and is removed.
    expect(await readSignerStates(redis, prefix, now + 2_000)).not.toHaveProperty('c');
    expect(await redis.hlen(`${prefix}:signer-states`)).toBe(4);
    // w2 no longer signs for a (removed by a reload): only w1's state of a remains.
    await forgetSignerStates(redis, prefix, ['a'], 'w2');
    expect((await readSignerStates(redis, prefix, now))['a']).toEqual({ circuit: 'closed', tokenValidUntil: now + 1000 });
  });
});
