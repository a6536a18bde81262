/**
 * One WebSocket for every tab (the client's `shared` option, which the app turns on, keyed by the
 * signed-in user): five tabs of one user in Debian's Chromium hold one connection in all, as the
 * server counts them; when the tab holding it closes, another takes over and the next 100 patches
 * reach every remaining tab, none missing, none twice.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { beforeAll, describe, expect, it } from 'vitest'
import { openProfile, tokenOf, useBrowserAndApp, waitLive } from './utils/browser.js'
import { apiRequest, type AppProcess } from './utils/process.js'
import { parseExposition, valueOf } from './utils/prometheus.js'

const running = useBrowserAndApp('shared-socket')
let browser: Browser
let server: AppProcess
beforeAll(() => {
  ;({ browser, server } = running)
})

/** The server's own count of open WebSocket connections. */
async function connections(): Promise<number> {
  return valueOf(parseExposition(await (await fetch(`${server.url}/metrics`)).text()), 'realtime_connections')
}

async function rename(userId: string, token: string, tgUsername: string): Promise<void> {
  expect((await apiRequest(server.url, 'PUT', `/api/users/${userId}`, token, { tgUsername })).status).toBe(200)
}

/** Counts the WebSockets each tab of `context` opens, from its creation on. */
function countSockets(context: BrowserContext): Map<Page, number> {
  const sockets = new Map<Page, number>()
  context.on('page', (page) => page.on('websocket', () => sockets.set(page, (sockets.get(page) ?? 0) + 1)))
  return sockets
}

/** Records the names in the patches of `topic` that the tab's client emits, in order. */
async function recordPatches(page: Page, topic: string): Promise<void> {
  await page.evaluate((topic) => {
    const w = window as unknown as { realtimeClient: { on(e: string, f: (m: any) => void): void }; received: string[] }
    w.received = []
    w.realtimeClient.on('patch', (m) => {
      if (m.topic === topic) w.received.push(m.payload.tgUsername)
    })
  }, topic)
}

const received = (page: Page) => page.evaluate(() => (window as unknown as { received: string[] }).received)

describe('tabs of one signed-in user', () => {
  it('hold one WebSocket in all; when its tab closes another takes over, with no patch lost or repeated', async () => {
    const context = await browser.newContext()
    const sockets = countSockets(context)
    try {
      const userId = '4100'
      const tabs = [await openProfile(context, server.url, userId, 'Shared')]
      for (let i = 1; i < 5; i++) tabs.push(await openProfile(context, server.url))
      for (const tab of tabs) await waitLive(tab)
      await expect.poll(connections, { timeout: 5000 }).toBe(1)
      const total = () => [...sockets.values()].reduce((a, b) => a + b, 0)
      expect(total()).toBe(1)
      const leader = tabs.find((tab) => sockets.get(tab) === 1)!
      // Every tab reports the one connection, as live.
      const ids = await Promise.all(tabs.map((tab) => tab.evaluate(() => (window as unknown as { realtimeClient: { connectionId?: string } }).realtimeClient.connectionId)))
      expect(new Set(ids).size).toBe(1)
      expect(ids[0]).toBeTruthy()
      console.log(`5 tabs: ${await connections()} server connection(s), ${total()} WebSocket(s) opened by the tabs`)

      const token = await tokenOf(tabs[0]!)
      await rename(userId, token, 'Seen by all five')
      for (const tab of tabs) {
        await expect.poll(() => tab.getByTestId('profile-name').textContent(), { timeout: 2000 }).toBe('Seen by all five')
      }

      const rest = tabs.filter((tab) => tab !== leader)
      for (const tab of rest) await recordPatches(tab, `user:${userId}`)
      await leader.close()
      // Another tab opened the one new socket; the server is back to one connection.
      await expect.poll(total, { timeout: 5000 }).toBe(2)
      await expect.poll(connections, { timeout: 5000 }).toBe(1)
      for (const tab of rest) await waitLive(tab)

      const names = Array.from({ length: 100 }, (_, i) => `patch ${i}`)
      for (const name of names) await rename(userId, token, name)
      for (const tab of rest) {
        await expect.poll(async () => (await received(tab)).at(-1), { timeout: 5000 }).toBe('patch 99')
      }
      // Time for a late duplicate to show, had one been sent.
      await rest[0]!.waitForTimeout(300)
      for (const tab of rest) expect(await received(tab)).toEqual(names)
      expect(await connections()).toBe(1)
      console.log(`after the takeover: ${rest.length} tabs received the ${names.length} patches each, in order, once`)
    } finally {
      await context.close()
    }
  }, 60_000)

  it('lose and repeat no patch published while the next tab takes over', async () => {
    const context = await browser.newContext()
    const sockets = countSockets(context)
    try {
      const userId = '4200'
      const tabs = [await openProfile(context, server.url, userId, 'Busy')]
      for (let i = 1; i < 4; i++) tabs.push(await openProfile(context, server.url))
      const token = await tokenOf(tabs[0]!)
      const leader = tabs.find((tab) => sockets.get(tab) === 1)!
      const rest = tabs.filter((tab) => tab !== leader)
      for (const tab of rest) await recordPatches(tab, `user:${userId}`)
      await leader.close()
      // At once: the first patches are published before the next leader has its socket.
      const names = Array.from({ length: 100 }, (_, i) => `during ${i}`)
      for (const name of names) await rename(userId, token, name)
      for (const tab of rest) {
        await expect.poll(async () => (await received(tab)).at(-1), { timeout: 5000 }).toBe('during 99')
      }
      await rest[0]!.waitForTimeout(300)
      for (const tab of rest) expect(await received(tab)).toEqual(names)
      expect(await connections()).toBe(1)
    } finally {
      await context.close()
    }
  }, 60_000)
})
