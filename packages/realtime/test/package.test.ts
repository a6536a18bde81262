import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, cpSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const repoRoot = resolve(packageDir, '..', '..')
const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { exports: Record<string, unknown> }
const bin = (name: string) => join(repoRoot, 'node_modules', '.bin', name)

let project: string

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 })
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${stdout}\n${stderr}`)
  }
}

// Packs the package as npm would publish it and installs the tarball into a fresh project.
beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'realtime-consumer-'))
  const tarball = run('npm', ['pack', '--silent', '--pack-destination', project], packageDir).trim().split('\n').pop()!
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  cpSync(join(packageDir, 'test', 'fixtures', 'consumer'), project, { recursive: true })
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', join(project, tarball), 'react@19', 'react-dom@19', 'ioredis@5', 'fastify@5', 'fastify-plugin@5'], project)
}, 240_000)

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true })
})

/** Every file of the installed tarball, relative to the package root. */
function shippedFiles(): string[] {
  const root = join(project, 'node_modules', '@app', 'realtime')
  const files: string[] = []
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else files.push(relative(root, path))
    }
  }
  walk(root)
  return files
}

describe('the tarball', () => {
  it('contains the README and the LICENSE', () => {
    const files = shippedFiles()
    expect(files).toContain('README.md')
    expect(files).toContain('LICENSE')
    const root = join(project, 'node_modules', '@app', 'realtime')
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain('npm install @app/realtime')
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toContain('MIT License')
  })

  it('ships no benchmark data', () => {
    const files = shippedFiles()
    expect(files.filter((f) => /performance|bench/i.test(f))).toEqual([])
    expect(files.filter((f) => f.endsWith('.json') && f !== 'package.json' && !f.startsWith('docs/examples/'))).toEqual([])
  })

  it('has every relative link of its markdown resolve inside the tarball', () => {
    const files = shippedFiles()
    const root = join(project, 'node_modules', '@app', 'realtime')
    const broken: string[] = []
    let links = 0
    for (const file of files.filter((f) => f.endsWith('.md'))) {
      const text = readFileSync(join(root, file), 'utf8')
      // Inline links and images: [text](target) and ![alt](target); code spans are not links.
      for (const match of text.replace(/`[^`\n]*`/g, '').matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const target = match[1]!
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue
        links++
        const path = resolve(dirname(join(root, file)), decodeURIComponent(target.split('#')[0]!))
        const inside = relative(root, path)
        if (inside.startsWith('..') || !existsSync(path)) broken.push(`${file}: ${target}`)
      }
    }
    expect(broken).toEqual([])
    expect(links).toBeGreaterThan(20)
  })
})

describe('the published package', () => {
  it('builds every subpath of the exports map', () => {
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (subpath === './package.json') continue
      const conditions = target as { import: { types: string; default: string }; require: { types: string; default: string } }
      for (const file of [conditions.import.types, conditions.import.default, conditions.require.types, conditions.require.default]) {
        expect(existsSync(join(packageDir, file)), `${subpath} → ${file}`).toBe(true)
      }
    }
  })

  it('passes publint and attw', () => {
    expect(() => run(bin('publint'), ['--strict'], packageDir)).not.toThrow()
    // node10 resolution has no subpath exports at all; every supported setting (node16, bundler) is checked.
    expect(() => run(bin('attw'), ['--pack', '.', '--profile', 'node16'], packageDir)).not.toThrow()
  }, 120_000)

  it('imports from ESM', () => {
    const checks = JSON.parse(run('node', ['esm.mjs'], project))
    expect(Object.values(checks).every(Boolean), JSON.stringify(checks)).toBe(true)
  })

  it('requires from CommonJS', () => {
    const checks = JSON.parse(run('node', ['cjs.cjs'], project))
    expect(Object.values(checks).every(Boolean), JSON.stringify(checks)).toBe(true)
  })

  it.each([
    ['bundler', 'ESNext'],
    ['node16', 'Node16'],
  ])('type-checks from TypeScript with moduleResolution %s', (moduleResolution, module) => {
    const config = {
      compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, module, moduleResolution, target: 'ES2022', types: [], typeRoots: [join(repoRoot, 'node_modules', '@types')] },
      files: ['typed.ts'],
    }
    writeFileSync(join(project, `tsconfig.${moduleResolution}.json`), JSON.stringify(config))
    // @types/node comes from the repository; everything else resolves inside the fresh project.
    writeFileSync(join(project, 'node-types.d.ts'), `/// <reference path="${join(repoRoot, 'node_modules', '@types', 'node', 'index.d.ts')}" />\n`)
    config.files.push('node-types.d.ts')
    writeFileSync(join(project, `tsconfig.${moduleResolution}.json`), JSON.stringify(config))
    let output = ''
    try {
      output = run(bin('tsc'), ['-p', `tsconfig.${moduleResolution}.json`], project)
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error)
    }
    expect(output).toBe('')
  }, 60_000)

  it('builds a browser page using /client and /react with no Node built-in', async () => {
    const { build } = await import('vite')
    const outDir = join(project, 'browser-dist')
    await build({
      root: project,
      logLevel: 'silent',
      configFile: false,
      build: {
        outDir,
        minify: false,
        lib: { entry: join(project, 'browser.ts'), formats: ['es'], fileName: 'page' },
        rollupOptions: { external: [] },
      },
    })
    const code = readdirSync(outDir)
      .filter((f) => /\.(m?js|cjs)$/.test(f))
      .map((f) => readFileSync(join(outDir, f), 'utf8'))
      .join('\n')
    expect(code).toContain('"hello"')
    expect(code).not.toContain('__vite-browser-external')
    const builtins = builtinModules.filter((m) => !m.startsWith('_'))
    for (const name of builtins) {
      expect(code).not.toMatch(new RegExp(`(from|require\\(|import\\()\\s*["'](node:)?${name.replace('/', '\\/')}["']`))
    }
  }, 120_000)
})
