import { execFileSync } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

describe('docs/examples', () => {
  it('type-checks against the built package (the README quick start is taken from them)', () => {
    let output = ''
    try {
      execFileSync(join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', 'docs/examples/tsconfig.json'], { cwd: repoRoot, encoding: 'utf8', stdio: 'pipe' })
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error)
    }
    expect(output).toBe('')
  }, 60_000)
})
