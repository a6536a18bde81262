import { createServer, connect, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

/**
 * A TCP proxy in front of a server that can kill its open connections silently, as a phone's
 * sleep or a network change does: their bytes are dropped both ways from then on, with no FIN and
 * no RST, so neither end notices. New connections work.
 */
export interface CuttableProxy {
  url(path?: string): string
  /** Blackholes every connection open now. */
  cut(): void
  /** Connections the proxy accepted so far. */
  readonly accepted: number
  close(): Promise<void>
}

export async function startCuttableProxy(targetPort: number): Promise<CuttableProxy> {
  let accepted = 0
  const dead = new WeakSet<Socket>()
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    accepted++
    const upstream = connect(targetPort, '127.0.0.1')
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from)
      from.on('data', (chunk) => {
        if (!dead.has(from)) to.write(chunk)
      })
      from.on('close', () => {
        sockets.delete(from)
        to.destroy()
      })
      from.on('error', () => undefined)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: (path = '/ws') => `ws://127.0.0.1:${port}${path}`,
    cut() {
      for (const socket of sockets) dead.add(socket)
    },
    get accepted() {
      return accepted
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
