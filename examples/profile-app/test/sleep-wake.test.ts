/**
 * A phone's webview asleep or off the network, in Debian's Chromium: the page's network is cut
 * (CDP offline emulation) or the page frozen (`Page.setWebLifecycleState`), the profile changes
 * twice on the server meanwhile, and once the page is back it must show the second change within
 * 1.5 s (p95), with no reload.
 *
 * The version is 10 trials of a 60 s cut each way (about 22 minutes): run it with
 * `REALTIME_LONG_TESTS=1`. The default is 2 trials of an 8 s cut each way, which still asserts the
 * 1.5 s bound. A socket survives 8 s of either (Chromium keeps it; the server's heartbeat is 25 s),
 * so the short version also breaks the page's connection during the cut, through a TCP proxy, as a
 * long sleep or a network change does: the page must then find it dead and reconnect at once
 * instead of after its backoff.
 */
import type { Browser, CDPSession, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { countNavigations, openProfile, tokenOf, useBrowserAndApp } from './utils/browser.js'
import { apiRequest, type AppProcess } from './utils/process.js'
import { startTcpProxy, type TcpProxy } from './utils/tcp-proxy.js'

const LONG = process.env.REALTIME_LONG_TESTS === '1'
const TRIALS = LONG ? 10 : 2
const CUT_MS = LONG ? 60_000 : 8_000
const BOUND_MS = 1500

const running = useBrowserAndApp('sleep-wake')
let browser: Browser
let server: AppProcess
let proxy: TcpProxy
beforeAll(async () => {
  ;({ browser, server } = running)
  proxy = await startTcpProxy(server.url)
})

afterAll(async () => {
  await proxy?.close()
})

async function rename(userId: string, token: string, tgUsername: string): Promise<void> {
  expect((await apiRequest(server.url, 'PUT', `/api/users/${userId}`, token, { tgUsername })).status).toBe(200)
}

function badge(page: Page): Promise<string | null> {
  return page.getByTestId('connection').getAttribute('data-state')
}

/** How the page is put to sleep and woken. */
interface Sleep {
  name: string
  start(cdp: CDPSession, page: Page): Promise<void>
  end(cdp: CDPSession): Promise<void>
}

const offline: Sleep = {
  name: 'offline',
  async start(cdp, page) {
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
    // The `offline` event says so at once: no stale data shown as "Live".
    await expect.poll(() => badge(page), { timeout: 1000, interval: 20 }).toBe('disconnected')
  },
  async end(cdp) {
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
  },
}

const frozen: Sleep = {
  name: 'frozen',
  async start(cdp) {
    await cdp.send('Page.setWebLifecycleState', { state: 'frozen' })
  },
  async end(cdp) {
    await cdp.send('Page.setWebLifecycleState', { state: 'active' })
  },
}

/** One trial: sleep, two changes on the server, wake; returns ms from the wake to the second change on screen. */
async function trial(sleep: Sleep, n: number): Promise<number> {
  const context = await browser.newContext()
  try {
    const userId = String(7000 + n + (sleep === frozen ? 500 : 0))
    const page = await openProfile(context, proxy.url, userId, `sleeper ${n}`)
    const navigations = countNavigations(page)
    const token = await tokenOf(page)
    const cdp = await context.newCDPSession(page)
    await sleep.start(cdp, page)
    if (!LONG) proxy.killOpenConnections()
    await new Promise((resolve) => setTimeout(resolve, CUT_MS / 3))
    await rename(userId, token, `first change ${n}`)
    await new Promise((resolve) => setTimeout(resolve, CUT_MS / 3))
    const second = `second change ${n}`
    await rename(userId, token, second)
    await new Promise((resolve) => setTimeout(resolve, CUT_MS / 3))
    const woke = performance.now()
    await sleep.end(cdp)
    await page.waitForFunction(
      (name) => document.querySelector('[data-testid=profile-name]')?.textContent === name,
      second,
      { timeout: 15_000, polling: 10 },
    )
    const elapsed = performance.now() - woke
    expect(navigations()).toBe(0)
    await expect.poll(() => badge(page), { timeout: 2000 }).toBe('connected')
    await cdp.detach()
    return elapsed
  } finally {
    await context.close()
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

describe('a page that slept', () => {
  for (const sleep of [offline, frozen]) {
    it(
      `shows the second change within ${BOUND_MS} ms (p95) after ${CUT_MS / 1000} s ${sleep.name}, with no reload`,
      async () => {
        const figures: number[] = []
        for (let n = 0; n < TRIALS; n++) {
          figures.push(await trial(sleep, n))
          if (LONG) console.log(`${sleep.name} trial ${n + 1}/${TRIALS}: ${figures.at(-1)!.toFixed(0)} ms`)
        }
        const sorted = [...figures].sort((a, b) => a - b)
        const p50 = percentile(sorted, 50)
        const p95 = percentile(sorted, 95)
        console.log(
          `wake after ${CUT_MS / 1000} s ${sleep.name}, ${TRIALS} trials: p50 ${p50.toFixed(0)} ms, p95 ${p95.toFixed(0)} ms ` +
            `(each: ${figures.map((f) => f.toFixed(0)).join(', ')})`,
        )
        expect(p95).toBeLessThan(BOUND_MS)
      },
      TRIALS * (CUT_MS + 30_000),
    )
  }
})
