import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBus, REDIS_BUS_CONNECTION_OPTIONS } from '../src/redis/index.js'
import type { PatchFrame } from '../src/protocol.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'
import { closeAfterTest, useRawClient, useServer } from './utils/harness.js'
import { type RawClient, type TestServer, waitFor } from './utils/server.js'

type Profile = { userId: string; name: string }
type Topics = { profile: Profile; [k: `user:${string}`]: Profile }

/** The running test's server (the harness closes it, and its clients, when the test ends). */
let server: TestServer<Topics> | undefined

async function subscriber(topic: string): Promise<RawClient> {
  const client = await useRawClient(server!.url)
  client.send({ type: 'subscribe', topic, id: 1 })
  await client.nextOf('subscribed', 1)
  return client
}

const patches = (client: RawClient) => client.frames.filter((f): f is PatchFrame => f.type === 'patch')

describe('publishTopics', () => {
  it('serializes the payload once for every topic and delivers it on each, with its position', async () => {
    server = await useServer<Topics>()
    const [user, admins] = [await subscriber('user:7'), await subscriber('profile')]
    let serialized = 0
    const payload = {
      toJSON() {
        serialized++
        return { userId: '7', name: 'Ann' }
      },
    } as unknown as Profile
    const positions = await server.realtime.publishTopics(['user:7', 'profile'], payload)
    expect(serialized).toBe(1)
    expect(positions).toHaveLength(2)
    const [u, p] = [await user.nextOf('patch'), await admins.nextOf('patch')]
    expect(u).toMatchObject({ topic: 'user:7', payload: { userId: '7', name: 'Ann' }, offset: positions[0]!.offset })
    expect(p).toMatchObject({ topic: 'profile', payload: { userId: '7', name: 'Ann' }, offset: positions[1]!.offset })
    expect(server.realtime.stats().published).toBe(2)
  })

  it('rejects the whole call before anything is published when one topic is invalid', async () => {
    server = await useServer<Topics>()
    const client = await subscriber('profile')
    const before = (await server.realtime.bus.history('profile')).position
    await expect(
      server.realtime.publishTopics(['profile', 'user:not a topic!' as `user:${string}`], { userId: '1', name: 'x' }),
    ).rejects.toMatchObject({ code: 'INVALID_TOPIC' })
    await expect(server.realtime.publishTopics(['profile', 'profile'], { userId: '1', name: 'x' })).rejects.toMatchObject({ code: 'INVALID_TOPIC' })
    expect((await server.realtime.bus.history('profile')).position).toEqual(before)
    expect(server.realtime.stats().published).toBe(0)
    await server.realtime.publishTopic('profile', { userId: '2', name: 'y' })
    await client.nextOf('patch')
    expect(patches(client)).toHaveLength(0)
  })

  it('rejects the whole call when the payload is invalid for one of the topics', async () => {
    server = await useServer<Topics>({
      validate: (topic) => {
        if (topic.startsWith('user:9')) throw new Error('user 9 is frozen')
      },
    })
    await expect(server.realtime.publishTopics(['profile', 'user:9'], { userId: '9', name: 'x' })).rejects.toMatchObject({
      code: 'INVALID_PAYLOAD',
    })
    expect(server.realtime.stats().published).toBe(0)
    expect(await server.realtime.publishTopics([], { userId: '9', name: 'x' })).toEqual([])
  })

  it('keeps each topic in order under concurrent publishers', async () => {
    server = await useServer<Topics>()
    const [user, admins] = [await subscriber('user:1'), await subscriber('profile')]
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => server!.realtime.publishTopics(['user:1', 'profile'], { userId: '1', name: String(i) })),
    )
    await waitFor(() => patches(user).length === 100 && patches(admins).length === 100, 5000, '100 patches each')
    for (const client of [user, admins]) expect(patches(client).map((f) => (f.payload as Profile).name)).toEqual(Array.from({ length: 100 }, (_, i) => String(i)))
  })
})

describe('publishTopics on Redis', () => {
  const prefix = uniquePrefix('multi')
  beforeAll(requireSharedRedis)
  afterAll(async () => {
    await deleteKeys(REDIS_URL, prefix)
  })

  it('makes one round trip (one script call) for a publish to two topics', async () => {
    const pub = new Redis(REDIS_URL, REDIS_BUS_CONNECTION_OPTIONS)
    const sub = new Redis(REDIS_URL, { ...REDIS_BUS_CONNECTION_OPTIONS, autoResubscribe: false })
    closeAfterTest(() => {
      pub.disconnect()
      sub.disconnect()
    })
    const scriptCalls: string[] = []
    const send = pub.sendCommand.bind(pub)
    pub.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
      scriptCalls.push(command.name)
      return (send as (...args: unknown[]) => unknown)(command, ...rest)
    }) as typeof pub.sendCommand
    server = await useServer<Topics>({ bus: new RedisBus({ redis: { pub, sub }, prefix, flowControl: false }) })
    const [user, admins] = [await subscriber('user:3'), await subscriber('profile')]
    // The first call loads the script (EVALSHA, then EVAL on NOSCRIPT): count from the second on.
    await server.realtime.publishTopics(['user:3', 'profile'], { userId: '3', name: 'warm' })
    scriptCalls.length = 0
    const positions = await server.realtime.publishTopics(['user:3', 'profile'], { userId: '3', name: 'Bo' })
    expect(scriptCalls).toEqual(['evalsha'])
    await waitFor(() => patches(user).length === 2 && patches(admins).length === 2, 5000, 'two patches each')
    expect(patches(user)[1]).toMatchObject({ payload: { name: 'Bo' }, offset: positions[0]!.offset, epoch: positions[0]!.epoch })
    expect(patches(admins)[1]).toMatchObject({ payload: { name: 'Bo' }, offset: positions[1]!.offset, epoch: positions[1]!.epoch })
  })
})
