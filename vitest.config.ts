import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: run at most two test files at once (each starts real servers).
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
  },
});
