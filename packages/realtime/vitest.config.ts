import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    name: 'realtime',
    include: ['test/**/*.test.{ts,tsx}'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    globalSetup: ['test/utils/global-setup.ts'],
    // test/types.test-d.ts is checked by tsc in test/types.test.ts, not by vitest's typecheck mode
    // (which prints an "experimental feature" note on every run).
  },
})
