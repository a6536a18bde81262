import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBus } from '../src/redis/index.js'
import { useClient } from './utils/harness.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'
import { startServer, type TestServer } from './utils/server.js'
import { waitFor } from './utils/wait.js'

type Topics = Record<string, { n: number }>

// An instance's Redis traffic must follow its clients' interest: no PSUBSCRIBE firehose.
describe('RedisBus interest following', () => {
  const prefix = uniquePrefix('interest')
  let redis: Redis
  let a: TestServer<Topics>
  let b: TestServer<Topics>
  let busA: RedisBus
  let busB: RedisBus

  beforeAll(async () => {
    await requireSharedRedis()
    redis = new Redis(REDIS_URL)
    busA = new RedisBus({ url: REDIS_URL, prefix })
    busB = new RedisBus({ url: REDIS_URL, prefix })
    a = await startServer<Topics>({ bus: busA })
    b = await startServer<Topics>({ bus: busB })
    await waitFor(() => busA.healthy && busB.healthy, 10_000, 'buses up')
  })
  afterAll(async () => {
    await Promise.all([a.close(), b.close()])
    await deleteKeys(REDIS_URL, prefix)
    await redis.quit()
  })

  const subscribers = async (channel: string) => ((await redis.pubsub('SHARDNUMSUB', channel)) as [string, number])[1]

  it('subscribes a topic channel once per instance while it has local interest, and never otherwise', async () => {
    const channel = `${prefix}{watched}:c`
    expect(await subscribers(channel)).toBe(0)

    // Two clients on A: one Redis subscription for A.
    const [one, two] = [useClient<Topics>(a.url), useClient<Topics>(a.url)]
    const got: number[] = []
    one.on('patch', (m) => got.push(m.payload.n))
    one.subscribe('watched')
    two.subscribe('watched')
    await waitFor(() => one.subscriptionState('watched') === 'subscribed' && two.subscriptionState('watched') === 'subscribed', 10_000, 'both subscribed')
    expect(await subscribers(channel)).toBe(1)
    expect(busA.subscribedTopics).toEqual(['watched'])

    // B publishes but has no local interest: none of the traffic comes back to B.
    for (let n = 1; n <= 50; n++) await b.realtime.publishTopic('watched', { n })
    await waitFor(() => got.length === 50, 10_000, 'A delivers 50')
    expect(busB.subscribedTopics).toEqual([])
    expect(busB.messagesReceived).toBe(0)
    expect(busB.messagesPublished).toBe(50)
    expect(busA.messagesReceived).toBe(50)

    // A server-side listener is interest too.
    const heard: number[] = []
    const stop = b.realtime.onTopic('watched', (payload: { n: number }) => heard.push(payload.n))
    await stop.ready
    expect(await subscribers(channel)).toBe(2)
    await a.realtime.publishTopic('watched', { n: 51 })
    await waitFor(() => heard.length === 1, 10_000, 'B hears 51')
    await stop()
    await waitFor(async () => (await subscribers(channel)) === 1, 10_000, 'B unsubscribed')

    // One client leaving keeps A subscribed for the other; the last one leaving unsubscribes A.
    two.unsubscribe('watched')
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(await subscribers(channel)).toBe(1)
    one.unsubscribe('watched')
    await waitFor(async () => (await subscribers(channel)) === 0, 10_000, 'A unsubscribed')
    expect(busA.subscribedTopics).toEqual([])
  })

  it('uses no pattern subscription', async () => {
    const list = (await redis.client('LIST')) as string
    const ours = list.split('\n').filter((line) => line.includes('name=realtime-bus-sub'))
    expect(ours.length).toBeGreaterThanOrEqual(2)
    for (const line of ours) expect(line).toMatch(/ psub=0 /)
  })
})
