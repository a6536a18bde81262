import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { appRoot, repoRoot } from './paths.js'

export default function setup(): void {
  if (!existsSync(join(repoRoot, 'packages', 'realtime', 'dist', 'fastify.js'))) {
    throw new Error('@app/realtime is not built: run `npm run build -w @app/realtime` (or `npm test` at the root) first')
  }
  execFileSync(process.execPath, [join(repoRoot, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], {
    cwd: appRoot,
    // vitest sets NODE_ENV=test, which would make Vite build React's development bundle.
    env: { ...process.env, NODE_ENV: 'production' },
    stdio: 'inherit',
  })
}
