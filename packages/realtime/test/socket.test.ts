import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { RealtimeSocket, textFrame } from '../src/server/socket.js'

/** A server-side RealtimeSocket and the `ws` client on the other end of a real TCP connection. */
async function pair(): Promise<{ server: RealtimeSocket; client: WebSocket; http: Server; wss: WebSocketServer }> {
  const http = createServer()
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, WebSocket: RealtimeSocket })
  const accepted = new Promise<RealtimeSocket>((resolve) => {
    http.on('upgrade', (request, socket: Duplex, head) => wss.handleUpgrade(request, socket, head, (ws) => resolve(ws as RealtimeSocket)))
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const client = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}`, { perMessageDeflate: false })
  client.on('error', () => {})
  const server = await accepted
  await new Promise((resolve) => client.once('open', resolve))
  return { server, client, http, wss }
}

const open: Awaited<ReturnType<typeof pair>>[] = []
afterEach(async () => {
  for (const p of open.splice(0)) {
    p.client.terminate()
    p.server.terminate()
    await new Promise<void>((resolve) => p.wss.close(() => resolve()))
    p.http.closeAllConnections()
    await new Promise<void>((resolve) => p.http.close(() => resolve()))
  }
})

/** Pauses the client's TCP stream: the server's writes pile up in its kernel buffer, then in its stream. */
const pauseReading = (client: WebSocket) => (client as unknown as { _socket: Duplex })._socket.pause()
const resumeReading = (client: WebSocket) => (client as unknown as { _socket: Duplex })._socket.resume()

function flood(socket: RealtimeSocket, bytes: number): void {
  const text = 'x'.repeat(64 * 1024)
  const frame = textFrame(text, text.length)
  for (let sent = 0; sent < bytes; sent += frame.length) socket.sendFramed(frame)
}

describe('RealtimeSocket', () => {
  describe('#sendFramed', () => {
    it('writes a frame the peer reads as one text message', async () => {
      const p = await pair()
      open.push(p)
      const got = new Promise<string>((resolve) => p.client.once('message', (data) => resolve(data.toString())))
      const text = '{"type":"patch","topic":"t","payload":"é"}'
      p.server.sendFramed(textFrame(text, Buffer.byteLength(text)))
      expect(await got).toBe(text)
    })
  })

  describe('#drained', () => {
    it('answers at once while the buffer is under the mark', async () => {
      const p = await pair()
      open.push(p)
      expect(await p.server.drained(1024, 10)).toBe('drained')
    })

    it("times out while the peer does not read, then resolves on the stream's drain once it does", async () => {
      const p = await pair()
      open.push(p)
      pauseReading(p.client)
      flood(p.server, 16 * 1024 * 1024)
      expect(p.server.bufferedAmount).toBeGreaterThan(1024 * 1024)
      const started = Date.now()
      expect(await p.server.drained(1024, 300)).toBe('timeout')
      expect(Date.now() - started).toBeGreaterThanOrEqual(290)
      const drained = p.server.drained(1024, 10_000)
      resumeReading(p.client)
      expect(await drained).toBe('drained')
      expect(p.server.bufferedAmount).toBeLessThanOrEqual(1024)
    })

    it('resolves `closed` when the socket goes while waiting', async () => {
      const p = await pair()
      open.push(p)
      pauseReading(p.client)
      flood(p.server, 16 * 1024 * 1024)
      const waiting = p.server.drained(1024, 10_000)
      p.server.terminate()
      expect(await waiting).toBe('closed')
      expect(await p.server.drained(1024, 10)).toBe('closed')
    })
  })
})
