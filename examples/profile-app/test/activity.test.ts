/**
 * The admin activity page in Debian's Chromium, fed by the `$stats` topic: with one instance it
 * follows the traffic a test drives (connections, publishes, a refusal) in its counters and
 * charts; with two instances on Redis it shows the sum of both, checked against each instance's
 * own `/metrics`.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BOT_TOKEN, SESSION_SECRET } from './utils/app.js'
import { docsScreenshot, launchBrowser, openProfile, screenshot } from './utils/browser.js'
import { startAppProcess, type AppProcess } from './utils/process.js'
import { parseExposition, valueOf } from './utils/prometheus.js'
import { deleteRedisKeys, requireRedis } from './utils/services.js'
// The library's raw protocol client: one for both packages' tests.
import { RawClient } from '../../../packages/realtime/test/utils/raw-client.js'

let browser: Browser
let dataDir: string
const processes: AppProcess[] = []
const clients: RawClient[] = []

beforeAll(async () => {
  browser = await launchBrowser()
  dataDir = mkdtempSync(join(tmpdir(), 'profile-app-activity-'))
})

afterAll(async () => {
  for (const client of clients) client.close()
  await browser?.close()
  for (const process of processes) await process.stop()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

async function signIn(url: string, userId: string): Promise<string> {
  const response = await fetch(`${url}/api/auth/dev`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  })
  return ((await response.json()) as { token: string }).token
}

/** A signed-in raw WebSocket client subscribed to the user's own topic. */
async function connectUser(url: string, userId: string): Promise<RawClient> {
  const token = await signIn(url, userId)
  const client = await RawClient.connect(url.replace('http', 'ws') + '/ws')
  clients.push(client)
  await client.hello(token)
  await client.subscribe(1, `user:${userId}`)
  return client
}

async function edit(url: string, userId: string, token: string, name: string): Promise<void> {
  const response = await fetch(`${url}/api/users/${userId}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tgUsername: name }),
  })
  expect(response.status).toBe(200)
}

async function openActivity(url: string): Promise<Page> {
  const page = await openProfile(await browser.newContext({ viewport: { width: 800, height: 900 } }), url, '1', 'Admin')
  await page.goto(`${url}/admin/activity`)
  await page.locator('[data-testid=activity][data-status=subscribed]').waitFor()
  return page
}

const counter = async (page: Page, name: string) => Number(await page.getByTestId(name).getAttribute('data-value'))

describe('activity page, one instance', () => {
  it('follows connections, messages, busiest topics and refusals live, in counters and charts', async () => {
    const server = await startAppProcess({ SQLITE_PATH: join(dataDir, 'one.db'), BOT_TOKEN, SESSION_SECRET, DATABASE_URL: '', REDIS_URL: '' })
    processes.push(server)
    const page = await openActivity(server.url)
    // The page's own connection, once the first sample arrived.
    await expect.poll(() => counter(page, 'total-instances'), { timeout: 5000 }).toBe(1)
    await expect.poll(() => counter(page, 'total-connections'), { timeout: 5000 }).toBe(1)
    const publishedBefore = await counter(page, 'total-published')
    // Idle: the instance's own `$stats` samples (one a second) are not counted as published traffic.
    await page.waitForTimeout(2500)
    expect(await counter(page, 'total-published')).toBe(publishedBefore)
    expect(await counter(page, 'total-published-rate')).toBe(0)

    // Three more connections, each on its own topic.
    for (const userId of ['21', '22', '23']) await connectUser(server.url, userId)
    await expect.poll(() => counter(page, 'total-connections'), { timeout: 5000 }).toBe(4)

    // A plain user's tab asks for `profile`: refused, and listed.
    const intruder = await RawClient.connect(server.url.replace('http', 'ws') + '/ws')
    clients.push(intruder)
    await intruder.hello(await signIn(server.url, '24'))
    expect(await intruder.subscribe(1, 'profile')).toMatchObject({ type: 'error', code: 'FORBIDDEN' })
    await page.locator('[data-testid=refusals] li[data-reason=forbidden][data-topic=profile]').waitFor({ timeout: 5000 })

    // Traffic for a few seconds: edits of user 21, about 10 a second, so the rate chart rises.
    const token = await signIn(server.url, '21')
    const until = Date.now() + 6000
    const traffic = (async () => {
      for (let i = 0; Date.now() < until && i < 300; i++) {
        await edit(server.url, '21', token, `Busy ${i}`)
        // Bursts and pauses, so the line has a shape.
        await new Promise((resolve) => setTimeout(resolve, i % 20 < 10 ? 40 : 200))
      }
    })()
    // While the traffic runs: the rate is up.
    await expect.poll(async () => Number(await page.getByTestId('total-published-rate').getAttribute('data-value')), { timeout: 5000 }).toBeGreaterThan(1)
    await traffic
    await expect.poll(() => counter(page, 'total-published'), { timeout: 5000 }).toBeGreaterThan(publishedBefore + 30)
    await expect.poll(async () => Number(await page.getByTestId('chart-connections').getAttribute('data-points')), { timeout: 5000 }).toBeGreaterThan(4)
    // The messages chart has drawn a line whose peak is above zero.
    const messagesChart = page.getByTestId('chart-messages')
    expect(await messagesChart.locator('polyline').count()).toBe(2)
    const peak = await messagesChart.locator('polyline').first().evaluate((line) => {
      const ys = (line.getAttribute('points') ?? '').split(' ').map((p) => Number(p.split(',')[1]))
      return Math.min(...ys) < Math.max(...ys)
    })
    expect(peak).toBe(true)
    // Busiest topics: `user:21` has its subscriber; `$stats` has the page.
    await page.locator('[data-testid=busiest-topics] tr[data-topic="user:21"][data-subscribers="1"]').waitFor({ timeout: 5000 })
    await page.locator('[data-testid=busiest-topics] tr[data-topic="$stats"]').waitFor({ timeout: 5000 })

    await docsScreenshot(page, 'activity-dashboard', 'docs/activity-dashboard.png')

    // Connections leave: the count follows.
    for (const client of clients.splice(0)) client.close()
    await expect.poll(() => counter(page, 'total-connections'), { timeout: 5000 }).toBe(1)
    await page.context().close()
  }, 60_000)
})

describe('activity page, two instances on Redis', () => {
  const prefix = `profile-app-activity:${process.pid}:${Date.now().toString(36)}:`
  afterAll(async () => {
    await deleteRedisKeys(prefix)
  })

  it('shows the sum of both instances', async () => {
    const redisUrl = await requireRedis()
    const env = { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, SQLITE_PATH: join(dataDir, 'two.db'), SESSION_SECRET, BOT_TOKEN, DATABASE_URL: '' }
    const a = await startAppProcess(env)
    processes.push(a)
    const b = await startAppProcess(env)
    processes.push(b)
    const page = await openActivity(a.url)
    await connectUser(a.url, '31')
    for (const userId of ['33', '34', '35']) await connectUser(b.url, userId)

    // The page and one client on A, three clients on B.
    await expect.poll(() => counter(page, 'total-instances'), { timeout: 5000 }).toBe(2)
    await expect.poll(() => counter(page, 'total-connections'), { timeout: 5000 }).toBe(5)
    const rows = page.locator('[data-testid=instances] tr')
    expect(await rows.count()).toBe(2)
    const perInstance = (await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute('data-connections'))))).sort()
    expect(perInstance).toEqual([2, 3])

    // What each instance says of itself.
    const scraped = await Promise.all(
      [a, b].map(async (server) => valueOf(parseExposition(await (await fetch(`${server.url}/metrics`)).text()), 'realtime_connections')),
    )
    expect(scraped).toEqual([2, 3])
    expect(await counter(page, 'total-connections')).toBe(scraped[0]! + scraped[1]!)
    await screenshot(page, 'activity-two-instances')
    await page.context().close()
  }, 60_000)
})
