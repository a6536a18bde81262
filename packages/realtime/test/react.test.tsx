// @vitest-environment jsdom
import { act, cleanup, render, screen, waitFor } from '@testing-library/react'
import { StrictMode, useState } from 'react'
import { afterEach, describe, expect, it } from 'vitest'
import { Emitter } from '../src/client/emitter.js'
import type { RealtimeClient } from '../src/client/index.js'
import { createRealtimeServer } from '../src/server/index.js'
import { createRealtimeHooks, RealtimeProvider, useConnectionState, useTopic, useTopicState } from '../src/react/index.js'
import { useClient, useServer } from './utils/harness.js'
import type { TestServer } from './utils/server.js'

type Profile = { userId: string; tgUsername: string; photoUrl?: string }
type Topics = { profile: Profile; [k: `user:${string}`]: Profile }

let wireSubscribes: string[] = []

// Unmounts before the harness closes the client and the server (it runs after afterEach).
afterEach(() => cleanup())

async function setup(): Promise<{ server: TestServer<Topics>; client: RealtimeClient<Topics> }> {
  wireSubscribes = []
  // `authorize` runs once per wire subscribe: the tests count wire subscriptions with it.
  const server = await useServer<Topics>({ authorize: (_p, topic) => (wireSubscribes.push(topic), true) })
  const client = useClient<Topics>(server.url)
  return { server, client }
}

function Name({ topic, label }: { topic: `user:${string}`; label: string }) {
  const [profile] = useTopicState<Topics, typeof topic>(topic, { userId: '1', tgUsername: 'initial' })
  return <p data-testid={label}>{profile.tgUsername}</p>
}

describe('RealtimeProvider + hooks', () => {
  it('makes one wire subscription under StrictMode double-mount', async () => {
    const { server, client } = await setup()
    render(
      <StrictMode>
        <RealtimeProvider client={client}>
          <Name topic="user:1" label="a" />
        </RealtimeProvider>
      </StrictMode>,
    )
    await waitFor(() => expect(client.subscriptionState('user:1')).toBe('subscribed'))
    expect(wireSubscribes).toEqual(['user:1'])
    expect(server.realtime.stats().subscriptions).toBe(1)
    await act(() => server.realtime.publishTopic('user:1', { userId: '1', tgUsername: 'alice' }))
    await waitFor(() => expect(screen.getByTestId('a').textContent).toBe('alice'))
  })

  it('keeps the other component live when one of two on the same topic unmounts', async () => {
    const { server, client } = await setup()
    let hide: () => void = () => {}
    function Two() {
      const [showFirst, setShowFirst] = useState(true)
      hide = () => setShowFirst(false)
      return (
        <>
          {showFirst && <Name topic="user:2" label="first" />}
          <Name topic="user:2" label="second" />
        </>
      )
    }
    render(
      <RealtimeProvider client={client}>
        <Two />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(client.subscriptionState('user:2')).toBe('subscribed'))
    act(() => hide())
    expect(screen.queryByTestId('first')).toBeNull()
    await act(() => server.realtime.publishTopic('user:2', { userId: '2', tgUsername: 'bob' }))
    await waitFor(() => expect(screen.getByTestId('second').textContent).toBe('bob'))
    expect(wireSubscribes).toEqual(['user:2'])
    expect(server.realtime.stats().subscriptions).toBe(1)
  })

  it('useTopicState merges a patch and ignores __proto__, constructor and prototype keys', async () => {
    const { server, client } = await setup()
    let state: Record<string, unknown> = {}
    function Probe() {
      const [value] = useTopicState<Topics, 'user:3', Record<string, unknown>>('user:3', { userId: '3', tgUsername: 'x', keep: 1 })
      state = value
      return <p data-testid="probe">{String(value.tgUsername)}</p>
    }
    render(
      <RealtimeProvider client={client}>
        <Probe />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(client.subscriptionState('user:3')).toBe('subscribed'))
    // An own "__proto__" key, as JSON.parse produces from hostile input.
    const hostile = JSON.parse('{"tgUsername":"carol","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"prototype":1}')
    await act(() => server.realtime.publishTopic('user:3', hostile))
    await waitFor(() => expect(screen.getByTestId('probe').textContent).toBe('carol'))
    expect(state).toEqual({ userId: '3', tgUsername: 'carol', keep: 1 })
    expect(Object.getPrototypeOf(state)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(Object.prototype.hasOwnProperty.call(state, 'constructor')).toBe(false)
  })

  it('useTopic calls the latest handler and does not resubscribe on re-render', async () => {
    const { server, client } = await setup()
    const calls: string[] = []
    let setLabel: (label: string) => void = () => {}
    function Feed() {
      const [label, set] = useState('first')
      setLabel = set
      const { status } = useTopic<Topics, 'profile'>('profile', (msg) => calls.push(`${label}:${msg.payload.tgUsername}`))
      return <p data-testid="status">{status}</p>
    }
    render(
      <RealtimeProvider client={client}>
        <Feed />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(screen.getByTestId('status').textContent).toBe('subscribed'))
    await act(() => server.realtime.publishTopic('profile', { userId: '1', tgUsername: 'a' }))
    await waitFor(() => expect(calls).toEqual(['first:a']))
    act(() => setLabel('second'))
    await act(() => server.realtime.publishTopic('profile', { userId: '1', tgUsername: 'b' }))
    await waitFor(() => expect(calls).toEqual(['first:a', 'second:b']))
    expect(wireSubscribes).toEqual(['profile'])
  })

  it('useConnectionState follows the client and onResync fires when recovery fails', async () => {
    const { server, client } = await setup()
    const resyncs: string[] = []
    function Status() {
      const state = useConnectionState()
      useTopic<Topics, 'profile'>('profile', () => {}, { onResync: (t) => resyncs.push(t) })
      return <p data-testid="conn">{state}</p>
    }
    render(
      <RealtimeProvider client={client}>
        <Status />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(screen.getByTestId('conn').textContent).toBe('connected'))
    await waitFor(() => expect(client.subscriptionState('profile')).toBe('subscribed'))
    await act(() => server.realtime.publishTopic('profile', { userId: '1', tgUsername: 'z' }))
    await waitFor(() => expect(client.position('profile')?.offset).not.toBe('0'))
    // A restarted server process: a new in-memory bus, the old history gone.
    await act(() => server.realtime.close())
    await waitFor(() => expect(screen.getByTestId('conn').textContent).toBe('connecting'))
    server.realtime = createRealtimeServer<Topics>({ server: server.http })
    await waitFor(() => expect(resyncs).toEqual(['profile']))
    expect(screen.getByTestId('conn').textContent).toBe('connected')
  })
})

describe('useTopic dispatch', () => {
  it('never runs a hook on topic A for a patch of topic B', async () => {
    const { server, client } = await setup()
    const calls: string[] = []
    function Feed({ topic }: { topic: `user:${string}` }) {
      const { status } = useTopic<Topics, typeof topic>(topic, (msg) => calls.push(`${topic}:${msg.payload.tgUsername}`))
      return <p data-testid={topic}>{status}</p>
    }
    render(
      <RealtimeProvider client={client}>
        <Feed topic="user:a" />
        <Feed topic="user:b" />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(screen.getByTestId('user:a').textContent).toBe('subscribed'))
    await waitFor(() => expect(screen.getByTestId('user:b').textContent).toBe('subscribed'))
    await act(() => server.realtime.publishTopic('user:b', { userId: 'b', tgUsername: 'bee' }))
    await waitFor(() => expect(calls).toEqual(['user:b:bee']))
    await act(() => server.realtime.publishTopic('user:b', { userId: 'b', tgUsername: 'bee2' }))
    await waitFor(() => expect(calls).toEqual(['user:b:bee', 'user:b:bee2']))
  })

  it('makes one listener call per patch with 50 hooks on 50 topics', async () => {
    const { server, client } = await setup()
    const topics = Array.from({ length: 50 }, (_, i) => `user:${i}` as const)
    render(
      <RealtimeProvider client={client}>
        {topics.map((topic) => (
          <Name key={topic} topic={topic} label={topic} />
        ))}
      </RealtimeProvider>,
    )
    await waitFor(() => expect(topics.every((t) => client.subscriptionState(t) === 'subscribed')).toBe(true))
    // Every 'patch' emit of every emitter (the client's and each subscription's), weighted by
    // how many listeners it calls.
    let listenerCalls = 0
    const emit = Emitter.prototype.emit
    Emitter.prototype.emit = function (this: Emitter<object>, event: never, ...args: never[]) {
      if (event === 'patch') listenerCalls += (this as unknown as { lists: Record<string, unknown[]> }).lists.patch?.length ?? 0
      return emit.call(this, event, ...args)
    } as typeof emit
    try {
      for (const n of [7, 23, 49]) {
        await act(() => server.realtime.publishTopic(`user:${n}`, { userId: String(n), tgUsername: `name-${n}` }))
        await waitFor(() => expect(screen.getByTestId(`user:${n}`).textContent).toBe(`name-${n}`))
      }
    } finally {
      Emitter.prototype.emit = emit
    }
    expect(listenerCalls).toBe(3)
  })
})

describe('createRealtimeHooks<Topics>()', () => {
  const typed = createRealtimeHooks<Topics>()

  it('works with no type arguments, one wire subscription under StrictMode, and useSubscription holds the object', async () => {
    const { server, client } = await setup()
    let seenOffset: string | undefined
    function Card() {
      const [profile, , { status }] = typed.useTopicState('user:9', { userId: '9', tgUsername: 'before' })
      const { subscription } = typed.useSubscription('user:9')
      // Re-renders on its state only; the patch re-renders through useTopicState.
      seenOffset = subscription?.position?.offset
      const state = typed.useConnectionState()
      return (
        <p data-testid="card">
          {profile.tgUsername}/{status}/{state}
        </p>
      )
    }
    render(
      <StrictMode>
        <typed.RealtimeProvider client={client}>
          <Card />
        </typed.RealtimeProvider>
      </StrictMode>,
    )
    await waitFor(() => expect(screen.getByTestId('card').textContent).toBe('before/subscribed/connected'))
    expect(wireSubscribes).toEqual(['user:9'])
    const published = await act(() => server.realtime.publishTopic('user:9', { userId: '9', tgUsername: 'after' }))
    await waitFor(() => expect(screen.getByTestId('card').textContent).toBe('after/subscribed/connected'))
    expect(client.subscription('user:9').position).toEqual(published)
    await waitFor(() => expect(seenOffset).toBe(published.offset))
  })
})
