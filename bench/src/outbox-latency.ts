/**
 * Commit-to-client latency through the outbox against a direct `publishTopic` after the commit,
 * in one run, on PostgreSQL (`DATABASE_URL`, default the local `test` database), with the
 * in-memory bus and with Redis (`REDIS_URL`). Prints numbers; it is not a timed test.
 *
 *   npm run outbox-latency -w bench [-- --rate 100 --seconds 10]
 *
 * Each write is one transaction (an UPDATE, plus the outbox row on the outbox path) at a fixed
 * rate; the time runs from the COMMIT's reply to the patch at a WebSocket client in this process
 * (the bench's wire client: no library on the receiving side). Modes alternate: direct, outbox
 * woken by NOTIFY, outbox woken by the writer itself after its commit (what the reference app does).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { createRealtimeServer, InMemoryBus, type Bus } from '../../packages/realtime/src/server/index.js'
import { RedisBus } from '../../packages/realtime/src/redis/index.js'
import { createOutboxRelay, postgresOutbox } from '../../packages/realtime/src/outbox/index.js'
import { connectWire } from './wire.js'

const { values } = parseArgs({ options: { rate: { type: 'string', default: '100' }, seconds: { type: 'string', default: '10' } } })
const rate = Number(values.rate)
const seconds = Number(values.seconds)
const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'

type Mode = 'direct' | 'outbox (NOTIFY)' | 'outbox (woken by the writer)'

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
}

async function run(busName: 'memory' | 'redis', mode: Mode): Promise<number[]> {
  const schema = `bench_outbox_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const admin = new pg.Client({ connectionString: DATABASE_URL })
  await admin.connect()
  await admin.query(`CREATE SCHEMA "${schema}"`)
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 8, options: `-c search_path=${schema}` })
  await pool.query('CREATE TABLE users (user_id text PRIMARY KEY, seq int NOT NULL)')
  await pool.query("INSERT INTO users VALUES ('1', 0)")
  const outbox = postgresOutbox({ pool })
  await outbox.migrate()
  const prefix = `bench-outbox:${process.pid}:${Math.random().toString(36).slice(2, 8)}:`
  const bus: Bus = busName === 'memory' ? new InMemoryBus() : new RedisBus({ url: REDIS_URL, prefix })
  const http = createServer()
  const realtime = createRealtimeServer({ server: http, bus })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const port = (http.address() as AddressInfo).port
  const relay = mode === 'direct' ? undefined : await createOutboxRelay({ outbox, realtime, pollMs: 60_000 })

  const committedAt = new Map<number, number>()
  // By seq: a patch may reach the client before the writer has handled its COMMIT's reply.
  const arrivedAt = new Map<number, number>()
  let subscribed!: () => void
  const ready = new Promise<void>((resolve) => (subscribed = resolve))
  const socket = connectWire(port, '/ws', {
    onOpen: () => socket.send(JSON.stringify({ type: 'subscribe', id: 1, topic: 'user:1' })),
    onClose: () => {},
    onError: (error) => console.error(error),
    onText: (data) => {
      const frame = JSON.parse(data.toString())
      if (frame.type === 'subscribed') subscribed()
      if (frame.type === 'patch' && !arrivedAt.has(frame.payload.seq)) arrivedAt.set(frame.payload.seq, performance.now())
    },
  })
  await ready

  const total = rate * seconds
  const started = performance.now()
  const writes: Promise<void>[] = []
  for (let seq = 1; seq <= total; seq++) {
    const due = started + ((seq - 1) * 1000) / rate
    const wait = due - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    writes.push(
      (async () => {
        const client = await pool.connect()
        try {
          await client.query('BEGIN')
          await client.query("UPDATE users SET seq = $1 WHERE user_id = '1'", [seq])
          if (mode !== 'direct') await outbox.add(client, ['user:1'], { seq })
          await client.query('COMMIT')
        } finally {
          client.release()
        }
        committedAt.set(seq, performance.now())
        if (mode === 'direct') await realtime.publishTopic('user:1', { seq })
        else if (mode === 'outbox (woken by the writer)') await relay!.wake()
      })(),
    )
  }
  await Promise.all(writes)
  const deadline = Date.now() + 10_000
  while (arrivedAt.size < total && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  // Before the writer saw its commit's reply counts as 0.
  const latencies = [...arrivedAt].map(([seq, at]) => Math.max(0, at - (committedAt.get(seq) ?? at)))
  socket.close()
  await relay?.close()
  await realtime.close()
  await new Promise<void>((resolve) => http.close(() => resolve()))
  await pool.end()
  await admin.query(`DROP SCHEMA "${schema}" CASCADE`)
  await admin.end()
  if (latencies.length < total) console.log(`  (${mode}: ${total - latencies.length} of ${total} patches missing)`)
  return latencies
}

console.log(`# outbox latency: ${rate} writes/s for ${seconds} s per mode, PostgreSQL ${DATABASE_URL}; commit reply → patch at the client`)
console.log('| bus | path | patches | p50 ms | p99 ms | max ms | p99 ÷ direct |')
console.log('|---|---|---:|---:|---:|---:|---:|')
for (const busName of ['memory', 'redis'] as const) {
  const results = new Map<Mode, number[]>()
  for (const mode of ['direct', 'outbox (NOTIFY)', 'outbox (woken by the writer)'] as Mode[]) {
    results.set(mode, (await run(busName, mode)).sort((a, b) => a - b))
  }
  const directP99 = quantile(results.get('direct')!, 0.99)
  for (const [mode, sorted] of results) {
    const p99 = quantile(sorted, 0.99)
    console.log(
      `| ${busName} | ${mode} | ${sorted.length} | ${quantile(sorted, 0.5).toFixed(2)} | ${p99.toFixed(2)} | ${(sorted.at(-1) ?? NaN).toFixed(2)} | ${(p99 / directP99).toFixed(2)}× |`,
    )
  }
}
process.exit(0)
