/**
 * Starts the server from environment variables. `--demo` (what `npm start` passes) enables the
 * dev login and makes user 1 an admin unless DEV_LOGIN / ADMIN_USER_IDS say otherwise.
 */
import type { AddressInfo } from 'node:net'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

const demo = process.argv.includes('--demo')
let config
try {
  config = loadConfig(process.env, { demo })
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`profile-app: ${error.message}`)
    process.exit(1)
  }
  throw error
}

const app = await buildApp(config)
await app.listen({ port: config.port, host: config.host })
const url = bannerUrl(
  app.addresses().filter((a): a is AddressInfo => typeof a === 'object'),
  config.port,
)
const admins = [...config.adminUserIds]
const lines = [
  '',
  `  Profile app running at ${url}`,
  `  storage: ${'databaseUrl' in config.storage ? 'PostgreSQL' : `SQLite ${config.storage.sqlitePath}`}; bus: ${config.redisUrl ? 'Redis' : 'in-memory'}`,
]
if (config.devLogin) {
  lines.push(
    `  Sign in: open ${url}, type a user id and press "Sign in (dev)".`,
    admins.length
      ? `  Admins: ${admins.join(', ')} (sign in as ${admins[0]} for the dashboard at ${url}/admin); any other id is a plain user.`
      : '  No admins (set ADMIN_USER_IDS).',
  )
} else {
  lines.push('  Sign in: open the app from Telegram (BOT_TOKEN signs its init data).')
}
console.log(lines.join('\n') + '\n')

/**
 * The address to open, as the server listens: `localhost` only when it listens on both loopback
 * families (a browser may try ::1 first), else the one address (an IPv4-only host listens on
 * 127.0.0.1 alone, and `localhost` could then be refused).
 */
function bannerUrl(addresses: AddressInfo[], fallbackPort: number): string {
  const port = addresses[0]?.port ?? fallbackPort
  const hosts = new Set(addresses.map((a) => a.address))
  if (hosts.size === 0 || hosts.has('0.0.0.0') || hosts.has('::') || (hosts.has('127.0.0.1') && hosts.has('::1'))) return `http://localhost:${port}`
  const first = addresses[0]!
  return `http://${first.family === 'IPv6' ? `[${first.address}]` : first.address}:${port}`
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  })
}
