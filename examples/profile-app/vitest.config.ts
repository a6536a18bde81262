import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    name: 'profile-app',
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 90_000,
    // Builds the web app once: the browser tests run against the built files, as `npm start` does.
    globalSetup: ['test/utils/global-setup.ts'],
  },
})
