import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['./test/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Refuse a forgotten .only on CI.
    allowOnly: !process.env.CI,
    pool: 'forks',
  },
});
