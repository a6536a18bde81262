/**
 * What presence costs per member, on the in-memory bus and on Redis (`REDIS_URL`), in one run.
 * Prints numbers; it is not a timed test.
 *
 *   npm run presence-cost -w bench [-- --members 2000 --rounds 3]
 *
 * For each bus, with and without the `presence` option on the topic: `--members` connections
 * (each its own principal) subscribe to one topic watched by one admin connection, then close.
 * The difference between the two runs' process CPU (server and clients share this process; the
 * clients do the same work in both) is what presence adds per member join and per leave. On
 * Redis (a `redis-server` of its own on a free port, so no other client counts), also the
 * commands and the Redis CPU (from `INFO commandstats`) per member, join and leave together.
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import WebSocket from 'ws'
import { createRealtimeServer, InMemoryBus, type Bus } from '../../packages/realtime/src/server/index.js'
import { RedisBus } from '../../packages/realtime/src/redis/index.js'

const { values } = parseArgs({ options: { members: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '3' } } })
const MEMBERS = Number(values.members)
const ROUNDS = Number(values.rounds)
const TOPIC = 'room:bench'
/** Commands the bus sends itself (not those a script runs). */
const TOP_LEVEL = new Set(['evalsha', 'eval', 'sadd', 'zadd', 'zrangebyscore', 'smembers', 'del', 'zrem', 'get', 'ping', 'subscribe', 'unsubscribe'])

interface Phase {
  cpuUs: number
  ms: number
}
interface RunResult {
  join: Phase
  leave: Phase
  frames: number
  redisCalls?: number
  redisUs?: number
}

function cpuNow(): number {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

async function commandStats(redis: Redis): Promise<{ calls: number; usec: number; by: Record<string, number> }> {
  const text = (await redis.info('commandstats')) as string
  let calls = 0
  let usec = 0
  const by: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const match = /^cmdstat_([\w|]+):calls=(\d+),usec=(\d+)/.exec(line)
    if (match) by[match[1]!] = Number(match[2])
    // Round trips: the commands a client sent. A script's own commands are counted inside its time.
    if (match && TOP_LEVEL.has(match[1]!)) {
      calls += Number(match[2])
      usec += Number(match[3])
    }
  }
  return { calls, usec, by }
}

function open(url: string, auth: unknown, onFrame?: (text: string) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.once('error', reject)
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'hello', v: 1, auth }))
      socket.send(JSON.stringify({ type: 'subscribe', id: 1, topic: TOPIC }))
    })
    socket.on('message', (data: Buffer) => {
      const text = data.toString()
      if (text.startsWith('{"type":"subscribed"')) resolve(socket)
      onFrame?.(text)
    })
  })
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

async function runOnce(makeBus: () => Bus, presence: boolean, redis: Redis | undefined): Promise<RunResult> {
  const bus = makeBus()
  const http = createServer()
  const realtime = createRealtimeServer<Record<string, unknown>, { id: string; admin?: boolean }>({
    server: http,
    bus,
    limits: { maxConnections: MEMBERS + 100, maxConnectionsPerAddress: MEMBERS + 100 },
    authenticate: (_request, auth) => auth as { id: string; admin?: boolean },
    presence: presence
      ? {
          topics: (topic) => topic.startsWith('room:'),
          member: (user) => (user.admin ? null : { id: user.id, info: { name: user.id } }),
          watch: (user) => user.admin === true,
          leaveDelayMs: 0,
          maxMembers: MEMBERS,
        }
      : undefined,
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ws`
  let listed = 0
  let frames = 0
  const admin = await open(url, { id: 'admin', admin: true }, (text) => {
    if (!text.startsWith('{"type":"presence"')) return
    frames++
    const frame = JSON.parse(text) as { join?: unknown[]; leave?: unknown[] }
    listed += (frame.join?.length ?? 0) - (frame.leave?.length ?? 0)
  })
  const before = redis ? await commandStats(redis) : undefined
  let cpu = cpuNow()
  let started = performance.now()
  const sockets: WebSocket[] = []
  for (let i = 0; i < MEMBERS; i += 100) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, MEMBERS - i) }, (_, k) => open(url, { id: `m${i + k}` })))))
  }
  if (presence) await until(() => listed === MEMBERS, 'every member listed')
  const join = { cpuUs: cpuNow() - cpu, ms: performance.now() - started }
  cpu = cpuNow()
  started = performance.now()
  for (const socket of sockets) socket.close()
  await until(() => realtime.stats().connections === 1, 'the members gone')
  if (presence) await until(() => listed === 0, 'every member gone from the list')
  const leave = { cpuUs: cpuNow() - cpu, ms: performance.now() - started }
  const after = redis ? await commandStats(redis) : undefined
  admin.close()
  await realtime.close()
  http.close()
  const result: RunResult = { join, leave, frames }
  if (before && after) {
    result.redisCalls = after.calls - before.calls
    result.redisUs = after.usec - before.usec
    if (process.env.DEBUG_COMMANDS) {
      const diff = Object.fromEntries(Object.entries(after.by).map(([k, v]) => [k, v - (before.by[k] ?? 0)]).filter(([, v]) => v !== 0))
      console.error(presence ? 'with presence' : 'without', diff)
    }
  }
  return result
}

function best(results: RunResult[], pick: (r: RunResult) => number): number {
  return Math.min(...results.map(pick))
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

async function main(): Promise<void> {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const REDIS_URL = `redis://127.0.0.1:${port}`
  const redis = new Redis(REDIS_URL, { retryStrategy: (times) => (times > 50 ? null : 100) })
  await redis.ping()
  const buses: [string, () => Bus, Redis | undefined][] = [
    ['InMemoryBus', () => new InMemoryBus(), undefined],
    ['RedisBus', () => new RedisBus({ url: REDIS_URL, prefix: `bench-presence:${process.pid}:${Math.random().toString(36).slice(2)}:` }), redis],
  ]
  console.log(`presence cost: ${MEMBERS} members join one topic watched by one admin, then leave; best of ${ROUNDS} rounds\n`)
  console.log('| bus | join CPU µs/member (without → with presence) | leave CPU µs/member | presence frames | Redis round trips/member | Redis CPU µs/member |')
  console.log('|---|---|---|---|---|---|')
  for (const [name, makeBus, r] of buses) {
    const plain: RunResult[] = []
    const withPresence: RunResult[] = []
    for (let round = 0; round < ROUNDS; round++) {
      plain.push(await runOnce(makeBus, false, r))
      withPresence.push(await runOnce(makeBus, true, r))
    }
    const per = (us: number) => (us / MEMBERS).toFixed(1)
    const joinPlain = best(plain, (x) => x.join.cpuUs)
    const joinWith = best(withPresence, (x) => x.join.cpuUs)
    const leavePlain = best(plain, (x) => x.leave.cpuUs)
    const leaveWith = best(withPresence, (x) => x.leave.cpuUs)
    const redisCalls = r ? ((best(withPresence, (x) => x.redisCalls ?? 0) - best(plain, (x) => x.redisCalls ?? 0)) / MEMBERS).toFixed(2) : '–'
    const redisUs = r ? per(best(withPresence, (x) => x.redisUs ?? 0) - best(plain, (x) => x.redisUs ?? 0)) : '–'
    console.log(
      `| ${name} | ${per(joinPlain)} → ${per(joinWith)} (+${per(joinWith - joinPlain)}) | ${per(leavePlain)} → ${per(leaveWith)} (+${per(leaveWith - leavePlain)}) | ` +
        `${best(withPresence, (x) => x.frames)} | ${redisCalls} | ${redisUs} |`,
    )
  }
  await redis.quit()
  child.kill()
}

void main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  },
)
