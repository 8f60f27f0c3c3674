/**
 * One Redis for the whole test run; every test file uses its own queue prefix. The production
 * build (dist/) is brought up to date once, for the tests of the shipped launchers (npm start, CLI).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startTestRedis } from './redis.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  execFileSync(process.execPath, [path.resolve(import.meta.dirname, '../../scripts/build.mjs'), '--if-needed'], { stdio: 'inherit' });
  const redis = await startTestRedis();
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}
