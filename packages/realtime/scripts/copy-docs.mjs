// Ships the docs a user of the package needs inside it (the "files" list includes docs/): the
// protocol, the API pages, the guides and the compiling examples. Not shipped: the benchmark
// write-up and its data (docs/performance*), which are about this repository, not the package.
// The package test checks that every relative link of what is shipped resolves in the tarball.
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const SHIPPED = ['PROTOCOL.md', 'api', 'examples', 'scaling.md', 'security.md', 'observability.md', 'outbox.md', 'activity-dashboard.png']

const here = dirname(fileURLToPath(import.meta.url))
const from = join(here, '..', '..', '..', 'docs')
const to = join(here, '..', 'docs')
rmSync(to, { recursive: true, force: true })
if (existsSync(from)) {
  mkdirSync(to, { recursive: true })
  for (const name of SHIPPED) cpSync(join(from, name), join(to, name), { recursive: true })
}
