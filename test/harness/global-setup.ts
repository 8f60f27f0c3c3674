/** One Redis for the whole test run; every test file uses its own queue prefix. */
import type { TestProject } from 'vitest/node';
import { startTestRedis } from './redis.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startTestRedis();
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}
