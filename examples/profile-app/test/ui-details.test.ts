/**
 * Issue 16 item 11, the rough edges seen in screenshots, in Debian's Chromium: a refused
 * dashboard shows no feed, sign-in errors are readable, long names wrap, cards have a gap,
 * counts agree in number, the activity page is readable at 390 px, and the start banner names
 * the address the server listens on.
 */
import type { Browser, Page } from 'playwright-core'
import { beforeAll, describe, expect, it } from 'vitest'
import { openProfile, tokenOf, useBrowserAndApp, waitLive } from './utils/browser.js'
import type { AppProcess } from './utils/process.js'

const running = useBrowserAndApp('ui')
let browser: Browser
let server: AppProcess
beforeAll(() => {
  ;({ browser, server } = running)
})

/** Whether the page scrolls sideways (something is wider than the viewport). */
const overflowsSideways = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth)

describe('details of the pages', () => {
  it('prints the address it listens on in the start banner', () => {
    // HOST=127.0.0.1 here: the banner must not send people to `localhost`, which may be ::1.
    expect(server.output()).toMatch(/running at http:\/\/127\.0\.0\.1:\d+/)
    expect(server.output()).not.toContain('http://localhost')
  })

  it('shows a plain user at /admin the refusal and no live feed', async () => {
    const context = await browser.newContext()
    try {
      const page = await openProfile(context, server.url, '200', 'Uma')
      await page.goto(`${server.url}/admin`)
      await waitLive(page)
      await expect.poll(() => page.getByTestId('forbidden').textContent()).toContain('FORBIDDEN')
      expect(await page.getByText('Live feed').count()).toBe(0)
      expect(await page.getByText('No changes yet').count()).toBe(0)
    } finally {
      await context.close()
    }
  })

  it('says in words what is wrong with a non-numeric user id', async () => {
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      await page.goto(server.url)
      await page.locator('input[name=userId]').fill('abc')
      await page.locator('[data-testid=dev-login-submit]').click()
      const error = page.getByTestId('sign-in-error')
      await expect.poll(() => error.textContent()).toContain('User id must be a whole number')
      expect(await error.textContent()).not.toMatch(/pattern|\^\[/)
    } finally {
      await context.close()
    }
  })

  it('keeps the dashboard within the window with a 64-character unbroken name, cards apart', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } })
    try {
      const admin = await openProfile(context, server.url, '1', 'Admin')
      await admin.goto(`${server.url}/admin`)
      await waitLive(admin)
      const response = await fetch(`${server.url}/api/users/1`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${await tokenOf(admin)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tgUsername: 'W'.repeat(64) }),
      })
      expect(response.status).toBe(200)
      await admin.locator('[data-testid=feed] li[data-user-id="1"]').waitFor({ timeout: 3000 })
      expect(await overflowsSideways(admin)).toBe(false)

      const gaps = await admin.locator('.dashboard > .card').evaluateAll((cards) =>
        cards.slice(1).map((card, i) => card.getBoundingClientRect().top - cards[i]!.getBoundingClientRect().bottom),
      )
      expect(gaps.length).toBeGreaterThan(1)
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(12)
    } finally {
      await context.close()
    }
  })

  it('reads well at 390 px on the activity page: labels of 10 px or more, one line per number', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } })
    try {
      const page = await openProfile(context, server.url, '1', 'Admin')
      await page.goto(`${server.url}/admin/activity`)
      await page.locator('[data-testid=activity][data-status=subscribed]').waitFor()
      await page.locator('[data-testid=instances] tr').first().waitFor({ timeout: 5000 })
      await page.locator('[data-testid=busiest-topics] tr[data-topic="$stats"]').waitFor({ timeout: 5000 })

      const labelHeights = await page.locator('[data-testid=chart-connections] text.axis').evaluateAll((texts) =>
        texts.map((text) => text.getBoundingClientRect().height),
      )
      expect(labelHeights.length).toBeGreaterThan(3)
      for (const height of labelHeights) expect(height).toBeGreaterThanOrEqual(10)

      // Every number cell of an instance row stays on one line.
      const lines = await page.locator('[data-testid=instances] tr td:not(:first-child)').evaluateAll((cells) =>
        cells.map((cell) => {
          const range = document.createRange()
          range.selectNodeContents(cell)
          return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size
        }),
      )
      expect(lines.length).toBeGreaterThan(0)
      expect(lines.every((n) => n === 1)).toBe(true)
      expect(await overflowsSideways(page)).toBe(false)

      // "1 subscriber", not "1 subscribers": the page itself is the one subscriber of `$stats`.
      expect(await page.locator('[data-testid=busiest-topics] tr[data-topic="$stats"]').textContent()).toContain('1 subscriber')
      expect(await page.locator('[data-testid=busiest-topics] tr[data-topic="$stats"]').textContent()).not.toContain('1 subscribers')
    } finally {
      await context.close()
    }
  })
})
