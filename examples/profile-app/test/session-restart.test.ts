/**
 * Issue 16 items 8 and 9, in Debian's Chromium against the app as `npm start` runs it:
 * a too-long name is refused with the server's error (not silently cut to 64 characters), the
 * demo keeps its session secret across a restart (so open tabs stay signed in), and a page whose
 * session is refused, on the socket (4001) or the REST API (401), says so.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { SECRET_FILE } from '../src/server/demoSecret.js'
import { BOT_TOKEN } from './utils/app.js'
import { launchBrowser, openProfile, tokenOf, waitLive } from './utils/browser.js'
import { startAppProcess, type AppProcess } from './utils/process.js'

const SESSION_ENDED = 'Your session ended, sign in again.'

let browser: Browser
let dataDir: string
const servers: AppProcess[] = []

/** The demo app with its data folder in `dir` and no SESSION_SECRET (the demo keeps its own). */
async function startDemo(dir: string, port = 0): Promise<AppProcess> {
  const server = await startAppProcess({
    DATA_DIR: dir,
    SQLITE_PATH: join(dataDir, 'profile.db'),
    BOT_TOKEN,
    DATABASE_URL: '',
    REDIS_URL: '',
    PORT: String(port),
    SESSION_SECRET: '',
  })
  servers.push(server)
  return server
}

function portOf(server: AppProcess): number {
  return Number(new URL(server.url).port)
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'profile-app-restart-'))
  browser = await launchBrowser()
})

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.stop()))
})

afterAll(async () => {
  await browser?.close()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

describe('the profile form', () => {
  it('shows the server\'s error for a 65-character name and changes nothing', async () => {
    const server = await startDemo(join(dataDir, 'form'))
    const context = await browser.newContext()
    try {
      const page = await openProfile(context, server.url, '100', 'Quinn')
      const other = await openProfile(context, server.url)
      await page.getByTestId('edit-profile').click()
      const long = 'x'.repeat(65)
      await page.locator('input[name=tgUsername]').fill(long)
      // Not cut to 64 characters by the input: what was typed is what is sent.
      expect(await page.locator('input[name=tgUsername]').inputValue()).toBe(long)
      await page.getByTestId('save').click()
      await expect.poll(() => page.getByTestId('error-tgUsername').textContent()).toBe('Name must NOT have more than 64 characters')
      expect(await page.getByTestId('profile-name').textContent()).toBe('Quinn')
      expect(await other.getByTestId('profile-name').textContent()).toBe('Quinn')
      const response = await fetch(`${server.url}/api/users/100`, { headers: { authorization: `Bearer ${await tokenOf(page)}` } })
      expect(((await response.json()) as { tgUsername: string }).tgUsername).toBe('Quinn')
    } finally {
      await context.close()
    }
  }, 60_000)
})

describe('sessions in the demo', () => {
  it('survive a restart of the app: the open tab stays signed in and goes live again', async () => {
    const dir = join(dataDir, 'restart')
    const first = await startDemo(dir)
    const context = await browser.newContext()
    try {
      const page = await openProfile(context, first.url, '110', 'Rita')
      await first.stop()
      expect(statSync(join(dir, SECRET_FILE)).mode & 0o077).toBe(0)
      await page.locator('[data-testid=connection][data-state=connected]').waitFor({ state: 'detached', timeout: 5000 })

      // The same port, so the tab's origin (and its stored session) is the same.
      const second = await startDemo(dir, portOf(first))
      await waitLive(page)
      expect(await page.getByTestId('profile-name').textContent()).toBe('Rita')
      expect(await page.getByTestId('signed-out-reason').count()).toBe(0)
      await page.reload()
      await page.getByTestId('profile-name').waitFor()
      await waitLive(page)
      expect(second.url).toBe(first.url)
    } finally {
      await context.close()
    }
  }, 90_000)

  it('says so when the socket refuses the session (4001, e.g. a new secret)', async () => {
    const first = await startDemo(join(dataDir, 'secret-a'))
    const context = await browser.newContext()
    try {
      const page = await openProfile(context, first.url, '120', 'Sam')
      await first.stop()
      // Another data folder, so another secret: the stored token is no longer valid.
      await startDemo(join(dataDir, 'secret-b'), portOf(first))
      await expect.poll(() => page.getByTestId('signed-out-reason').textContent(), { timeout: 20_000 }).toBe(SESSION_ENDED)
      await page.locator('[data-testid=dev-login]').waitFor()
    } finally {
      await context.close()
    }
  }, 90_000)

  it('says so when the REST API refuses the session (401)', async () => {
    const server = await startDemo(join(dataDir, 'rest'))
    const context = await browser.newContext()
    try {
      const page = await openProfile(context, server.url, '130', 'Tess')
      // A token the server never signed, as a restarted production instance would see it.
      await page.evaluate(() => {
        const session = JSON.parse(localStorage.getItem('profile-app.session')!)
        localStorage.setItem('profile-app.session', JSON.stringify({ ...session, token: `${session.token}x` }))
      })
      await page.reload()
      await expect.poll(() => page.getByTestId('signed-out-reason').textContent(), { timeout: 10_000 }).toBe(SESSION_ENDED)
    } finally {
      await context.close()
    }
  }, 60_000)
})
