/**
 * Idempotent submission: `Idempotency-Key` on POST /v1/operations, scoped per tenant, kept
 * IDEMPOTENCY_TTL in Redis (only a hash of the key is stored).
 *  - first request: the key is reserved (`pending`) before the upload; success stores the
 *    fingerprint and the 202 answer, in the submission's commit itself (so a commit that stands
 *    always leaves its 202 to replay, even when its own answer was lost); failure releases the key
 *    (a failed upload does not burn it);
 *  - same key while the first is still uploading → 409;
 *  - same key and same request (fingerprint over the fields and each file's sha256) → the
 *    original 202 again, no new operation;
 *  - same key, different request → 422.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { SignspoolError } from '@signspool/shared/errors';
import { keys } from '@signspool/shared/redis/keys';

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

const completedSchema = z.object({
  state: z.literal('completed'),
  fingerprint: z.string(),
  location: z.string(),
  body: z.unknown(),
});
const recordSchema = z.union([z.object({ state: z.literal('pending'), token: z.string() }), completedSchema]);
export type CompletedSubmission = z.infer<typeof completedSchema>;

export const submissionFingerprint = (fields: Record<string, string | undefined>, files: { sha256: string; size: number }[]): string =>
  createHash('sha256')
    .update(
      JSON.stringify({
        fields: Object.entries(fields)
          .filter(([, v]) => v !== undefined)
          .sort(([a], [b]) => a.localeCompare(b)),
        files: files.map((f) => [f.sha256, f.size]),
      }),
    )
    .digest('hex');

export type Reservation =
  | {
      kind: 'reserved';
      /** The completed record, for the submission's commit to write (acceptOperation's `also`): the 202 and its acceptance are one step. */
      completion: (fingerprint: string, location: string, body: unknown) => { key: string; value: string; ttlMs: number };
      release: () => Promise<void>;
    }
  | { kind: 'completed'; record: CompletedSubmission };

export class IdempotencyStore {
  /**
   * `pendingTtlMs`: how long a reservation of an upload in progress lives if its api dies or loses
   * Redis before answering (ORPHAN_GRACE: an upload older than that is abandoned anyway, its files
   * removed by the janitor); a retry with the same key gets 409 until then.
   */
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlMs: number,
    private readonly pendingTtlMs: number,
  ) {}

  static parseKey(raw: string | undefined): string | undefined {
    if (raw === undefined) return undefined;
    if (!KEY_PATTERN.test(raw)) throw new SignspoolError('VALIDATION_FAILED', { detail: 'Idempotency-Key must be 1 to 255 printable ASCII characters' });
    return raw;
  }

  private redisKey(tenant: string, key: string): string {
    return keys.idempotency(this.prefix, tenant, key);
  }

  /** Reserves the key, or tells what an earlier request with it left. Throws 409 while one is in progress. */
  async reserve(tenant: string, key: string, token: string): Promise<Reservation> {
    const rk = this.redisKey(tenant, key);
    const ok = await this.redis.set(rk, JSON.stringify({ state: 'pending', token }), 'PX', Math.max(1000, this.pendingTtlMs), 'NX');
    if (ok === 'OK') {
      return {
        kind: 'reserved',
        completion: (fingerprint, location, body) => ({
          key: rk,
          value: JSON.stringify({ state: 'completed', fingerprint, location, body } satisfies CompletedSubmission),
          ttlMs: this.ttlMs,
        }),
        release: async () => {
          // Only our own reservation is released.
          await this.redis.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            1,
            rk,
            JSON.stringify({ state: 'pending', token }),
          );
        },
      };
    }
    const raw = await this.redis.get(rk);
    const parsed = raw === null ? undefined : recordSchema.safeParse(JSON.parse(raw));
    if (parsed?.success && parsed.data.state === 'completed') return { kind: 'completed', record: parsed.data };
    throw new SignspoolError('IDEMPOTENCY_KEY_IN_USE', { detail: 'a request with this Idempotency-Key is still in progress; retry later', retryAfterMs: 1000 });
  }
}
