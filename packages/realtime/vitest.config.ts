import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    name: 'realtime',
    include: ['test/**/*.test.{ts,tsx}'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    globalSetup: ['test/utils/global-setup.ts'],
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'], tsconfig: './tsconfig.json' },
  },
})
