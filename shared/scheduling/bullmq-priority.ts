/**
 * The part of BullMQ's priority contract that fair scheduling relies on, in one place. BullMQ keeps
 * prioritized jobs in a sorted set (`queue.toKey('prioritized')`) scored `priority × 2^32 +
 * insertion counter`, and refuses priorities above 2,097,151. lua/fair-share.lua reads the round
 * being served from the head of that set with these two numbers, passed in as arguments.
 *
 * Neither number is exported by BullMQ, so the contract is pinned two ways: bullmq's exact version
 * in the workspace package.json files, and test/bullmq-priority-contract.e2e.test.ts, which adds
 * jobs through BullMQ's public API and fails if a BullMQ upgrade changes either number.
 */

/** One priority step in the prioritized set's score. */
export const PRIORITY_SCORE_UNIT = 2 ** 32;

/** The highest priority BullMQ accepts. */
export const PRIORITY_LIMIT = 2_097_151;

/** The priority of a job whose score in the prioritized set is `score`. */
export const priorityOfScore = (score: number): number => Math.floor(score / PRIORITY_SCORE_UNIT);
