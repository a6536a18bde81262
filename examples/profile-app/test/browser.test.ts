/**
 * The app in Debian's Chromium, started as the README starts it (`npm run start -w profile-app`
 * after the build: built web, in-memory bus, SQLite, dev login), on a free port.
 */
import type { Browser } from 'playwright-core'
import { beforeAll, describe, expect, it } from 'vitest'
import { signInitData } from '../src/server/telegram/initData.js'
import { BOT_TOKEN } from './utils/app.js'
import { countNavigations, docsScreenshot, openProfile, screenshot, tokenOf, useBrowserAndApp, waitLive } from './utils/browser.js'
import { apiRequest, type AppProcess } from './utils/process.js'

const running = useBrowserAndApp('browser')
let browser: Browser
let server: AppProcess
beforeAll(() => {
  ;({ browser, server } = running)
})

const api = (method: string, path: string, token: string | null, body?: unknown) => apiRequest(server.url, method, path, token, body)

async function adminToken(): Promise<string> {
  return (await api('POST', '/api/auth/dev', null, { userId: '1' })).body.token
}

describe('profile page', () => {
  it('updates in place after an edit through the form, with no reload', async () => {
    const context = await browser.newContext()
    try {
      const page = await openProfile(context, server.url, '10', 'Dana')
      const navigations = countNavigations(page)
      await page.evaluate(() => ((window as any).__sameDocument = true))

      await page.getByTestId('edit-profile').click()
      await page.locator('input[name=photoUrl]').fill('http://example.com/dana.png')
      await page.getByTestId('save').click()
      await expect.poll(() => page.getByTestId('error-photoUrl').textContent()).toContain('https')

      await page.locator('input[name=tgUsername]').fill('Dana Edited')
      await page.locator('input[name=photoUrl]').fill('https://example.com/dana.png')
      expect(await page.getByTestId('photo-preview').getAttribute('src')).toBe('https://example.com/dana.png')
      await page.getByTestId('save').click()
      await expect.poll(() => page.getByTestId('profile-name').textContent()).toBe('Dana Edited')
      expect(await page.getByTestId('profile-photo').getAttribute('src')).toBe('https://example.com/dana.png')
      await expect.poll(() => page.getByTestId('profile-form').count()).toBe(0)

      expect(navigations()).toBe(0)
      expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true)
      // A phone-sized window for the docs' picture of the profile page.
      await page.setViewportSize({ width: 420, height: 320 })
      await docsScreenshot(page, '1-edit-through-form', 'examples/profile-app/docs/profile.png')
    } finally {
      await context.close()
    }
  })

  it('shows a change made through the API in one tab in the other tab within 1 s', async () => {
    const context = await browser.newContext()
    try {
      const first = await openProfile(context, server.url, '20', 'Eve')
      const second = await openProfile(context, server.url)
      const navigations = countNavigations(second)
      const token = await tokenOf(first)

      const started = Date.now()
      const status = await first.evaluate(async (token) => {
        const response = await fetch('/api/users/20', {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ tgUsername: 'Eve from tab 1' }),
        })
        return response.status
      }, token)
      expect(status).toBe(200)
      await second.waitForFunction(
        () => document.querySelector('[data-testid=profile-name]')?.textContent === 'Eve from tab 1',
        undefined,
        { timeout: 1000, polling: 10 },
      )
      const elapsed = Date.now() - started
      expect(elapsed).toBeLessThan(1000)
      expect(navigations()).toBe(0)
      await screenshot(second, '2-two-tabs')
    } finally {
      await context.close()
    }
  })

  it('shows the new photo of a new Telegram login in both open tabs', async () => {
    const context = await browser.newContext()
    const telegram = await browser.newContext()
    try {
      const first = await openProfile(context, server.url, '30', 'Frank')
      const second = await openProfile(context, server.url)
      const newPhoto = 'https://t.me/i/userpic/320/frank-new.jpg'
      const initData = signInitData(
        { query_id: 'q', auth_date: Math.floor(Date.now() / 1000), user: { id: 30, username: 'frank_tg', photo_url: newPhoto } },
        BOT_TOKEN,
      )
      // What Telegram's script provides inside the Mini App webview.
      await telegram.addInitScript(
        ({ initData }) => {
          ;(window as any).Telegram = {
            WebApp: {
              initData,
              colorScheme: 'dark',
              themeParams: { bg_color: '#18222d', secondary_bg_color: '#21303f', text_color: '#ffffff', button_color: '#2ea6ff' },
              ready() {},
              expand() {},
              onEvent() {},
            },
          }
        },
        { initData },
      )
      const inTelegram = await telegram.newPage()
      await inTelegram.goto(server.url)
      await inTelegram.locator('[data-testid=profile-name]').waitFor()
      await waitLive(inTelegram)

      for (const page of [first, second]) {
        await expect.poll(() => page.getByTestId('profile-photo').getAttribute('src'), { timeout: 2000 }).toBe(newPhoto)
        expect(await page.getByTestId('profile-name').textContent()).toBe('frank_tg')
      }
      expect(await inTelegram.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--bg').trim())).toBe('#18222d')
      await screenshot(first, '3-telegram-login-tab1')
      await screenshot(second, '3-telegram-login-tab2')
      await screenshot(inTelegram, '3-telegram-login-in-telegram')
    } finally {
      await context.close()
      await telegram.close()
    }
  })
})

describe('admin dashboard', () => {
  it('shows admins every profile change live, in the feed and the users list', async () => {
    const context = await browser.newContext()
    try {
      await api('POST', '/api/auth/dev', null, { userId: '80', tgUsername: 'Kim' })
      await api('POST', '/api/auth/dev', null, { userId: '81', tgUsername: 'Lev' })
      const dashboard = await openProfile(context, server.url, '1', 'Admin')
      await dashboard.goto(`${server.url}/admin`)
      await waitLive(dashboard)
      await dashboard.locator('[data-testid=users] tr[data-user-id="80"]').waitFor()
      const token = await adminToken()
      expect((await api('PUT', '/api/users/80', token, { tgUsername: 'Kim by admin' })).status).toBe(200)
      await dashboard.locator('[data-testid=feed] li[data-user-id="80"]').waitFor({ timeout: 2000 })
      await expect
        .poll(() => dashboard.locator('[data-testid=users] tr[data-user-id="80"] [data-testid=user-name]').textContent())
        .toBe('Kim by admin')

      // Batch edit: one bad row saves nothing and says which row; fixed, both rows save at once.
      await dashboard.getByTestId('batch-edit').click()
      await dashboard.getByLabel('name of 80').fill('Kim batch')
      await dashboard.getByLabel('photo of 81').fill('javascript:alert(1)')
      await dashboard.getByTestId('batch-save').click()
      await expect.poll(() => dashboard.getByTestId('batch-message').textContent()).toContain('Nothing saved')
      expect((await api('GET', '/api/users/80', token)).body.tgUsername).toBe('Kim by admin')
      await dashboard.getByLabel('photo of 81').fill('https://example.com/eve.png')
      await dashboard.getByTestId('batch-save').click()
      await expect.poll(() => dashboard.getByTestId('batch-message').textContent()).toContain('Saved 2')
      await expect
        .poll(() => dashboard.locator('[data-testid=users] tr[data-user-id="80"] [data-testid=user-name]').textContent())
        .toBe('Kim batch')
      expect((await api('GET', '/api/users/81', token)).body.photoUrl).toBe('https://example.com/eve.png')
      // The picture of the README: live, with the counters of a `$stats` sample, not "…".
      await waitLive(dashboard)
      await expect.poll(() => dashboard.getByTestId('stat-connections').textContent(), { timeout: 5000 }).toMatch(/^\d+ connections?$/)
      await docsScreenshot(dashboard, 'admin-dashboard', 'examples/profile-app/docs/dashboard.png')
    } finally {
      await context.close()
    }
  })

  it('refuses profile to a non-admin tab, which then sees no one else\'s changes', async () => {
    const context = await browser.newContext()
    try {
      const page = await openProfile(context, server.url, '50', 'Grace')
      const frames: string[] = []
      page.on('websocket', (socket) => socket.on('framereceived', ({ payload }) => frames.push(String(payload))))
      await page.goto(`${server.url}/admin`)
      await waitLive(page)
      await expect.poll(() => page.getByTestId('forbidden').textContent()).toContain('FORBIDDEN')
      // The refusal came from the realtime server, on the wire, for the `profile` topic.
      await expect
        .poll(() => frames.map((f) => JSON.parse(f)).find((f) => f.type === 'error' && f.topic === 'profile'))
        .toMatchObject({ code: 'FORBIDDEN' })

      const token = await adminToken()
      await api('POST', '/api/auth/dev', null, { userId: '60', tgUsername: 'Ivan' })
      expect((await api('PUT', '/api/users/60', token, { tgUsername: 'Ivan changed while Grace watches' })).status).toBe(200)
      // Long enough for a patch to have arrived had it been sent (they take milliseconds).
      await page.waitForTimeout(1000)
      expect(await page.locator('[data-testid=feed] li').count()).toBe(0)
      expect(await page.content()).not.toContain('Ivan changed while Grace watches')
      expect(frames.some((f) => f.includes('Ivan changed while Grace watches'))).toBe(false)
      await screenshot(page, '5-non-admin-forbidden')
    } finally {
      await context.close()
    }
  })
})
