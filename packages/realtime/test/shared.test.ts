/**
 * The client's `shared` option in Node, with simulated tabs: Node's own BroadcastChannel and a
 * Web Locks manager of this file (FIFO per name, like a browser's). A tab's "death" frees its
 * locks and silences its channels without a word, as a closed browser tab does. The browser
 * version, with Chromium's own locks and channels, is examples/profile-app/test/shared-socket.test.ts.
 */
import { describe, expect, it } from 'vitest'
import type { PresenceChange, RealtimeClient, RealtimeClientOptions, SubscribedInfo } from '../src/client/index.js'
import { isRealtimeError } from '../src/errors.js'
import { compareOffsets } from '../src/client/shared.js'
import { useClient, useServer } from './utils/harness.js'
import { closeAfterTest } from './utils/teardown.js'
import { sleep, waitFor } from './utils/wait.js'

interface LockRequest {
  tab: Tab
  callback: () => unknown
  granted: boolean
}

/** Web Locks for the tabs of one test: each name's requests in a queue, the first one holding it. */
class Locks {
  private readonly queues = new Map<string, LockRequest[]>()

  request(tab: Tab, name: string, options: { signal?: AbortSignal }, callback: () => unknown): Promise<unknown> {
    const queue = this.queues.get(name) ?? []
    this.queues.set(name, queue)
    return new Promise((resolve, reject) => {
      const request: LockRequest = { tab, granted: false, callback: () => Promise.resolve().then(callback).then(resolve, reject) }
      queue.push(request)
      options.signal?.addEventListener('abort', () => {
        if (request.granted) return
        this.remove(name, request)
        reject(new DOMException('aborted', 'AbortError'))
      })
      this.grant(name)
    })
  }

  /** Frees every lock of `tab` and drops its waiting requests. */
  kill(tab: Tab): void {
    for (const [name, queue] of this.queues) for (const request of [...queue]) if (request.tab === tab) this.remove(name, request)
  }

  private grant(name: string): void {
    const head = this.queues.get(name)?.[0]
    if (!head || head.granted) return
    head.granted = true
    void Promise.resolve(head.callback()).finally(() => this.remove(name, head))
  }

  private remove(name: string, request: LockRequest): void {
    const queue = this.queues.get(name)!
    const i = queue.indexOf(request)
    if (i < 0) return
    queue.splice(i, 1)
    if (i === 0) this.grant(name)
  }
}

interface Tab {
  dead: boolean
  channels: BroadcastChannel[]
  client?: RealtimeClient
  /** While set, the tab's channels hold what they receive (a busy or throttled tab). */
  held?: (() => void)[]
}

const locks = new Locks()

/** A client in a new simulated tab: the tab's locks and channels are what the client finds at creation. */
function openTab(url: string, key = 'user:1', options: Partial<RealtimeClientOptions> = {}): Tab {
  const tab: Tab = { dead: false, channels: [] }
  class TabChannel extends BroadcastChannel {
    constructor(name: string) {
      super(name)
      tab.channels.push(this)
      let handler: ((event: MessageEvent) => void) | null = null
      this.addEventListener('message', (event) => (tab.held ? tab.held.push(() => handler?.(event)) : handler?.(event)))
      Object.defineProperty(this, 'onmessage', { set: (fn: typeof handler) => (handler = fn) })
    }
    override postMessage(message: unknown): void {
      if (!tab.dead) super.postMessage(message)
    }
  }
  const g = globalThis as { navigator?: unknown; BroadcastChannel: typeof BroadcastChannel }
  const saved = { navigator: g.navigator, BroadcastChannel: g.BroadcastChannel }
  g.navigator = { locks: { request: (name: string, options: { signal?: AbortSignal }, callback: () => unknown) => locks.request(tab, name, options, callback) } }
  g.BroadcastChannel = TabChannel
  try {
    tab.client = useClient(url, { ...options, shared: { key } })
  } finally {
    g.navigator = saved.navigator
    g.BroadcastChannel = saved.BroadcastChannel
  }
  closeAfterTest(() => kill(tab))
  return tab
}

/** The tab closes: its locks come free and its channels go quiet, with no goodbye; its socket closes. */
function kill(tab: Tab): void {
  if (tab.dead) return
  tab.dead = true
  for (const channel of tab.channels) channel.close()
  locks.kill(tab)
  tab.client!.close()
}

/** Subscribes `topic` and records its patches' payloads. */
async function live(tab: Tab, topic: string): Promise<unknown[]> {
  const seen: unknown[] = []
  const sub = tab.client!.subscription(topic)
  sub.on('patch', (message) => seen.push(message.payload))
  sub.subscribe()
  await sub.ready(3000)
  return seen
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe('a shared client', () => {
  describe('without Web Locks (Node)', () => {
    it('keeps a socket of its own', async () => {
      const server = await useServer()
      const a = useClient(server.url, { shared: { key: 'k' } })
      const b = useClient(server.url, { shared: { key: 'k' } })
      const seen: unknown[] = []
      b.on('patch', (message) => seen.push(message.payload))
      a.subscribe('t')
      b.subscribe('t')
      await waitFor(() => a.subscriptionState('t') === 'subscribed' && b.subscriptionState('t') === 'subscribed')
      expect(server.realtime.stats().connections).toBe(2)
      await server.realtime.publishTopic('t', 1)
      await waitFor(() => seen.length === 1)
      expect(seen).toEqual([1])
    })
  })

  describe('in tabs with Web Locks and BroadcastChannel', () => {
    it('holds one connection for the tabs of one key, and each tab gets each patch once', async () => {
      const server = await useServer()
      const tabs = [openTab(server.url), openTab(server.url), openTab(server.url)]
      const seen = await Promise.all(tabs.map((tab) => live(tab, 't')))
      expect(server.realtime.stats().connections).toBe(1)
      await waitFor(() => tabs.every((tab) => tab.client!.state === 'connected'))
      expect(new Set(tabs.map((tab) => tab.client!.connectionId)).size).toBe(1)
      for (const n of range(1, 5)) await server.realtime.publishTopic('t', n)
      await waitFor(() => seen.every((s) => s.length === 5), 3000, 'five patches in every tab')
      await sleep(50)
      for (const s of seen) expect(s).toEqual(range(1, 5))
    })

    it('keeps tabs of another key on a connection of their own', async () => {
      const server = await useServer()
      const tabs = [openTab(server.url, 'user:1'), openTab(server.url, 'user:2'), openTab(server.url, 'user:1')]
      await Promise.all(tabs.map((tab) => live(tab, 't')))
      expect(server.realtime.stats().connections).toBe(2)
    })

    it('elects the next tab when the leader closes: no patch lost or repeated, patches published meanwhile included', async () => {
      const server = await useServer()
      const tabs = [openTab(server.url), openTab(server.url), openTab(server.url)]
      const seen = await Promise.all(tabs.map((tab) => live(tab, 't')))
      for (const n of range(1, 5)) await server.realtime.publishTopic('t', n)
      await waitFor(() => seen.every((s) => s.length === 5))
      kill(tabs[0]!)
      // Published while the next leader connects and the followers subscribe again through it.
      for (const n of range(6, 30)) {
        await server.realtime.publishTopic('t', n)
        await sleep(2)
      }
      await waitFor(() => seen[1]!.length >= 30 && seen[2]!.length >= 30, 5000, 'thirty patches in the tabs left')
      await sleep(50)
      expect(seen[1]).toEqual(range(1, 30))
      expect(seen[2]).toEqual(range(1, 30))
      await waitFor(() => server.realtime.stats().connections === 1, 3000, 'one connection')
      expect(tabs.slice(1).map((tab) => tab.client!.state)).toEqual(['connected', 'connected'])
    })

    it('replays from its position for a tab that comes back to the new leader behind it', async () => {
      const server = await useServer()
      const tabs = [openTab(server.url), openTab(server.url), openTab(server.url)]
      const seen = await Promise.all(tabs.map((tab) => live(tab, 't')))
      for (const n of range(1, 5)) await server.realtime.publishTopic('t', n)
      await waitFor(() => seen.every((s) => s.length === 5))
      const late = tabs[2]!
      late.held = []
      kill(tabs[0]!)
      await waitFor(() => tabs[1]!.client!.subscriptionState('t') === 'subscribed' && server.realtime.stats().connections === 1)
      for (const n of range(6, 15)) await server.realtime.publishTopic('t', n)
      await waitFor(() => seen[1]!.length === 15, 3000, 'the new leader at 15')
      // The late tab subscribes at 5 through a leader at 15: a wire re-subscribe from 5 replays 6-15.
      const release = late.held
      late.held = undefined
      for (const deliver of release) deliver()
      await waitFor(() => seen[2]!.length >= 15, 3000, 'the late tab caught up')
      for (const n of range(16, 20)) await server.realtime.publishTopic('t', n)
      await waitFor(() => seen[1]!.length >= 20 && seen[2]!.length >= 20, 3000, 'twenty patches in the tabs left')
      await sleep(50)
      expect(seen[1]).toEqual(range(1, 20))
      expect(seen[2]).toEqual(range(1, 20))
    })

    it('releases the topics of a follower tab that vanished', async () => {
      const server = await useServer()
      const leader = openTab(server.url)
      await live(leader, 'mine')
      const follower = openTab(server.url)
      await live(follower, 'theirs')
      expect(server.realtime.stats().subscriptions).toBe(2)
      // The leader's client-wide view stays its own tab's.
      expect(leader.client!.topics()).toEqual(['mine'])
      kill(follower)
      await waitFor(() => server.realtime.stats().subscriptions === 1, 3000, 'the follower\'s topic released')
    })

    it('relays the leader\'s connection state to the followers', async () => {
      const server = await useServer()
      const tabs = [openTab(server.url), openTab(server.url)]
      await Promise.all(tabs.map((tab) => live(tab, 't')))
      const states: string[] = []
      tabs[1]!.client!.on('state', (state) => states.push(state))
      tabs[0]!.client!.reconnect()
      await waitFor(() => states.at(-1) === 'connected' && tabs[1]!.client!.subscriptionState('t') === 'subscribed')
      expect(states).toEqual(['connecting', 'connected'])
    })
  })
})

describe('a shared client on state and presence topics', () => {
  const options = {
    authenticate: (_request: unknown, auth: unknown) => auth as { id: string },
    stateTopics: (topic: string) => topic.startsWith('user:'),
    presence: { topics: (topic: string) => topic.startsWith('room:'), leaveDelayMs: 50, flushMs: 10 },
  }

  it("gives a follower the topic's state in its `subscribed`, with no resync", async () => {
    const server = await useServer(options)
    await server.realtime.publishTopic('user:1', { name: 'Ann' })
    const tabs = [openTab(server.url, 'u1', { auth: { id: '1' } }), openTab(server.url, 'u1', { auth: { id: '1' } })]
    await live(tabs[0]!, 'user:1')
    const infos: SubscribedInfo[] = []
    let resyncs = 0
    const sub = tabs[1]!.client!.subscription('user:1')
    sub.on('subscribed', (info) => infos.push(info))
    sub.on('resync', () => resyncs++)
    const seen = await live(tabs[1]!, 'user:1')
    expect(server.realtime.stats().connections).toBe(1)
    expect(infos).toHaveLength(1)
    expect(infos[0]!.state).toEqual({ name: 'Ann' })
    expect(sub.value).toEqual({ name: 'Ann' })
    await server.realtime.publishTopic('user:1', { name: 'Ann 2' })
    await waitFor(() => seen.length === 1)
    expect(sub.value).toEqual({ name: 'Ann 2' })
    expect(resyncs).toBe(0)
  })

  it("relays members() to the tab that asked only, with the server's errors, and presence to every tab", async () => {
    const server = await useServer(options)
    const tabs = [openTab(server.url, 'u2', { auth: { id: '2' } }), openTab(server.url, 'u2', { auth: { id: '2' } })]
    const changes: PresenceChange[][] = [[], []]
    await Promise.all(
      tabs.map(async (tab, i) => {
        tab.client!.subscription('room:1').on('presence', (change) => changes[i]!.push(change))
        await live(tab, 'room:1')
      }),
    )
    expect(server.realtime.stats().connections).toBe(1)
    // Both tabs' first request has the id `m1`: the leader keeps their replies apart.
    const [leaderList, followerList] = await Promise.all(tabs.map((tab) => tab.client!.members('room:1')))
    expect(leaderList).toEqual([{ id: '2' }])
    expect(followerList).toEqual([{ id: '2' }])
    const stranger = useClient(server.url, { auth: { id: '3' } })
    stranger.subscribe('room:1')
    await waitFor(() => changes.every((c) => c.some((change) => change.join.some((m) => m.id === '3'))), 3000, 'the join in both tabs')
    expect((await tabs[1]!.client!.members('room:1')).map((m) => m.id).sort()).toEqual(['2', '3'])

    // An error answers the follower that asked, and is no subscription's error in any tab.
    const errors: unknown[] = []
    for (const tab of tabs) tab.client!.on('error', (error) => errors.push(error))
    const refused = await tabs[1]!.client!.members('room:other').then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(isRealtimeError(refused) && refused.code).toBe('BAD_REQUEST')
    await sleep(50)
    expect(errors).toEqual([])
    expect(tabs.map((tab) => tab.client!.subscriptionState('room:1'))).toEqual(['subscribed', 'subscribed'])
  })
})

describe('compareOffsets', () => {
  it('orders decimal offsets and Redis stream ids numerically, part by part', () => {
    expect(compareOffsets('9', '10')).toBeLessThan(0)
    expect(compareOffsets('10', '10')).toBe(0)
    expect(compareOffsets('1700000000000-2', '1700000000000-10')).toBeLessThan(0)
    expect(compareOffsets('1700000000001-0', '1700000000000-99')).toBeGreaterThan(0)
  })
})
