/**
 * The compile-time checks of `types.test-d.ts` (expectTypeOf, @ts-expect-error), run by tsc.
 * They used to run through vitest's typecheck mode, which prints an "experimental feature" note
 * on every run; tsc over the same file checks exactly the same and prints nothing when it passes.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const repoRoot = resolve(packageDir, '..', '..')
const workDir = mkdtempSync(join(tmpdir(), 'realtime-types-'))
afterAll(() => rmSync(workDir, { recursive: true, force: true }))

describe('types.test-d.ts', () => {
  it('type-checks under the package tsconfig (strict)', () => {
    const config = {
      extends: join(packageDir, 'tsconfig.json'),
      compilerOptions: { noEmit: true, rootDir: packageDir, typeRoots: [join(repoRoot, 'node_modules', '@types')] },
      files: [join(packageDir, 'test', 'types.test-d.ts')],
      include: [],
    }
    writeFileSync(join(workDir, 'tsconfig.json'), JSON.stringify(config))
    let output = ''
    try {
      execFileSync(join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', join(workDir, 'tsconfig.json')], { cwd: packageDir, encoding: 'utf8', stdio: 'pipe' })
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error)
    }
    expect(output).toBe('')
  }, 60_000)
})
