import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll } from 'vitest'
import { BOT_TOKEN, SESSION_SECRET } from './app.js'
import { repoRoot, resultsDir } from './paths.js'
import { startAppProcess, type AppProcess } from './process.js'
import { requireChromium } from './services.js'

/** Debian's Chromium, headless, with the flags this machine's closed network needs. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: requireChromium(),
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
}

/** Opens the app in a new tab of `context` and signs in with the dev login (or reuses the tab's session). */
export async function openProfile(context: BrowserContext, url: string, userId?: string, name?: string): Promise<Page> {
  const page = await context.newPage()
  page.on('pageerror', (error) => console.error(`[page error] ${error.message}`))
  await page.goto(url)
  if (userId) {
    await page.locator('input[name=userId]').fill(userId)
    if (name) await page.locator('input[name=tgUsername]').fill(name)
    await page.locator('[data-testid=dev-login-submit]').click()
  }
  await page.locator('[data-testid=profile-name]').waitFor()
  await waitLive(page)
  return page
}

/** Waits until the tab's WebSocket is connected and its profile subscription is live. */
export async function waitLive(page: Page): Promise<void> {
  await page.locator('[data-testid=connection][data-state=connected]').waitFor()
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(resultsDir, { recursive: true })
  await page.screenshot({ path: join(resultsDir, `${name}.png`), fullPage: true })
}

/**
 * A screenshot that the docs also show (`docsPath`, relative to the repository root). The docs'
 * copy is refreshed only on request (`UPDATE_DOCS_SCREENSHOTS=1 npx vitest run --project
 * profile-app`), so that an ordinary test run leaves the work tree clean.
 */
export async function docsScreenshot(page: Page, name: string, docsPath: string): Promise<void> {
  await screenshot(page, name)
  if (process.env.UPDATE_DOCS_SCREENSHOTS) copyFileSync(join(resultsDir, `${name}.png`), join(repoRoot, docsPath))
}

/** The tab's session token (the tabs of one origin share it). */
export async function tokenOf(page: Page): Promise<string> {
  return page.evaluate(() => JSON.parse(localStorage.getItem('profile-app.session')!).token as string)
}

/** Counts the main frame's navigations from now on: a live update must not add any. */
export function countNavigations(page: Page): () => number {
  let count = 0
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) count++
  })
  return () => count
}

/** What `useBrowserAndApp` starts for a test file (set once its `beforeAll` has run). */
export interface BrowserAndApp {
  browser: Browser
  /** The demo app as `npm start` runs it: SQLite in `dataDir`, the in-memory bus. */
  server: AppProcess
  dataDir: string
}

/**
 * Chromium and a demo app process for one test file: started in a `beforeAll` (before the file's
 * own), stopped and removed in an `afterAll`.
 */
export function useBrowserAndApp(label: string): BrowserAndApp {
  const running = {} as BrowserAndApp
  beforeAll(async () => {
    running.dataDir = mkdtempSync(join(tmpdir(), `profile-app-${label}-`))
    ;[running.browser, running.server] = await Promise.all([
      launchBrowser(),
      startAppProcess({ SQLITE_PATH: join(running.dataDir, 'profile.db'), BOT_TOKEN, SESSION_SECRET, DATABASE_URL: '', REDIS_URL: '' }),
    ])
  })
  afterAll(async () => {
    await running.browser?.close()
    await running.server?.stop()
    if (running.dataDir) rmSync(running.dataDir, { recursive: true, force: true })
  })
  return running
}
