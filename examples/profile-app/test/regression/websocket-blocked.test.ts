/**
 * Issue 16 A: with the WebSocket blocked (a proxy that refuses upgrades, an extension, the
 * realtime endpoint down) the profile page stayed at "Connecting… Loading…" forever, because it
 * fetched the profile only once its subscription was live. The page must load from REST (since
 * the profile opens from its state topic, after `REST_FALLBACK_MS`, 2 s, without a live socket),
 * stay editable, and turn live when the socket comes; the same for the dashboard's users list.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { beforeAll, describe, expect, it } from 'vitest'
import { tokenOf, useBrowserAndApp, waitLive } from '../utils/browser.js'
import { apiRequest, type AppProcess } from '../utils/process.js'

const running = useBrowserAndApp('blocked')
let browser: Browser
let server: AppProcess
beforeAll(() => {
  ;({ browser, server } = running)
})

/**
 * Replaces the page's WebSocket with one that fails as a refused upgrade does (an `error`, then a
 * `close` 1006, never `open`), until `window.__allowWebSocket` is set; then real sockets again.
 */
async function blockWebSocket(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    const Real = window.WebSocket
    const w = window as unknown as { __allowWebSocket?: boolean; __refusedSockets: number }
    w.__refusedSockets = 0
    class Refused extends EventTarget {
      static readonly CONNECTING = 0
      static readonly OPEN = 1
      static readonly CLOSING = 2
      static readonly CLOSED = 3
      readyState = 0
      protocol = ''
      extensions = ''
      bufferedAmount = 0
      binaryType = 'blob'
      constructor(readonly url: string, protocols?: string | string[]) {
        if (w.__allowWebSocket) return new Real(url, protocols) as unknown as Refused
        super()
        w.__refusedSockets++
        setTimeout(() => {
          this.readyState = 3
          this.dispatchEvent(new Event('error'))
          this.dispatchEvent(new CloseEvent('close', { code: 1006, wasClean: false }))
        }, 20)
      }
      send(): void {
        throw new DOMException('WebSocket is not open', 'InvalidStateError')
      }
      close(): void {}
    }
    window.WebSocket = Refused as unknown as typeof WebSocket
  })
}

async function refusedSockets(page: Page): Promise<number> {
  return page.evaluate(() => (window as unknown as { __refusedSockets: number }).__refusedSockets)
}

const api = (method: string, path: string, token: string | null, body?: unknown) => apiRequest(server.url, method, path, token, body)

async function signIn(page: Page, userId: string, name: string): Promise<void> {
  await page.goto(server.url)
  await page.locator('input[name=userId]').fill(userId)
  await page.locator('input[name=tgUsername]').fill(name)
  await page.locator('[data-testid=dev-login-submit]').click()
}

describe('with the WebSocket refused', () => {
  it('loads the profile from REST within the fallback delay, saves an edit, and turns live when the socket comes', async () => {
    const context = await browser.newContext()
    try {
      await blockWebSocket(context)
      const page = await context.newPage()
      await signIn(page, '90', 'Olga')
      await page.getByTestId('profile-name').waitFor({ timeout: 5000 })
      await expect.poll(() => page.getByTestId('profile-name').textContent(), { timeout: 5000 }).toBe('Olga')
      expect(await page.getByTestId('connection').getAttribute('data-state')).not.toBe('connected')
      expect(await refusedSockets(page)).toBeGreaterThan(0)

      await page.getByTestId('edit-profile').click()
      await page.locator('input[name=tgUsername]').fill('Olga offline')
      await page.getByTestId('save').click()
      await expect.poll(() => page.getByTestId('profile-name').textContent()).toBe('Olga offline')
      expect((await api('GET', '/api/users/90', await tokenOf(page))).body.tgUsername).toBe('Olga offline')

      // The socket comes back: the page goes live and takes patches again.
      await page.evaluate(() => ((window as unknown as { __allowWebSocket: boolean }).__allowWebSocket = true))
      await page.locator('[data-testid=connection][data-state=connected]').waitFor({ timeout: 20_000 })
      expect((await api('PUT', '/api/users/90', await tokenOf(page), { tgUsername: 'Olga live' })).status).toBe(200)
      await expect.poll(() => page.getByTestId('profile-name').textContent(), { timeout: 3000 }).toBe('Olga live')
    } finally {
      await context.close()
    }
  }, 60_000)

  it('shows the dashboard\'s users list from REST', async () => {
    const context = await browser.newContext()
    try {
      await api('POST', '/api/auth/dev', null, { userId: '91', tgUsername: 'Pavel' })
      await blockWebSocket(context)
      const page = await context.newPage()
      await signIn(page, '1', 'Admin')
      await page.getByTestId('profile-name').waitFor({ timeout: 5000 })
      await page.goto(`${server.url}/admin`)
      await page.locator('[data-testid=users] tr[data-user-id="91"]').waitFor({ timeout: 5000 })
      await expect
        .poll(() => page.locator('[data-testid=users] tr[data-user-id="91"] [data-testid=user-name]').textContent(), { timeout: 5000 })
        .toBe('Pavel')
      expect(await page.getByTestId('connection').getAttribute('data-state')).not.toBe('connected')

      await page.evaluate(() => ((window as unknown as { __allowWebSocket: boolean }).__allowWebSocket = true))
      await waitLive(page)
    } finally {
      await context.close()
    }
  }, 60_000)
})
