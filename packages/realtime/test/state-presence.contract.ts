/**
 * State topics and presence over real WebSocket connections, on any bus: run by
 * `state-presence.test.ts` on `InMemoryBus` and on `RedisBus` (two servers on one Redis).
 */
import { expect, it } from 'vitest'
import type { Bus } from '../src/bus/types.js'
import type { MembersReplyFrame, PresenceFrame, PresenceMember, SubscribedFrame } from '../src/protocol.js'
import type { RealtimeServerOptions } from '../src/server/index.js'
import { useRawClient, useServer } from './utils/harness.js'
import type { RawClient } from './utils/raw-client.js'
import { sleep, waitFor } from './utils/wait.js'

export interface StatePresenceBuses {
  /** Two buses for two server instances that share their history (the same bus object for InMemoryBus). */
  pair(): Promise<[Bus, Bus]>
}

const PRESENCE: RealtimeServerOptions['presence'] = {
  topics: (topic) => topic.startsWith('room:'),
  member: (principal) => {
    const user = principal as { id: string; admin?: boolean }
    return user.admin ? null : { id: user.id, info: { name: `user ${user.id}` } }
  },
  watch: (principal) => (principal as { admin?: boolean }).admin === true || (principal as { id: string }).id !== 'mute',
  leaveDelayMs: 150,
  flushMs: 20,
}

async function twoServers(buses: StatePresenceBuses, extra: Partial<RealtimeServerOptions> = {}) {
  const [a, b] = await buses.pair()
  const options = (bus: Bus): Omit<RealtimeServerOptions, 'server'> => ({
    bus,
    closeBus: false,
    authenticate: (_request, auth) => auth as { id: string },
    stateTopics: (topic) => topic.startsWith('user:'),
    presence: PRESENCE,
    ...extra,
  })
  return [await useServer(options(a)), await useServer(options(b))] as const
}

async function member(url: string, id: string, topic: string, extra: Record<string, unknown> = {}): Promise<RawClient> {
  const client = await useRawClient(url)
  await client.hello({ id, ...extra })
  const reply = await client.subscribe(1, topic)
  expect(reply.type).toBe('subscribed')
  return client
}

async function members(client: RawClient, topic: string, id = 99): Promise<string[]> {
  client.send({ type: 'members', id, topic })
  const reply = (await client.nextOf('members', id)) as MembersReplyFrame
  return reply.members.map((m: PresenceMember) => m.id).sort()
}

/** Applies presence frames to a set, as a client would. */
function follow(client: RawClient, start: Iterable<string>): Set<string> {
  const set = new Set(start)
  client.socket.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString()) as PresenceFrame
    if (frame.type !== 'presence') return
    for (const m of frame.join ?? []) set.add(m.id)
    for (const id of frame.leave ?? []) set.delete(id)
  })
  return set
}

export function statePresenceSuite(buses: StatePresenceBuses): void {
  it('a state topic: a new subscriber gets the last payload with its position, then the patches after it', async () => {
    const [a, b] = await twoServers(buses)
    const topic = `user:${Math.random().toString(36).slice(2)}`
    const empty = await useRawClient(b.url)
    await empty.hello({ id: 'x' })
    const first = (await empty.subscribe(1, topic)) as SubscribedFrame
    expect(first).toMatchObject({ type: 'subscribed', recovered: false })
    expect('state' in first).toBe(false)

    for (let n = 1; n <= 5; n++) await a.realtime.publishTopic(topic, { n, name: `v${n}` })
    const late = await useRawClient(b.url)
    await late.hello({ id: 'y' })
    const reply = (await late.subscribe(1, topic)) as SubscribedFrame
    expect(reply.state).toEqual({ n: 5, name: 'v5' })
    expect(reply.recovered).toBe(false)
    await a.realtime.publishTopic(topic, { n: 6, name: 'v6' })
    const patch = await late.nextOf('patch')
    expect(patch.payload).toEqual({ n: 6, name: 'v6' })
    expect(Number.parseInt(patch.offset) >= Number.parseInt(reply.offset)).toBe(true)
    // A subscriber that recovers from `since` gets the patches, not the state.
    const again = await useRawClient(b.url)
    await again.hello({ id: 'z' })
    const recovered = (await again.subscribe(1, topic, { epoch: reply.epoch, offset: reply.offset })) as SubscribedFrame
    expect(recovered.recovered).toBe(true)
    expect('state' in recovered).toBe(false)
    expect((await again.nextOf('patch')).payload).toEqual({ n: 6, name: 'v6' })
  })

  it('a state topic under a stream of publishes: no gap and no older state after a newer one', async () => {
    const [a, b] = await twoServers(buses)
    const topic = `user:${Math.random().toString(36).slice(2)}`
    let n = 0
    let publishing = true
    const publisher = (async () => {
      while (publishing) {
        n++
        await a.realtime.publishTopic(topic, { n })
        if (n % 20 === 0) await sleep(1)
      }
    })()
    const seen: number[][] = []
    const clients = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        await sleep(i * 5)
        const client = await useRawClient(i % 2 ? a.url : b.url)
        await client.hello({ id: `c${i}` })
        const values: number[] = []
        seen.push(values)
        client.socket.on('message', (data: Buffer) => {
          const frame = JSON.parse(data.toString()) as { type: string; payload?: { n: number }; state?: { n: number } }
          if (frame.type === 'subscribed' && frame.state) values.push(frame.state.n)
          if (frame.type === 'patch') values.push(frame.payload!.n)
        })
        client.send({ type: 'subscribe', id: 1, topic })
        return client
      }),
    )
    await sleep(200)
    publishing = false
    await publisher
    const last = n
    await waitFor(() => seen.every((values) => values.at(-1) === last), 10_000, 'every client at the last state')
    for (const values of seen) {
      // Each value is the one after the previous: a state first, then every patch after it.
      for (let i = 1; i < values.length; i++) expect(values[i]).toBe(values[i - 1]! + 1)
    }
    expect(clients.length).toBe(40)
  })

  it('presence: one member per principal across tabs and instances; join, leave, members', async () => {
    const [a, b] = await twoServers(buses)
    const topic = `room:${Math.random().toString(36).slice(2)}`
    const admin = await member(a.url, 'boss', topic, { admin: true })
    expect(await members(admin, topic)).toEqual([])
    const seen = follow(admin, [])

    const ann1 = await member(a.url, 'ann', topic)
    const ann2 = await member(b.url, 'ann', topic)
    const bob = await member(b.url, 'bob', topic)
    await waitFor(() => seen.size === 2, 5000, 'ann and bob joined')
    expect(await members(admin, topic, 100)).toEqual(['ann', 'bob'])
    expect(await members(ann1, topic)).toEqual(['ann', 'bob'])
    // Each instance holds its own members once; the watchers on a were sent the two joins.
    expect(a.realtime.stats().presence).toMatchObject({ held: 1, capped: 0 })
    expect(b.realtime.stats().presence).toMatchObject({ held: 2 })
    expect(a.realtime.stats().presence!.changesSent).toBeGreaterThanOrEqual(2)

    // Ann closes one of her tabs: still a member. Closing the other: she leaves (after the delay).
    ann1.close()
    await sleep(400)
    expect([...seen].sort()).toEqual(['ann', 'bob'])
    ann2.close()
    await waitFor(() => !seen.has('ann'), 5000, 'ann left')
    expect(await members(bob, topic)).toEqual(['bob'])
    // An admin is not a member; a principal that may not watch cannot ask.
    const mute = await member(b.url, 'mute', topic)
    mute.send({ type: 'members', id: 7, topic })
    expect(await mute.nextOf('error', 7)).toMatchObject({ code: 'FORBIDDEN', topic })
    await waitFor(() => seen.has('mute'), 5000, 'mute joined')
  })

  it('presence: a reload within the leave delay sends nothing; members of another topic are not asked', async () => {
    const [a, b] = await twoServers(buses)
    const topic = `room:${Math.random().toString(36).slice(2)}`
    const admin = await member(a.url, 'boss', topic, { admin: true })
    const frames: PresenceFrame[] = []
    admin.socket.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as PresenceFrame
      if (frame.type === 'presence') frames.push(frame)
    })
    const tab = await member(b.url, 'ann', topic)
    await waitFor(() => frames.length === 1, 5000, 'the join')
    tab.close()
    await sleep(30)
    await member(a.url, 'ann', topic) // the reload, on the other instance
    await sleep(500)
    expect(frames).toEqual([{ type: 'presence', topic, join: [{ id: 'ann', info: { name: 'user ann' } }] }])

    admin.send({ type: 'members', id: 5, topic: 'room:elsewhere' })
    expect(await admin.nextOf('error', 5)).toMatchObject({ code: 'BAD_REQUEST' })
    admin.send({ type: 'members', id: 6, topic: 'user:1' })
    expect(await admin.nextOf('error', 6)).toMatchObject({ code: 'BAD_REQUEST' })
  })

  it('presence follows authorize: a refused subscriber is never a member and sees nobody', async () => {
    const [a] = await twoServers(buses, { authorize: (principal) => (principal as { id: string }).id !== 'eve' })
    const topic = `room:${Math.random().toString(36).slice(2)}`
    const admin = await member(a.url, 'boss', topic, { admin: true })
    const eve = await useRawClient(a.url)
    await eve.hello({ id: 'eve' })
    expect(await eve.subscribe(1, topic)).toMatchObject({ type: 'error', code: 'FORBIDDEN' })
    eve.send({ type: 'members', id: 2, topic })
    expect(await eve.nextOf('error', 2)).toMatchObject({ code: 'BAD_REQUEST' })
    await sleep(200)
    expect(await members(admin, topic)).toEqual([])
  })
}
