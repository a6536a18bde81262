/**
 * Every TypeScript block of the docs compiles against the built package, under `strict`.
 *
 * The convention (also in the README's "Developing" section): a fenced block whose info string
 * is `ts` or `tsx` is compiled, each block as a module of its own; write `ts no-compile` (or
 * `tsx no-compile`) for a fragment that is not meant to compile on its own (an excerpt of a
 * type, a line to paste into something larger). The names a block takes from "your app"
 * (`verifySession`, `User`, `db`, …) are declared in `fixtures/doc-blocks/prelude.d.ts`.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const repoRoot = resolve(packageDir, '..', '..')

/** The documents whose blocks are checked: the READMEs and everything under docs/. */
function documents(): string[] {
  const docs: string[] = []
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith('.md')) docs.push(path)
    }
  }
  walk(join(repoRoot, 'docs'))
  return [join(repoRoot, 'README.md'), join(packageDir, 'README.md'), join(repoRoot, 'examples', 'profile-app', 'README.md'), ...docs]
}

interface Block {
  doc: string
  line: number
  lang: 'ts' | 'tsx'
  code: string
}

/** The fenced ts/tsx blocks of one markdown file, without those marked `no-compile`. */
export function extractBlocks(doc: string, text: string): { blocks: Block[]; skipped: number } {
  const blocks: Block[] = []
  let skipped = 0
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(tsx?)\b(.*)$/.exec(lines[i]!)
    if (!open) continue
    const start = i
    const body: string[] = []
    while (++i < lines.length && !lines[i]!.startsWith('```')) body.push(lines[i]!)
    if (i === lines.length) throw new Error(`${doc}:${start + 1}: the code block is never closed`)
    if (/\bno-compile\b/.test(open[2]!)) skipped++
    else blocks.push({ doc, line: start + 1, lang: open[1] as 'ts' | 'tsx', code: body.join('\n') })
  }
  return { blocks, skipped }
}

const workDir = mkdtempSync(join(tmpdir(), 'realtime-doc-blocks-'))
afterAll(() => rmSync(workDir, { recursive: true, force: true }))

describe('the TypeScript blocks of the docs', () => {
  it('compile against the built package under strict', () => {
    const names = new Map<string, Block>()
    let count = 0
    for (const doc of documents()) {
      const rel = relative(repoRoot, doc)
      const { blocks } = extractBlocks(rel, readFileSync(doc, 'utf8'))
      for (const block of blocks) {
        const file = `${rel.replace(/[/.]/g, '_')}_L${block.line}.${block.lang}`
        // `export {}` makes every block a module, as a user's file with imports is.
        writeFileSync(join(workDir, file), `${block.code}\n\nexport {}\n`)
        names.set(file, block)
        count++
      }
    }
    // The headline examples at least; a broken extractor must not pass by finding nothing.
    expect(count).toBeGreaterThanOrEqual(15)

    copyFileSync(join(packageDir, 'test', 'fixtures', 'doc-blocks', 'prelude.d.ts'), join(workDir, 'prelude.d.ts'))
    // `import type { Topics } from './topics'` in a block finds the topic map of docs/examples.
    copyFileSync(join(repoRoot, 'docs', 'examples', 'topics.ts'), join(workDir, 'topics.ts'))
    // The blocks import the package and its peers as a user's project would: from node_modules.
    symlinkSync(join(repoRoot, 'node_modules'), join(workDir, 'node_modules'), 'dir')
    mkdirSync(join(workDir, 'out'), { recursive: true })
    const tsconfig = {
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        module: 'ESNext',
        moduleResolution: 'Bundler',
        lib: ['ES2022', 'DOM', 'DOM.Iterable'],
        jsx: 'react-jsx',
        types: ['node'],
        skipLibCheck: true,
        esModuleInterop: true,
        noUnusedLocals: false,
      },
      include: ['*.ts', '*.tsx'],
    }
    writeFileSync(join(workDir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2))
    let output = ''
    try {
      execFileSync(join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: workDir, encoding: 'utf8', stdio: 'pipe' })
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error)
    }
    // Name each error by its document and line rather than by the extracted file.
    output = output.replace(/^(\S+?)\((\d+),(\d+)\)/gm, (match, file: string, line: string, column: string) => {
      const block = names.get(file)
      return block ? `${block.doc}:${block.line + Number(line)}:${column}` : match
    })
    expect(output).toBe('')
  }, 90_000)

  it('skips exactly the blocks marked no-compile', () => {
    const text = ['```ts', 'const a: number = 1', '```', '```ts no-compile', 'a fragment', '```', '```sh', 'npm test', '```'].join('\n')
    const { blocks, skipped } = extractBlocks('x.md', text)
    expect(blocks.map((b) => [b.line, b.code])).toEqual([[1, 'const a: number = 1']])
    expect(skipped).toBe(1)
  })
})
