import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** The file in the data folder that holds the demo's session secret. */
export const SECRET_FILE = 'session-secret'

/** Error for a secret file the app cannot use. */
export class SecretFileError extends Error {
  override readonly name = 'SecretFileError'
}

function read(path: string): Buffer {
  const text = readFileSync(path, 'utf8').trim()
  if (!/^[0-9a-f]{64}$/.test(text)) {
    throw new SecretFileError(`${path} does not hold a session secret (64 hex digits); delete it and start again to make a new one`)
  }
  return Buffer.from(text, 'hex')
}

/**
 * The demo's session secret, kept in `dir` so that sessions survive a restart (a secret random
 * per process signed every open tab out at each restart). Made on first use; an instance started
 * at the same moment that loses the race to create the file reads the winner's.
 */
export function demoSessionSecret(dir: string): Buffer {
  const path = join(dir, SECRET_FILE)
  mkdirSync(dir, { recursive: true })
  try {
    return read(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  try {
    // Readable by the owner only: whoever holds it can sign sessions for any user.
    writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  return read(path)
}
