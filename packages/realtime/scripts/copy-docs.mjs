// Ships the protocol and API docs inside the package (the "files" list includes docs/).
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const from = join(here, '..', '..', '..', 'docs')
const to = join(here, '..', 'docs')
rmSync(to, { recursive: true, force: true })
if (existsSync(from)) {
  mkdirSync(to, { recursive: true })
  cpSync(from, to, { recursive: true, filter: (p) => !p.endsWith('.png') })
}
