import { connect } from 'node:net'

/** The port of a service URL, or the service's default port when the URL names none. */
export function portOf(url: string, defaultPort: number): number {
  return Number(new URL(url).port) || defaultPort
}

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const postgresUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'

/** Services the test suite talks to, with how to start each one (on the port the URL names). */
const SERVICES = [
  {
    name: 'Redis',
    url: redisUrl,
    defaultPort: 6379,
    start: `redis-server --daemonize yes --bind 127.0.0.1 --port ${portOf(redisUrl, 6379)} --save '' --appendonly no`,
  },
  {
    name: 'PostgreSQL',
    url: postgresUrl,
    defaultPort: 5432,
    start: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start (database "test", trust auth), or set DATABASE_URL',
  },
]

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ host: hostname || '127.0.0.1', port: portOf(url, defaultPort) })
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
