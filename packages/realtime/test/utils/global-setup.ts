import { connect } from 'node:net'

/** Services the test suite talks to, with how to start each one. */
const SERVICES = [
  {
    name: 'Redis',
    url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    defaultPort: 6379,
    start: "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
  },
]

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ host: hostname || '127.0.0.1', port: Number(port) || defaultPort })
    socket.setTimeout(2000)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(false))
  })
}

/**
 * Says plainly, before any test runs, which service is missing and how to start it. In CI a
 * missing service fails the run; locally the tests that need it fail with the same advice.
 */
export default async function setup(): Promise<void> {
  const missing: string[] = []
  for (const service of SERVICES) {
    if (!(await reachable(service.url, service.defaultPort))) {
      missing.push(`${service.name} is not reachable at ${service.url}. Start it with:\n  ${service.start}`)
    }
  }
  if (missing.length === 0) return
  const message = `Test services missing:\n${missing.join('\n')}`
  if (process.env.CI) throw new Error(message)
  console.warn(message)
}
