import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBus, type RedisBusOptions } from '../src/redis/index.js'
import { closeAfterTest } from './utils/harness.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/slow-receiver.ts', import.meta.url))

interface Report {
  received: number
  last: number
  outOfOrder: number
  maxLag: number
  p99: number
}

interface Receiver {
  process: ChildProcess
  report(): Promise<Report>
  waitFor(count: number, timeoutMs: number): Promise<Report>
  stop(): Promise<void>
}

/**
 * A subscriber process that spends `workMs` of CPU per message (fixtures/slow-receiver.ts), killed
 * when the test finishes.
 */
async function startReceiver(prefix: string, topic: string, workMs: number): Promise<Receiver> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, REDIS_URL, REDIS_PREFIX: prefix, TOPIC: topic, WORK_MS: String(workMs) },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
  closeAfterTest(stop)
  const lines: ((line: string) => void)[] = []
  createInterface({ input: child.stdout! }).on('line', (line) => lines.shift()?.(line))
  const next = () => new Promise<string>((resolve) => lines.push(resolve))
  let timer: NodeJS.Timeout | undefined
  const ready = await Promise.race([
    next(),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('receiver did not start in 15 s')), 15_000))),
  ]).finally(() => clearTimeout(timer))
  expect(JSON.parse(ready)).toEqual({ ready: true })
  const report = async () => {
    const line = next()
    child.stdin!.write('report\n')
    return JSON.parse(await line) as Report
  }
  return {
    process: child,
    report,
    async waitFor(count, timeoutMs) {
      const until = Date.now() + timeoutMs
      for (;;) {
        const r = await report()
        if (r.received >= count || Date.now() > until) return r
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    },
    stop,
  }
}

/** Publishes `{"n":1}` … `{"n":count}` in bursts of `burst` per turn, each burst awaited. */
async function publishBursts(bus: RedisBus, topic: string, count: number, burst: number): Promise<number> {
  const started = performance.now()
  for (let n = 1; n <= count; n += burst) {
    const batch: Promise<unknown>[] = []
    for (let i = n; i < Math.min(n + burst, count + 1); i++) batch.push(bus.publish(topic, JSON.stringify({ n: i })))
    await Promise.all(batch)
  }
  return performance.now() - started
}

describe('RedisBus publisher flow control (receivers in other processes)', () => {
  const prefix = uniquePrefix('flow')
  const bus = (options: RedisBusOptions = {}) => {
    const created = new RedisBus({ url: REDIS_URL, prefix, ...options })
    closeAfterTest(() => created.close())
    return created
  }

  beforeAll(requireSharedRedis)
  afterAll(async () => {
    await deleteKeys(REDIS_URL, prefix)
  })

  // 600 messages at 2 ms of receiver CPU each: 1.2 s of delivery work, published in well under that.
  const COUNT = 600
  const WORK_MS = 2

  it('holds a publisher faster than delivery to about the target lag, losing nothing', async () => {
    const receiver = await startReceiver(prefix, 'fc-on', WORK_MS)
    const publisher = bus({ flowControl: { targetLagMs: 100 } })
    const elapsed = await publishBursts(publisher, 'fc-on', COUNT, 50)
    const report = await receiver.waitFor(COUNT, 20_000)
    const state = publisher.flowControl!
    console.log(`flow control on: published ${COUNT} in ${elapsed.toFixed(0)} ms; receiver lag p99 ${report.p99} ms, max ${report.maxLag} ms; window ${state.window}, probes ${JSON.stringify(state.probes)}`)
    expect(report).toMatchObject({ received: COUNT, last: COUNT, outOfOrder: 0 })
    // Target 100 ms; the bound leaves room for a loaded CI machine. Without control it is ~1 s (below).
    expect(report.p99).toBeLessThan(600)
    expect(state.probes.completed).toBeGreaterThan(0)
    expect(state.probes.timedOut).toBe(0)
    expect(state.waiting).toBe(0)
    // The publisher was slowed to the receiver's pace, not below it: 1.2 s of work.
    expect(elapsed).toBeGreaterThan(COUNT * WORK_MS * 0.5)
    expect(elapsed).toBeLessThan(COUNT * WORK_MS * 4)
  })

  it('without it (flowControl: false) the same publisher runs ahead and the lag grows past a second', async () => {
    const receiver = await startReceiver(prefix, 'fc-off', WORK_MS)
    const publisher = bus({ flowControl: false })
    const elapsed = await publishBursts(publisher, 'fc-off', COUNT, 50)
    const report = await receiver.waitFor(COUNT, 20_000)
    console.log(`flow control off: published ${COUNT} in ${elapsed.toFixed(0)} ms; receiver lag p99 ${report.p99} ms, max ${report.maxLag} ms`)
    expect(report).toMatchObject({ received: COUNT, last: COUNT, outOfOrder: 0 })
    expect(publisher.flowControl).toBeUndefined()
    expect(report.maxLag).toBeGreaterThan(700)
  })

  it('waits for a hung instance once (publishTimeoutMs), then no longer, and the instance catches up after', async () => {
    const hung = await startReceiver(prefix, 'fc-hung', 0)
    const healthy = await startReceiver(prefix, 'fc-hung', 0)
    const publisher = bus({ publishTimeoutMs: 500 })
    // Warm up: both instances are known to the publisher.
    await publishBursts(publisher, 'fc-hung', 1, 1)
    await healthy.waitFor(1, 5000)
    hung.process.kill('SIGSTOP')
    try {
      const started = performance.now()
      for (let n = 2; n <= 2001; n += 50) {
        const batch: Promise<unknown>[] = []
        for (let i = n; i < n + 50; i++) batch.push(publisher.publish('fc-hung', JSON.stringify({ n: i })))
        await Promise.all(batch)
      }
      const elapsed = performance.now() - started
      const state = publisher.flowControl!
      console.log(`hung instance: 2000 publishes in ${elapsed.toFixed(0)} ms; probes ${JSON.stringify(state.probes)}, silent ${state.silent}`)
      expect(state.silent).toBe(1)
      expect(state.probes.timedOut).toBeGreaterThanOrEqual(1)
      // One wait of publishTimeoutMs, maybe two, not one per window (which would take minutes).
      expect(elapsed).toBeLessThan(4000)
      expect((await healthy.waitFor(2001, 10_000)).last).toBe(2001)
    } finally {
      hung.process.kill('SIGCONT')
    }
    const caughtUp = await hung.waitFor(2001, 15_000)
    expect(caughtUp).toMatchObject({ received: 2001, last: 2001, outOfOrder: 0 })
    // It answers probes again: no longer silent.
    for (let n = 2002; n <= 2401; n += 50) {
      const batch: Promise<unknown>[] = []
      for (let i = n; i < n + 50; i++) batch.push(publisher.publish('fc-hung', JSON.stringify({ n: i })))
      await Promise.all(batch)
    }
    expect((await hung.waitFor(2401, 10_000)).outOfOrder).toBe(0)
    expect(publisher.flowControl!.silent).toBe(0)
  })
})
