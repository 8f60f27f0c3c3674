/** Which Redis: REDIS_SENTINELS parsing, the options given to ioredis, and descriptions without passwords. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '@signspool/shared/config';
import { describeRedis, redisTargetOptions } from '@signspool/shared/redis/target';

describe('Redis target', () => {
  it('parses REDIS_SENTINELS with REDIS_SENTINEL_NAME into ioredis sentinel options', () => {
    const config = loadConfig({
      REDIS_SENTINELS: 'a.example:26379, 10.0.0.2:26380,[::1]:26381',
      REDIS_SENTINEL_NAME: 'mymaster',
      REDIS_SENTINEL_PASSWORD: 's3cret',
    });
    const options = redisTargetOptions(config);
    expect(options.sentinels).toEqual([
      { host: 'a.example', port: 26379 },
      { host: '10.0.0.2', port: 26380 },
      { host: '::1', port: 26381 },
    ]);
    expect(options.name).toBe('mymaster');
    expect(options.sentinelPassword).toBe('s3cret');
    expect(describeRedis('redis://', config)).toBe('sentinel primary "mymaster" via a.example:26379,10.0.0.2:26380,::1:26381');
    expect(redisTargetOptions(loadConfig({}))).toEqual({});
  });

  it('refuses a sentinel list without a name, or entries without a port', () => {
    expect(() => loadConfig({ REDIS_SENTINELS: 'a:26379' })).toThrow(/REDIS_SENTINEL_NAME/);
    expect(() => loadConfig({ REDIS_SENTINELS: 'a', REDIS_SENTINEL_NAME: 'm' })).toThrow(/REDIS_SENTINELS: entries must be host:port/);
  });

  it('never shows a password', () => {
    expect(describeRedis('redis://user:pw@redis.internal:6380/2', loadConfig({}))).toBe('redis://redis.internal:6380/2');
    expect(describeRedis('rediss://:pw@redis.internal', loadConfig({}))).toBe('rediss://redis.internal');
    expect(describeRedis('/var/lib/signspool/redis/redis.sock?password=pw&db=2', loadConfig({}))).toBe('unix:/var/lib/signspool/redis/redis.sock');
  });
});
