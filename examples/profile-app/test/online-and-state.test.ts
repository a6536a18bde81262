/**
 * Issue 15 in the browser: the admin dashboard's "Online now" list (the `$online` presence topic)
 * follows users opening and closing their profile page, and the profile page opens from its
 * `user:<id>` state topic with no REST call — with one only when the topic holds nothing.
 */
import Database from 'better-sqlite3'
import { createRealtimeClient } from '@app/realtime/client'
import { isRealtimeError } from '@app/realtime'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { SessionSigner } from '../src/server/session.js'
import type { Topics } from '../src/shared/topics.js'
import { SESSION_SECRET } from './utils/app.js'
import { openProfile, useBrowserAndApp, waitLive } from './utils/browser.js'
import { apiRequest, type AppProcess } from './utils/process.js'

const running = useBrowserAndApp('online')
let browser: Browser
let server: AppProcess
beforeAll(() => {
  ;({ browser, server } = running)
})

const api = (method: string, path: string, token: string | null, body?: unknown) => apiRequest(server.url, method, path, token, body)
const signer = new SessionSigner(SESSION_SECRET, 3_600_000)

/** A context whose tabs are signed in as `userId` already (the stored session), with no sign-in request. */
async function signedIn(userId: string): Promise<BrowserContext> {
  const context = await browser.newContext()
  const { token, expiresAt } = signer.sign(userId)
  const session = JSON.stringify({ token, expiresAt, userId, isAdmin: userId === '1' })
  await context.addInitScript((stored: string) => localStorage.setItem('profile-app.session', stored), session)
  return context
}

/** Opens the profile page and counts its REST requests for the profile (`GET /api/users/<id>`). */
async function openCounting(context: BrowserContext, userId: string): Promise<{ page: Page; profileRequests: () => number }> {
  const page = await context.newPage()
  let count = 0
  page.on('request', (request) => {
    if (request.method() === 'GET' && new URL(request.url()).pathname === `/api/users/${userId}`) count++
  })
  await page.goto(server.url)
  return { page, profileRequests: () => count }
}

async function onlineIds(dashboard: Page): Promise<string[]> {
  const ids = await dashboard.locator('[data-testid=online] li').evaluateAll((items) => items.map((li) => li.getAttribute('data-user-id') ?? ''))
  return ids.sort()
}

describe('the profile page on its state topic', () => {
  it('shows the profile from the topic with no REST call when the topic holds it', async () => {
    // The sign-in writes the profile, which publishes it on user:40: the topic holds it now.
    expect((await api('POST', '/api/auth/dev', null, { userId: '40', tgUsername: 'Nora' })).status).toBe(200)
    const context = await signedIn('40')
    try {
      const { page, profileRequests } = await openCounting(context, '40')
      await expect.poll(() => page.getByTestId('profile-name').textContent(), { timeout: 10_000 }).toBe('Nora')
      await waitLive(page)
      // Past the REST fallback delay (2 s): no request was needed, none was made.
      await page.waitForTimeout(2500)
      expect(profileRequests()).toBe(0)
      // Still live: a change made elsewhere arrives as a patch.
      expect((await api('PUT', '/api/users/40', signer.sign('40').token, { tgUsername: 'Nora 2' })).status).toBe(200)
      await expect.poll(() => page.getByTestId('profile-name').textContent(), { timeout: 3000 }).toBe('Nora 2')
      expect(profileRequests()).toBe(0)
    } finally {
      await context.close()
    }
  }, 60_000)

  it('loads the profile over REST once when the topic holds nothing', async () => {
    // A user written while the app's bus was not there (as after a restart of its in-memory bus):
    // in the database, with nothing retained on user:41.
    const db = new Database(join(running.dataDir, 'profile.db'))
    try {
      db.prepare('INSERT INTO users (user_id, tg_username, photo_url, updated_at) VALUES (?, ?, NULL, ?)').run('41', 'Omar', new Date().toISOString())
    } finally {
      db.close()
    }
    const context = await signedIn('41')
    try {
      const { page, profileRequests } = await openCounting(context, '41')
      await expect.poll(() => page.getByTestId('profile-name').textContent(), { timeout: 10_000 }).toBe('Omar')
      await waitLive(page)
      await page.waitForTimeout(2500)
      expect(profileRequests()).toBe(1)
    } finally {
      await context.close()
    }
  }, 60_000)
})

describe("the dashboard's online list", () => {
  it('lists a user while the profile page is open, live, and drops them when it closes', async () => {
    await api('POST', '/api/auth/dev', null, { userId: '42', tgUsername: 'Pia' })
    await api('POST', '/api/auth/dev', null, { userId: '43', tgUsername: 'Quinn' })
    const admin = await browser.newContext()
    const pia = await signedIn('42')
    const quinn = await signedIn('43')
    try {
      const dashboard = await openProfile(admin, server.url, '1', 'Admin')
      await dashboard.goto(`${server.url}/admin`)
      await waitLive(dashboard)
      // The admin watches and is not listed; no one else has a page open yet.
      await expect.poll(() => dashboard.getByTestId('online-count').textContent(), { timeout: 5000 }).toBe('0')

      const piaPage = (await openCounting(pia, '42')).page
      await expect.poll(() => onlineIds(dashboard), { timeout: 5000 }).toEqual(['42'])
      expect(await dashboard.locator('[data-testid=online] li[data-user-id="42"] [data-testid=online-name]').textContent()).toBe('Pia')
      // A second tab of the same user is the same member.
      const piaSecond = (await openCounting(pia, '42')).page
      await piaSecond.getByTestId('profile-name').waitFor()
      const quinnPage = (await openCounting(quinn, '43')).page
      await expect.poll(() => onlineIds(dashboard), { timeout: 5000 }).toEqual(['42', '43'])

      await piaSecond.close()
      await quinnPage.close()
      // Quinn leaves once the leave delay (2 s) is over; Pia still has a tab open.
      await expect.poll(() => onlineIds(dashboard), { timeout: 8000 }).toEqual(['42'])
      await piaPage.close()
      await expect.poll(() => onlineIds(dashboard), { timeout: 8000 }).toEqual([])
      await expect.poll(() => dashboard.getByTestId('online-count').textContent()).toBe('0')
    } finally {
      await Promise.all([admin.close(), pia.close(), quinn.close()])
    }
  }, 60_000)

  it('is for admins only: a user may hold $online but not see its members', async () => {
    await api('POST', '/api/auth/dev', null, { userId: '44', tgUsername: 'Rui' })
    const client = createRealtimeClient<Topics>({ url: `${server.url.replace('http', 'ws')}/ws`, auth: signer.sign('44').token, WebSocket: WebSocket as never })
    try {
      const online = client.subscription('$online')
      online.subscribe()
      await online.ready(5000)
      const refused = await client.members('$online').then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(isRealtimeError(refused) && refused.code).toBe('FORBIDDEN')
    } finally {
      client.close()
    }
  })
})
