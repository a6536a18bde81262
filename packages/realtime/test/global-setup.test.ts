import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { portOf } from './utils/global-setup.js'

const here = dirname(fileURLToPath(import.meta.url))
const repoRoot = resolve(here, '..', '..', '..')

/** A port nothing listens on (bound once by us, then released). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  const { port } = server.address() as { port: number }
  await new Promise<void>((done) => server.close(() => done()))
  return port
}

describe('test setup', () => {
  describe('#portOf', () => {
    it('takes the port of the URL, else the default', () => {
      expect(portOf('redis://127.0.0.1:6390', 6379)).toBe(6390)
      expect(portOf('redis://127.0.0.1', 6379)).toBe(6379)
    })
  })

  it('names the configured port in the hint for a missing Redis', async () => {
    const port = await closedPort()
    const setup = pathToFileURL(join(here, 'utils', 'global-setup.ts')).href
    // In a child process: the setup reads REDIS_URL when it is loaded; CI=1 makes it throw.
    const run = promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', `const m = await import(${JSON.stringify(setup)}); await m.default()`],
      { cwd: repoRoot, env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${port}`, CI: '1' } },
    )
    const error = (await run.then(() => null, (e: unknown) => e)) as { stderr: string } | null
    expect(error, 'the setup must fail without Redis').not.toBeNull()
    expect(error!.stderr).toContain(`Redis is not reachable at redis://127.0.0.1:${port}`)
    expect(error!.stderr).toContain(`--port ${port} `)
    expect(error!.stderr).not.toContain('--port 6379')
  }, 30_000)
})
