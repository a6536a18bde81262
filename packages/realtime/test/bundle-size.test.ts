import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
// tsup's own bundler (the package's build already depends on it).
import { build } from 'esbuild'
import { afterAll, describe, expect, it } from 'vitest'

const dist = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'dist')
// 10 kB in bytes, not KiB: the bound the README promises.
const LIMIT = 10_000
const dir = mkdtempSync(join(tmpdir(), 'realtime-bundle-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the browser bundle', () => {
  it('of the client and the React bindings is under 10 kB minified and gzipped', async () => {
    // Everything both entries export, so nothing is shaken off: the worst case for a page.
    const entry = join(dir, 'page.js')
    writeFileSync(entry, `export * from ${JSON.stringify(join(dist, 'client.js'))}\nexport * from ${JSON.stringify(join(dist, 'react.js'))}\n`)
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      external: ['react'],
      write: false,
      logLevel: 'silent',
    })
    const code = result.outputFiles[0]!.contents
    const gzipped = gzipSync(code).length
    console.log(`client + react bundle: ${code.length} B minified, ${gzipped} B gzipped (limit ${LIMIT} B)`)
    expect(gzipped).toBeLessThan(LIMIT)
  })
})
