/**
 * Two app processes sharing one Redis (the RedisBus) and one SQLite file, as in a scaled
 * deployment: tabs on either instance see the changes made through the other.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BOT_TOKEN, SESSION_SECRET } from './utils/app.js'
import { launchBrowser, openProfile, screenshot, tokenOf, waitLive } from './utils/browser.js'
import { startAppProcess, type AppProcess } from './utils/process.js'
import { deleteRedisKeys, requireRedis } from './utils/services.js'

let browser: Browser
let instanceA: AppProcess
let instanceB: AppProcess
let dataDir: string
const prefix = `profile-app-test:${process.pid}:${Date.now().toString(36)}:`

beforeAll(async () => {
  const redisUrl = await requireRedis()
  dataDir = mkdtempSync(join(tmpdir(), 'profile-app-multi-'))
  // One secret for both, so that a session from either instance works on the other.
  const env = { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, SQLITE_PATH: join(dataDir, 'profile.db'), SESSION_SECRET, BOT_TOKEN, DATABASE_URL: '' }
  browser = await launchBrowser()
  instanceA = await startAppProcess(env)
  instanceB = await startAppProcess(env)
})

afterAll(async () => {
  await browser?.close()
  await instanceA?.stop()
  await instanceB?.stop()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
  await deleteRedisKeys(prefix)
})

describe('two instances sharing Redis and one SQLite file', () => {
  it('shows a change made on one instance in the tabs of the other, both ways', async () => {
    expect(instanceA.url).not.toBe(instanceB.url)
    // Two origins (two ports), so two browser storages: each tab signs in on its own instance.
    const onA = await openProfile(await browser.newContext(), instanceA.url, '70', 'Heidi')
    const onB = await openProfile(await browser.newContext(), instanceB.url, '70')
    const dashboardB = await openProfile(await browser.newContext(), instanceB.url, '1', 'Admin')
    await dashboardB.goto(`${instanceB.url}/admin`)
    await waitLive(dashboardB)

    await onA.getByTestId('edit-profile').click()
    await onA.locator('input[name=tgUsername]').fill('Heidi via A')
    await onA.getByTestId('save').click()
    const started = Date.now()
    await onB.waitForFunction(() => document.querySelector('[data-testid=profile-name]')?.textContent === 'Heidi via A', undefined, {
      timeout: 2000,
      polling: 10,
    })
    expect(Date.now() - started).toBeLessThan(1000)
    await dashboardB.locator('[data-testid=feed] li[data-user-id="70"]').waitFor({ timeout: 2000 })

    const token = await tokenOf(onB)
    const status = await onB.evaluate(async (token) => {
      const response = await fetch('/api/users/70', {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tgUsername: 'Heidi via B', photoUrl: 'https://example.com/heidi.png' }),
      })
      return response.status
    }, token)
    expect(status).toBe(200)
    await onA.waitForFunction(() => document.querySelector('[data-testid=profile-name]')?.textContent === 'Heidi via B', undefined, {
      timeout: 2000,
      polling: 10,
    })
    expect(await onA.getByTestId('profile-photo').getAttribute('src')).toBe('https://example.com/heidi.png')

    // The read cache of A was dropped by B's write (through Redis): A serves the new name.
    const fromA = await fetch(`${instanceA.url}/api/users/70`, { headers: { authorization: `Bearer ${token}` } })
    expect(((await fromA.json()) as { tgUsername: string }).tgUsername).toBe('Heidi via B')

    await screenshot(onA, '4-two-instances-tab-on-A')
    await screenshot(onB, '4-two-instances-tab-on-B')
    await screenshot(dashboardB, '4-two-instances-dashboard-on-B')
  })
})
