import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const appRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const repoRoot = join(appRoot, '..', '..')
/** Screenshots and other artifacts of the tests (gitignored). */
export const resultsDir = join(appRoot, 'test-results')
