/**
 * How durable an acknowledgement is (DURABILITY). `everysec`: a 202 and a retired upload follow
 * the Redis write at once; with `appendfsync everysec` an OS crash can lose the last second of
 * them. `strict`: both wait until the write is on disk — WAITAOF on Redis ≥ 7.2; on older Redis
 * only `appendfsync always` gives that, and start is refused without it — and, with
 * REDIS_MIN_REPLICAS, until that many replicas have it (WAIT / WAITAOF). At start, Redis's
 * persistence and eviction policy are checked: warnings in `everysec`, refusal in `strict`.
 */
import type { Redis } from 'ioredis';
import type { Logger } from './logger.js';
import { SignspoolError } from './errors.js';

export type DurabilityMode = 'everysec' | 'strict';

export interface DurabilityOptions {
  mode: DurabilityMode;
  minReplicas: number;
  /** How long a strict acknowledgement may wait for fsync or replicas. */
  timeoutMs: number;
}

export class DurabilityError extends Error {}

interface RedisFacts {
  version: [number, number];
  appendonly: string | undefined;
  appendfsync: string | undefined;
  maxmemoryPolicy: string | undefined;
}

const readFacts = async (redis: Redis): Promise<RedisFacts> => {
  const info = await redis.info('server');
  const [major = 0, minor = 0] = (/redis_version:(\d+)\.(\d+)/.exec(info)?.slice(1) ?? []).map(Number);
  const config = async (name: string): Promise<string | undefined> => {
    try {
      const pair = (await redis.config('GET', name)) as string[];
      return pair[1];
    } catch {
      return undefined; // CONFIG disabled (managed Redis)
    }
  };
  return {
    version: [major, minor],
    appendonly: await config('appendonly'),
    appendfsync: await config('appendfsync'),
    maxmemoryPolicy: await config('maxmemory-policy'),
  };
};

/**
 * What keeps this Redis from holding what signspool acknowledges (eviction, no AOF, CONFIG
 * unavailable), one sentence each; empty when nothing. Also used for the start summary.
 */
export const durabilityProblems = async (redis: Redis): Promise<{ version: string; problems: string[]; facts: RedisFacts }> => {
  const f = await readFacts(redis);
  const problems: string[] = [];
  if (f.maxmemoryPolicy !== undefined && f.maxmemoryPolicy !== 'noeviction')
    problems.push(`maxmemory-policy is ${f.maxmemoryPolicy}: Redis may evict operation records and jobs (set noeviction)`);
  if (f.appendonly !== undefined && f.appendonly !== 'yes')
    problems.push('appendonly is off: a Redis restart loses every operation and job (set appendonly yes)');
  if (f.appendonly === undefined) problems.push('CONFIG is not available: persistence and eviction policy cannot be checked');
  return { version: `${f.version[0]}.${f.version[1]}`, problems, facts: f };
};

export class Durability {
  private constructor(
    private readonly opts: DurabilityOptions,
    /** 'waitaof' (Redis ≥ 7.2), 'wait' (replicas only: fsync comes from appendfsync always), or none. */
    private readonly method: 'waitaof' | 'wait' | 'none',
  ) {}

  /** Checks Redis against the mode; throws DurabilityError (one clear line) when `strict` cannot be honoured. */
  static async check(redis: Redis, opts: DurabilityOptions, logger: Logger): Promise<Durability> {
    const { version, problems, facts: f } = await durabilityProblems(redis);
    const hasWaitAof = f.version[0] > 7 || (f.version[0] === 7 && f.version[1] >= 2);
    if (opts.mode === 'everysec') {
      for (const p of problems) logger.warn({ redisVersion: version }, `redis: ${p}`);
      return new Durability(opts, 'none');
    }
    if (!hasWaitAof && f.appendfsync !== 'always') {
      problems.push(`Redis ${version} has no WAITAOF (7.2+): DURABILITY=strict needs appendfsync always there (it is ${f.appendfsync ?? 'unknown'})`);
    }
    if (problems.length > 0) throw new DurabilityError(`DURABILITY=strict cannot be honoured: ${problems.join('; ')}`);
    logger.info({ redisVersion: version, method: hasWaitAof ? 'WAITAOF' : 'appendfsync always', minReplicas: opts.minReplicas }, 'durability: strict');
    return new Durability(opts, hasWaitAof ? 'waitaof' : opts.minReplicas > 0 ? 'wait' : 'none');
  }

  get strict(): boolean {
    return this.opts.mode === 'strict';
  }

  /** Resolves once the writes made so far on `redis` are as durable as the mode promises. */
  async sync(redis: Redis): Promise<void> {
    if (this.method === 'none') return;
    const { minReplicas, timeoutMs } = this.opts;
    if (this.method === 'waitaof') {
      const [local = 0, replicas = 0] = (await redis.call('WAITAOF', 1, minReplicas, timeoutMs)) as number[];
      if (local >= 1 && replicas >= minReplicas) return;
    } else if (((await redis.call('WAIT', minReplicas, timeoutMs)) as number) >= minReplicas) {
      return;
    }
    throw new SignspoolError('SERVICE_UNAVAILABLE', { detail: 'the operation store did not confirm a durable write in time; retry', retryAfterMs: timeoutMs });
  }
}
