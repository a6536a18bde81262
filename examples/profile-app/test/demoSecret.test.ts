import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/server/config.js'
import { demoSessionSecret, SECRET_FILE, SecretFileError } from '../src/server/demoSecret.js'

const dirs: string[] = []
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'profile-app-secret-'))
  dirs.push(dir)
  return dir
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('demoSessionSecret', () => {
  it('makes a secret on first use, readable by the owner only, and returns the same one after', () => {
    const dir = join(tempDir(), 'nested', 'data')
    const first = demoSessionSecret(dir)
    expect(first).toHaveLength(32)
    expect(statSync(join(dir, SECRET_FILE)).mode & 0o777).toBe(0o600)
    expect(demoSessionSecret(dir).equals(first)).toBe(true)
    expect(demoSessionSecret(tempDir()).equals(first)).toBe(false)
  })

  it('refuses a file that does not hold a secret, saying what to do', () => {
    const dir = tempDir()
    writeFileSync(join(dir, SECRET_FILE), 'not a secret\n')
    expect(() => demoSessionSecret(dir)).toThrow(SecretFileError)
    expect(() => demoSessionSecret(dir)).toThrow(/delete it and start again/)
  })
})

describe('loadConfig in the demo', () => {
  it('keeps the session secret in DATA_DIR, so a restart signs with the same key', () => {
    const dir = tempDir()
    const a = loadConfig({ DATA_DIR: dir }, { demo: true })
    const b = loadConfig({ DATA_DIR: dir }, { demo: true })
    expect(Buffer.isBuffer(a.sessionSecret) && a.sessionSecret.equals(b.sessionSecret as Buffer)).toBe(true)
    expect(a.storage).toEqual({ sqlitePath: join(dir, 'profile.db') })
  })

  it('uses SESSION_SECRET when set, and a random one outside the demo', () => {
    const dir = tempDir()
    expect(loadConfig({ DATA_DIR: dir, SESSION_SECRET: 'a-secret-of-16-chars' }, { demo: true }).sessionSecret).toBe('a-secret-of-16-chars')
    const x = loadConfig({ DATA_DIR: dir }).sessionSecret as Buffer
    const y = loadConfig({ DATA_DIR: dir }).sessionSecret as Buffer
    expect(x.equals(y)).toBe(false)
  })

  it('fails with a ConfigError on a bad secret file', () => {
    const dir = tempDir()
    writeFileSync(join(dir, SECRET_FILE), 'garbage')
    expect(() => loadConfig({ DATA_DIR: dir }, { demo: true })).toThrow(ConfigError)
  })
})
