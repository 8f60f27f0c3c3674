import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` (test/unit/<path of the module>.test.ts: no servers, no Redis) and `e2e`
 * (test/*.e2e.test.ts: real servers, processes, Redis and the fake upstream). `npm run test:unit`
 * and `npm run test:e2e` run one each; `vitest run` runs both.
 */
export const UNIT_TESTS = 'test/unit/**/*.test.ts';
export const E2E_TESTS = 'test/*.e2e.test.ts';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    // Hooks start servers and processes (each may take up to 60 s to be ready on a busy machine).
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: run at most two test files at once (each e2e file starts real servers).
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
    projects: [
      // Vitest's default exclude would skip test/unit/vitest.config.test.ts (it excludes `vitest.config.*`).
      { extends: true, test: { name: 'unit', include: [UNIT_TESTS], exclude: ['**/node_modules/**'] } },
      // One Redis for the whole run (test/harness/global-setup.ts); unit tests need none.
      { extends: true, test: { name: 'e2e', include: [E2E_TESTS], globalSetup: ['test/harness/global-setup.ts'] } },
    ],
  },
});
