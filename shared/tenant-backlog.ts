/**
 * The backlog of each tenant: how many of its accepted documents have not ended yet (queued or
 * signing). One Redis hash, `<prefix>:backlog`, tenant → count, kept by the operation scripts
 * (shared/lua/includes/backlog.lua) in the same atomic step as the state change: an operation adds its
 * unfinished documents when it is accepted (`markAccepted`), and every document that ends
 * (signed, failed, canceled) afterwards takes one off. Documents that end while their operation
 * is still being accepted are never counted, so a request that fails half-way, or an api that
 * dies before `markAccepted`, leaves the count exact. The api reads it for the backlog quota.
 */
import type { Redis } from 'ioredis';

export const backlogKey = (prefix: string): string => `${prefix}:backlog`;

/** Unfinished documents of `tenant` (0 when none). */
export const readBacklog = async (redis: Redis, prefix: string, tenant: string): Promise<number> => Number((await redis.hget(backlogKey(prefix), tenant)) ?? 0);
