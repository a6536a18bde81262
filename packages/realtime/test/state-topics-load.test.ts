import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InMemoryBus } from '../src/bus/memory.js'
import type { Bus } from '../src/bus/types.js'
import { RedisBus } from '../src/redis/index.js'
import { useServer } from './utils/harness.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'
import { sleep } from './utils/wait.js'

const CLIENTS = Number(process.env.STATE_LOAD_CLIENTS ?? 1000)
const RATE = 500
const CLIENTS_PROCESS = fileURLToPath(new URL('./fixtures/state-clients.ts', import.meta.url))

interface ClientsResult {
  atLast: number
  fromState: number
  regressions: number
  gaps: number
  closes: number[]
  frames: number
  drainMs: number
}

/**
 * 1,000 clients (in their own process) subscribe to a state topic while its state changes 500 times
 * a second (published on another instance): each starts from the state in `subscribed` and applies
 * the patches after it. Each must end at the last state published and never see an older state
 * after a newer one (the values it sees go up by exactly one: no gap either).
 */
async function stateUnderLoad(publisherBus: Bus, subscriberBus: Bus): Promise<void> {
  let failed = 0
  const limits = { maxConnections: 5000, maxConnectionsPerAddress: 5000 }
  const options = { stateTopics: (topic: string) => topic.startsWith('state:'), closeBus: false, limits }
  const publisher = await useServer({ ...options, bus: publisherBus })
  const server = await useServer({ ...options, bus: subscriberBus })
  const topic = `state:${Math.random().toString(36).slice(2)}`
  const child = spawn(process.execPath, ['--import', 'tsx', CLIENTS_PROCESS], {
    env: { ...process.env, URL: server.url, TOPIC: topic, CLIENTS: String(CLIENTS), SPREAD_MS: '500' },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  // Lines in a queue: two may come in one chunk.
  const queued: Record<string, unknown>[] = []
  const waiting: ((line: Record<string, unknown>) => void)[] = []
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const value = JSON.parse(line) as Record<string, unknown>
    const waiter = waiting.shift()
    if (waiter) waiter(value)
    else queued.push(value)
  })
  const next = () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const ready = queued.shift()
      if (ready) return resolve(ready)
      const timer = setTimeout(() => reject(new Error('the clients process did not answer within 60 s')), 60_000)
      waiting.push((value) => {
        clearTimeout(timer)
        resolve(value)
      })
    })
  let n = 0
  let started = 0
  let last: Promise<unknown> = Promise.resolve()
  let ticker: ReturnType<typeof setInterval> | undefined
  try {
    await next() // the clients process is up: it subscribes its clients over the next 500 ms
    // A fixed rate, whatever the receivers do: 500 a second, in order.
    started = Date.now()
    await publisher.realtime.publishTopic(topic, { n: ++n })
    ticker = setInterval(() => {
      const due = Math.floor(((Date.now() - started) / 1000) * RATE)
      while (n < due) {
        last = publisher.realtime.publishTopic(topic, { n: ++n }).catch(() => failed++)
      }
    }, 10)
    await next() // every client has its state
    await sleep(100)
    clearInterval(ticker)
    await last
    const seconds = (Date.now() - started) / 1000
    child.stdin!.write(JSON.stringify({ last: n }) + '\n')
    const result = (await next()) as unknown as ClientsResult
    console.log(
      `state topic under load: ${CLIENTS} clients subscribed during ${n} states in ${seconds.toFixed(1)} s ` +
        `(${Math.round(n / seconds)}/s); ${result.fromState} started from the state in subscribed; ${result.frames} states seen, ` +
        `${result.atLast} at the last state ${result.drainMs} ms after it; ${result.regressions} older-after-newer, ${result.gaps} gaps`,
    )
    expect(failed).toBe(0)
    expect(n / seconds).toBeGreaterThan(RATE * 0.9)
    expect(result.closes).toEqual([])
    expect(result.atLast).toBe(CLIENTS)
    expect(result.regressions).toBe(0)
    expect(result.gaps).toBe(0)
    // Those that subscribed before the first publish had nothing to start from; all later ones did.
    expect(result.fromState).toBeGreaterThan(CLIENTS * 0.9)
  } finally {
    clearInterval(ticker)
    child.kill()
  }
}

describe('a state topic under load', () => {
  it('InMemoryBus: 1,000 subscribers while the state changes 500 times a second', async () => {
    const bus = new InMemoryBus()
    await stateUnderLoad(bus, bus)
    await bus.close()
  }, 150_000)

  describe('RedisBus', () => {
    const prefix = uniquePrefix('state-load')
    const buses: RedisBus[] = []
    beforeAll(requireSharedRedis)
    afterAll(async () => {
      await Promise.all(buses.map((bus) => bus.close()))
      await deleteKeys(REDIS_URL, prefix)
    })
    it('1,000 subscribers on one instance while another publishes 500 states a second', async () => {
      // The publisher keeps its rate whatever the receivers do (flow control would slow it to their pace).
      const a = new RedisBus({ url: REDIS_URL, prefix, flowControl: false })
      const b = new RedisBus({ url: REDIS_URL, prefix })
      buses.push(a, b)
      await stateUnderLoad(a, b)
    }, 150_000)
  })
})
