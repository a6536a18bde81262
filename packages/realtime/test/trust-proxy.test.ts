import type { IncomingMessage } from 'node:http'
import { describe, expect, it } from 'vitest'
import { clientAddress, trustTest } from '../src/server/admission.js'
import { useRawClient, useServer } from './utils/harness.js'
import type { TestServer } from './utils/server.js'

/** An upgrade request as `clientAddress` sees it: the socket's peer and the forwarded header. */
function request(peer: string, forwarded?: string): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } } as unknown as IncomingMessage
}

describe('clientAddress', () => {
  it("takes the socket's address when no proxy is trusted, whatever the header says", () => {
    expect(clientAddress(request('10.0.0.2', '203.0.113.9'), trustTest(undefined))).toBe('10.0.0.2')
    expect(clientAddress(request('10.0.0.2', '203.0.113.9'), trustTest(false))).toBe('10.0.0.2')
  })

  it('takes the leftmost forwarded address when every hop is trusted', () => {
    expect(clientAddress(request('10.0.0.2', '203.0.113.9, 198.51.100.1'), trustTest(true))).toBe('203.0.113.9')
  })

  it('walks a hop count from the server outwards', () => {
    const forwarded = '203.0.113.9, 198.51.100.1, 10.0.0.1'
    expect(clientAddress(request('10.0.0.2', forwarded), trustTest(1))).toBe('10.0.0.1')
    expect(clientAddress(request('10.0.0.2', forwarded), trustTest(2))).toBe('198.51.100.1')
    expect(clientAddress(request('10.0.0.2', forwarded), trustTest(9))).toBe('203.0.113.9')
  })

  it('trusts listed proxies and CIDR ranges only: a spoofed hop beyond them is not believed', () => {
    const trust = trustTest(['10.0.0.0/8', '::1'])
    // The client (203.0.113.9) wrote a fake first entry; the proxy appended the real client.
    expect(clientAddress(request('10.0.0.2', '1.2.3.4, 203.0.113.9'), trust)).toBe('203.0.113.9')
    // Not from a trusted proxy: the header is ignored.
    expect(clientAddress(request('192.0.2.7', '203.0.113.9'), trust)).toBe('192.0.2.7')
    expect(clientAddress(request('::ffff:10.1.2.3', '203.0.113.9'), trustTest('10.0.0.0/8'))).toBe('203.0.113.9')
    expect(clientAddress(request('::1', '203.0.113.9'), trust)).toBe('203.0.113.9')
  })

  it('stops at garbage in the header', () => {
    expect(clientAddress(request('10.0.0.2', 'not-an-ip'), trustTest(true))).toBe('10.0.0.2')
  })

  it('refuses a malformed option at start-up', () => {
    expect(() => trustTest(['10.0.0.0/8', 'nginx'])).toThrow(/not an IP address or CIDR range/)
    expect(() => trustTest(-1)).toThrow(/hop count/)
  })
})

describe('the per-address cap behind a proxy', () => {
  /** The running test's server (the harness closes it, and its clients, when the test ends). */
  let server: TestServer | undefined
  const connect = (forwarded: string) => useRawClient(server!.url, { headers: { 'X-Forwarded-For': forwarded } })

  it('counts the forwarded address of a trusted proxy', async () => {
    server = await useServer({ trustProxy: '127.0.0.1', limits: { maxConnectionsPerAddress: 2 } })
    await connect('203.0.113.5')
    await connect('203.0.113.5')
    await expect(connect('203.0.113.5')).rejects.toThrow(/503/)
    // Another user behind the same proxy is not refused.
    const other = await connect('203.0.113.6')
    expect(await other.request({ type: 'ping', id: 1 })).toMatchObject({ type: 'pong' })
    expect(server.realtime.stats().refused.max_connections_per_address).toBe(1)
  })

  it("ignores the header from a proxy that is not trusted, and counts the socket's address", async () => {
    server = await useServer({ trustProxy: ['10.9.9.9'], limits: { maxConnectionsPerAddress: 2 } })
    await connect('203.0.113.5')
    await connect('203.0.113.6')
    await expect(connect('203.0.113.7')).rejects.toThrow(/503/)
  })

  it('gives a place back when a connection closes', async () => {
    server = await useServer({ trustProxy: true, limits: { maxConnectionsPerAddress: 1 } })
    const first = await connect('203.0.113.5')
    first.close()
    await first.closed()
    const deadline = Date.now() + 2000
    for (;;) {
      try {
        await connect('203.0.113.5')
        break
      } catch (error) {
        if (Date.now() > deadline) throw error
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    expect(server.realtime.stats().connections).toBe(1)
  })
})
