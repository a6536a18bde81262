import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { useClient } from './utils/harness.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'
import { startInstance, type Instance } from './utils/instances.js'
import { waitFor } from './utils/wait.js'

type Topics = Record<string, { n: number }>

/** A client that records every patch's number per topic, and its resyncs. */
function recordingClient(url: string | (() => string)) {
  // `url` may be a function (a load balancer's choice per connection): pass it as the option.
  const client = useClient<Topics>(typeof url === 'string' ? url : '', { url })
  const received = new Map<string, number[]>()
  const resyncs: string[] = []
  client.on('patch', (msg) => {
    if (!received.has(msg.topic)) received.set(msg.topic, [])
    received.get(msg.topic)!.push(msg.payload.n)
  })
  client.on('resync', (topic) => resyncs.push(topic))
  return { client, received, resyncs, of: (topic: string) => received.get(topic) ?? [] }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe('three server instances in separate processes sharing one Redis', () => {
  const prefix = uniquePrefix('multi')
  let instances: Instance[] = []

  beforeAll(async () => {
    await requireSharedRedis()
    instances = await Promise.all([0, 1, 2].map(() => startInstance({ redisUrl: REDIS_URL, prefix, historySize: 5000 })))
  })
  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.stop()))
    await deleteKeys(REDIS_URL, prefix)
  })

  async function subscribed(recorders: ReturnType<typeof recordingClient>[], topic: string): Promise<void> {
    for (const r of recorders) r.client.subscribe(topic)
    await waitFor(() => recorders.every((r) => r.client.subscriptionState(topic) === 'subscribed'), 10_000, `every client subscribed to ${topic}`)
  }

  it('delivers a patch published on any instance to every subscriber on every instance, exactly once', async () => {
    // Two clients per instance.
    const recorders = instances.flatMap((instance) => [recordingClient(instance.url), recordingClient(instance.url)])
    await subscribed(recorders, 'fanout')
    for (const [i, instance] of instances.entries()) {
      const result = await instance.publish('fanout', i + 1, i + 1)
      expect(result.failed).toEqual([])
    }
    await waitFor(() => recorders.every((r) => r.of('fanout').length >= 3), 10_000, '3 patches everywhere')
    await new Promise((resolve) => setTimeout(resolve, 100))
    for (const r of recorders) expect(r.of('fanout')).toEqual([1, 2, 3])
  })

  it('gives a client that moves from instance A to B mid-stream (2,000 messages) the full sequence', async () => {
    const total = 2500
    const [a, b, c] = instances as [Instance, Instance, Instance]
    let target = a
    const mover = recordingClient(() => target.url)
    const stayers = [recordingClient(a.url), recordingClient(b.url), recordingClient(c.url)]
    // Bouncers hop to the next instance every 250 messages: many re-subscriptions mid-stream.
    const bouncers = [0, 1, 2].map((start) => {
      let hops = start
      const bouncer = recordingClient(() => instances[hops % 3]!.url)
      bouncer.client.on('patch', (msg) => {
        if (msg.payload.n % 250 === 0 && msg.payload.n < total) {
          hops++
          bouncer.client.reconnect()
        }
      })
      return bouncer
    })
    await subscribed([mover, ...stayers, ...bouncers], 'stream')
    let moved = false
    const subscribedEvents: { recovered: boolean }[] = []
    mover.client.on('subscribed', (_topic, info) => subscribedEvents.push({ recovered: info.recovered }))
    const firstConnection = mover.client.connectionId
    mover.client.on('patch', (msg) => {
      // Move in the middle of the stream: the next connection goes to B, with its last position.
      if (!moved && msg.payload.n === 1000) {
        moved = true
        target = b
        mover.client.reconnect()
      }
    })
    const started = Date.now()
    const result = await c.publish('stream', 1, total)
    expect(result).toEqual({ id: expect.any(Number), published: total, failed: [] })
    const everyone = [mover, ...stayers, ...bouncers]
    await waitFor(() => everyone.every((r) => r.of('stream').length >= total), 20_000, 'every client to get all messages')
    const elapsed = Date.now() - started
    expect(moved).toBe(true)
    // The mover has a new connection (its URL now leads to B), and its re-subscription recovered.
    expect(mover.client.connectionId).not.toBe(firstConnection)
    expect(subscribedEvents).toEqual([{ recovered: true }])
    for (const r of everyone) {
      expect(r.of('stream')).toEqual(range(1, total))
      expect(r.resyncs).toEqual([])
    }
    console.info(`multi-instance: ${total} messages to ${everyone.length} clients on 3 instances (1 mover, 3 bouncing), in ${elapsed} ms`)
  })
})
