/**
 * The client's side of state topics and presence, against real servers over real WebSockets:
 * the state in `subscribed` and `Subscription.value`, no `resync` when the state came, `members()`
 * and `presence` events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PresenceChange, RealtimeClient, SubscribedInfo } from '../src/client/index.js'
import { isRealtimeError } from '../src/errors.js'
import type { RealtimeServerOptions } from '../src/server/index.js'
import { RedisBus } from '../src/redis/index.js'
import { startCuttableProxy } from './utils/cuttable-proxy.js'
import { REDIS_URL, deleteKeys, requireSharedRedis, uniquePrefix } from './utils/redis.js'
import { closeAfterTest, useClient, useServer } from './utils/harness.js'
import { sleep, waitFor } from './utils/wait.js'

type Profile = { name: string; n: number }
type Topics = { [k: `user:${string}`]: Profile; [k: `room:${string}`]: never; [k: `plain:${string}`]: number }

const OPTIONS: Omit<RealtimeServerOptions, 'server'> = {
  authenticate: (_request, auth) => auth as { id: string },
  stateTopics: (topic) => topic.startsWith('user:'),
  presence: {
    topics: (topic) => topic.startsWith('room:'),
    member: (principal) => {
      const { id } = principal as { id: string }
      return id === 'admin' ? null : { id, info: { name: `name of ${id}` } }
    },
    watch: (principal) => (principal as { id: string }).id !== 'mute',
    leaveDelayMs: 100,
    flushMs: 20,
  },
}

function client(url: string, id: string): RealtimeClient<Topics> {
  return useClient<Topics>(url, { auth: { id } })
}

/** Rejection of `promise`, which must reject. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('it resolved'),
    (error: unknown) => error,
  )
}

describe('client: state topics', () => {
  it('gets the state in `subscribed`, holds it as `value`, and follows it with each patch', async () => {
    const server = await useServer(OPTIONS)
    for (let n = 1; n <= 3; n++) await server.realtime.publishTopic('user:7', { name: `v${n}`, n })
    const ann = client(server.url, 'ann')
    const sub = ann.subscription('user:7')
    const infos: SubscribedInfo<Profile>[] = []
    const clientWide: unknown[] = []
    const patches: number[] = []
    sub.on('subscribed', (info) => infos.push(info))
    sub.on('patch', (message) => patches.push(message.payload.n))
    ann.on('subscribed', (_topic, info) => clientWide.push(info.state))
    expect(sub.value).toBeUndefined()
    sub.subscribe()
    await sub.ready(3000)
    expect(infos).toHaveLength(1)
    expect(infos[0]!.recovered).toBe(false)
    expect(infos[0]!.state).toEqual({ name: 'v3', n: 3 })
    expect(clientWide).toEqual([{ name: 'v3', n: 3 }])
    expect(sub.value).toEqual({ name: 'v3', n: 3 })
    // The position is that of the patch that set the state: the next patch follows it.
    expect(sub.position).toEqual(infos[0]!.position)
    await server.realtime.publishTopic('user:7', { name: 'v4', n: 4 })
    await waitFor(() => patches.length === 1)
    expect(patches).toEqual([4])
    expect(sub.value).toEqual({ name: 'v4', n: 4 })
    expect(sub.position!.offset).not.toBe(infos[0]!.position.offset)
  })

  it('has no state and no value where the topic holds none, or is not a state topic', async () => {
    const server = await useServer(OPTIONS)
    await server.realtime.publishTopic('plain:1', 1)
    const ann = client(server.url, 'ann')
    const infos: SubscribedInfo[] = []
    for (const topic of ['user:empty', 'plain:1'] as const) {
      const sub = ann.subscription(topic)
      sub.on('subscribed', (info) => infos.push(info))
      sub.subscribe()
      await sub.ready(3000)
    }
    expect(infos.map((info) => 'state' in info)).toEqual([false, false])
    await server.realtime.publishTopic('plain:1', 2)
    await sleep(50)
    expect(ann.subscription('plain:1').value).toBeUndefined()
    expect(ann.subscription('user:empty').value).toBeUndefined()
  })

  it('emits no resync when a subscription that cannot be recovered gets the state, and does on a plain topic', async () => {
    const server = await useServer({ ...OPTIONS, history: { size: 3 } })
    const proxy = await startCuttableProxy(server.port)
    closeAfterTest(() => proxy.close())
    const ann = useClient<Topics>(proxy.url(), { auth: { id: 'ann' } })
    const resyncs: string[] = []
    const infos: SubscribedInfo[] = []
    ann.on('resync', (topic) => resyncs.push(topic))
    ann.on('subscribed', (topic, info) => topic === 'user:9' && infos.push(info))
    const state = ann.subscription('user:9')
    const stateResyncs: number[] = []
    state.on('resync', () => stateResyncs.push(1))
    state.subscribe()
    ann.subscribe('plain:9')
    await server.realtime.publishTopic('user:9', { name: 'first', n: 0 })
    await waitFor(() => ann.subscriptionState('plain:9') === 'subscribed' && state.value?.n === 0)

    // The connection goes silent while ten patches of each topic are published: more than the history keeps.
    proxy.cut()
    for (let n = 1; n <= 10; n++) {
      await server.realtime.publishTopic('user:9', { name: `v${n}`, n })
      await server.realtime.publishTopic('plain:9', n)
    }
    ann.reconnect()
    await waitFor(() => resyncs.length > 0 && infos.length === 2, 5000, 'the re-subscribes')
    expect(resyncs).toEqual(['plain:9'])
    expect(stateResyncs).toEqual([])
    expect(infos[1]).toMatchObject({ recovered: false, state: { name: 'v10', n: 10 } })
    expect(state.value).toEqual({ name: 'v10', n: 10 })
  })
})

describe('client: presence', () => {
  it('answers members() and emits presence events as members join and leave', async () => {
    const server = await useServer(OPTIONS)
    const ann = client(server.url, 'ann')
    const room = ann.subscription('room:1')
    const changes: PresenceChange[] = []
    const clientWide: [string, PresenceChange][] = []
    room.on('presence', (change) => changes.push(change))
    ann.on('presence', (topic, change) => clientWide.push([topic, change]))
    room.subscribe()
    await room.ready(3000)
    expect(await ann.members('room:1')).toEqual([{ id: 'ann', info: { name: 'name of ann' } }])

    const bob = client(server.url, 'bob')
    bob.subscribe('room:1')
    await waitFor(() => changes.some((c) => c.join.some((m) => m.id === 'bob')), 3000, 'bob joins')
    // Ann's own join may come too (a frame may repeat what the members reply showed).
    expect(changes.flatMap((c) => c.join).filter((m) => m.id !== 'ann')).toEqual([{ id: 'bob', info: { name: 'name of bob' } }])
    expect(clientWide.map(([topic]) => topic)).toEqual(changes.map(() => 'room:1'))
    const list = await ann.members<{ name: string }>('room:1')
    expect(list.map((m) => `${m.id}:${m.info?.name}`).sort()).toEqual(['ann:name of ann', 'bob:name of bob'])

    bob.unsubscribe('room:1')
    await waitFor(() => changes.some((c) => c.leave.includes('bob')), 3000, 'bob leaves')
    expect(changes.at(-1)).toEqual({ join: [], leave: ['bob'] })
    expect(await ann.members('room:1')).toEqual([{ id: 'ann', info: { name: 'name of ann' } }])
  })

  it('counts three clients of one user as one member: no join for the second and third, one leave after the last', async () => {
    const server = await useServer(OPTIONS)
    const watcher = client(server.url, 'admin')
    const changes: PresenceChange[] = []
    watcher.on('presence', (_topic, change) => changes.push(change))
    watcher.subscribe('room:2')
    await watcher.subscription('room:2').ready(3000)
    const tabs = [client(server.url, 'cat'), client(server.url, 'cat'), client(server.url, 'cat')]
    for (const tab of tabs) {
      tab.subscribe('room:2')
      await tab.subscription('room:2').ready(3000)
    }
    await waitFor(() => changes.length > 0)
    await sleep(100)
    expect(changes.flatMap((c) => c.join.map((m) => m.id))).toEqual(['cat'])
    // The admin watches but is no member (its `member` is null).
    expect(await watcher.members('room:2')).toEqual([{ id: 'cat', info: { name: 'name of cat' } }])
    tabs[0]!.close()
    tabs[1]!.close()
    await sleep(250)
    expect(changes.flatMap((c) => c.leave)).toEqual([])
    tabs[2]!.close()
    await waitFor(() => changes.some((c) => c.leave.length > 0), 3000, 'the leave')
    expect(changes.flatMap((c) => c.leave)).toEqual(['cat'])
  })

  it("rejects members() with the server's error: BAD_REQUEST when not subscribed or no presence, FORBIDDEN when not a watcher", async () => {
    const server = await useServer(OPTIONS)
    const ann = client(server.url, 'ann')
    ann.subscribe('user:1')
    await ann.subscription('user:1').ready(3000)
    for (const topic of ['room:3', 'user:1'] as const) {
      const error = await rejection(ann.members(topic))
      expect(isRealtimeError(error) && error.code).toBe('BAD_REQUEST')
    }
    // The error of a members request is not the subscription's: it stays subscribed.
    expect(ann.subscriptionState('user:1')).toBe('subscribed')
    const mute = client(server.url, 'mute')
    mute.subscribe('room:3')
    await mute.subscription('room:3').ready(3000)
    const error = await rejection(mute.members('room:3'))
    expect(isRealtimeError(error) && error.code).toBe('FORBIDDEN')
  })

  it('rejects members() with INVALID_TOPIC, CLOSED when not connected or closed before the reply, TIMEOUT when no reply comes', async () => {
    const server = await useServer(OPTIONS)
    const proxy = await startCuttableProxy(server.port)
    closeAfterTest(() => proxy.close())
    const ann = useClient<Topics>(proxy.url(), { auth: { id: 'ann' }, lazy: true })
    const codes = async (promise: Promise<unknown>) => {
      const error = await rejection(promise)
      return isRealtimeError(error) ? error.code : error
    }
    expect(await codes(ann.members('room:bad topic' as 'room:x'))).toBe('INVALID_TOPIC')
    expect(await codes(ann.members('room:4'))).toBe('CLOSED')
    ann.subscribe('room:4')
    await ann.subscription('room:4').ready(3000)
    proxy.cut()
    const started = Date.now()
    expect(await codes(ann.members('room:4', 200))).toBe('TIMEOUT')
    expect(Date.now() - started).toBeGreaterThanOrEqual(190)
    const pending = ann.members('room:4')
    ann.close()
    expect(await codes(pending)).toBe('CLOSED')
  })
})

describe('client: state and presence across two instances on Redis', () => {
  const prefix = uniquePrefix('client-state-presence')
  const buses: RedisBus[] = []
  beforeAll(requireSharedRedis)
  afterAll(async () => {
    await Promise.all(buses.map((bus) => bus.close()))
    await deleteKeys(REDIS_URL, prefix)
  })

  it("gets on one instance the state published on the other, and each instance's members", async () => {
    const [a, b] = await Promise.all(
      [0, 1].map(() => {
        const bus = new RedisBus({ url: REDIS_URL, prefix })
        buses.push(bus)
        return useServer({ ...OPTIONS, bus, closeBus: false })
      }),
    )
    await a!.realtime.publishTopic('user:r1', { name: 'from a', n: 1 })
    const onB = client(b!.url, 'ann')
    const sub = onB.subscription('user:r1')
    sub.subscribe()
    await sub.ready(3000)
    expect(sub.value).toEqual({ name: 'from a', n: 1 })

    const room = onB.subscription('room:r')
    const joined = new Set<string>()
    room.on('presence', ({ join }) => join.forEach((m) => joined.add(m.id)))
    room.subscribe()
    await room.ready(3000)
    const onA = client(a!.url, 'bob')
    onA.subscribe('room:r')
    await waitFor(() => joined.has('bob'), 5000, "bob's join, from the other instance")
    expect((await onB.members('room:r')).map((m) => m.id).sort()).toEqual(['ann', 'bob'])
    expect((await onA.members('room:r')).map((m) => m.id).sort()).toEqual(['ann', 'bob'])
  })
})
