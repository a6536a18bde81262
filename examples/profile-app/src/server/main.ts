/**
 * Starts the server from environment variables. `--demo` (what `npm start` passes) enables the
 * dev login and makes user 1 an admin unless DEV_LOGIN / ADMIN_USER_IDS say otherwise.
 */
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
const address = app.server.address()
const port = typeof address === 'object' && address ? address.port : config.port
const url = `http://localhost:${port}`
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

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  })
}
