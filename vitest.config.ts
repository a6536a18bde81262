import { defineConfig } from 'vitest/config'

// One test command for the whole repository: every workspace with tests is a project here.
export default defineConfig({
  test: {
    projects: ['packages/realtime', 'examples/*/vitest.config.ts'],
  },
})
