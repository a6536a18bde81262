// @vitest-environment jsdom
/**
 * `usePresence` and `useTopicState` on state topics, rendered with @testing-library/react against
 * a real server over real WebSockets.
 */
import { act, cleanup, render, screen, waitFor } from '@testing-library/react'
import { StrictMode, useState } from 'react'
import { afterEach, describe, expect, it } from 'vitest'
import type { RealtimeClient } from '../src/client/index.js'
import { createRealtimeHooks, RealtimeProvider, usePresence, useTopicState } from '../src/react/index.js'
import type { RealtimeServerOptions } from '../src/server/index.js'
import { useClient, useServer } from './utils/harness.js'
import type { TestServer } from './utils/server.js'

type Profile = { userId: string; name: string; extra?: string }
type Topics = { [k: `user:${string}`]: Profile; $online: never }
type Info = { name: string }

afterEach(() => cleanup())

const OPTIONS: Omit<RealtimeServerOptions, 'server'> = {
  authenticate: (_request, auth) => auth as { id: string },
  stateTopics: (topic) => topic.startsWith('user:'),
  presence: {
    topics: (topic) => topic === '$online',
    member: (principal) => {
      const { id } = principal as { id: string }
      return id === 'admin' ? null : { id, info: { name: `N${id}` } }
    },
    leaveDelayMs: 50,
    flushMs: 10,
  },
}

async function setup(): Promise<TestServer<Topics>> {
  return useServer<Topics>(OPTIONS)
}

function user(server: TestServer<Topics>, id: string): RealtimeClient<Topics> {
  return useClient<Topics>(server.url, { auth: { id } })
}

const typed = createRealtimeHooks<Topics, Info>()

function Online({ id = 'online' }: { id?: string }) {
  const { members, status } = typed.usePresence('$online')
  // `info` is typed `Info` through createRealtimeHooks<Topics, Info>().
  const names = members.map((m) => m.info?.name ?? '?').sort()
  return (
    <p data-testid={id} data-status={status}>
      {names.join(',')}
    </p>
  )
}

describe('usePresence', () => {
  it('lists the members, live, as clients join and leave, under StrictMode', async () => {
    const server = await setup()
    const admin = user(server, 'admin')
    render(
      <StrictMode>
        <RealtimeProvider client={admin}>
          <Online />
        </RealtimeProvider>
      </StrictMode>,
    )
    await waitFor(() => expect(screen.getByTestId('online').dataset.status).toBe('subscribed'))
    expect(screen.getByTestId('online').textContent).toBe('')
    const ann = user(server, 'ann')
    ann.subscribe('$online')
    await waitFor(() => expect(screen.getByTestId('online').textContent).toBe('Nann'))
    const bob = user(server, 'bob')
    bob.subscribe('$online')
    await waitFor(() => expect(screen.getByTestId('online').textContent).toBe('Nann,Nbob'))
    act(() => ann.unsubscribe('$online'))
    await waitFor(() => expect(screen.getByTestId('online').textContent).toBe('Nbob'))
    // One wire subscription for the StrictMode double mount.
    expect(server.realtime.stats().subscriptions).toBe(2)
  })

  it('asks for the members again after a reconnect, and shows the members who came meanwhile', async () => {
    const server = await setup()
    const admin = user(server, 'admin')
    const carl = user(server, 'carl')
    carl.subscribe('$online')
    await carl.subscription('$online').ready(3000)
    render(
      <RealtimeProvider client={admin}>
        <Online />
      </RealtimeProvider>,
    )
    // Mounted with members there already: the first request lists them.
    await waitFor(() => expect(screen.getByTestId('online').textContent).toBe('Ncarl'))
    const asked: unknown[] = []
    const members = admin.members.bind(admin)
    admin.members = ((topic: '$online') => (asked.push(topic), members(topic))) as typeof admin.members
    act(() => admin.reconnect())
    const dora = user(server, 'dora')
    dora.subscribe('$online')
    await waitFor(() => expect(screen.getByTestId('online').textContent).toBe('Ncarl,Ndora'))
    await waitFor(() => expect(asked).toEqual(['$online']))
  })

  it('the untyped form: shares one subscription with another hook on the topic, and stops with enabled: false', async () => {
    const server = await setup()
    const admin = user(server, 'admin')
    user(server, 'eve').subscribe('$online')
    let toggle: () => void = () => undefined
    function Both() {
      const [on, setOn] = useState(true)
      toggle = () => setOn((v) => !v)
      const { members, status } = usePresence<Topics, '$online', Info>('$online', { enabled: on })
      return (
        <p data-testid="untyped" data-status={status}>
          {members.map((m) => m.info?.name).join(',')}
        </p>
      )
    }
    render(
      <RealtimeProvider client={admin}>
        <Both />
        <Online id="other" />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(screen.getByTestId('untyped').textContent).toBe('Neve'))
    await waitFor(() => expect(screen.getByTestId('other').textContent).toBe('Neve'))
    act(() => toggle())
    await waitFor(() => expect(screen.getByTestId('untyped').dataset.status).toBe('unsubscribed'))
    expect(screen.getByTestId('untyped').textContent).toBe('')
    expect(screen.getByTestId('other').dataset.status).toBe('subscribed')
    act(() => toggle())
    await waitFor(() => expect(screen.getByTestId('untyped').textContent).toBe('Neve'))
  })
})

describe('useTopicState on a state topic', () => {
  function Card({ topic, id }: { topic: `user:${string}`; id: string }) {
    const [profile, , { status }] = typed.useTopicState(topic, { userId: '', name: 'initial' })
    return (
      <p data-testid={id} data-status={status}>
        {profile.name}
        {profile.extra ?? ''}
      </p>
    )
  }

  it('starts from the retained state (no fetch), then merges the patches', async () => {
    const server = await setup()
    await server.realtime.publishTopic('user:1', { userId: '1', name: 'Ann' })
    const client = user(server, 'ann')
    render(
      <RealtimeProvider client={client}>
        <Card topic="user:1" id="card" />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(screen.getByTestId('card').textContent).toBe('Ann'))
    await act(() => server.realtime.publishTopic('user:1', { userId: '1', name: 'Ann B', extra: '!' }))
    await waitFor(() => expect(screen.getByTestId('card').textContent).toBe('Ann B!'))
  })

  it('keeps `initial` where the topic holds nothing yet; a client subscribing after the first patch starts from it', async () => {
    const server = await setup()
    const client = user(server, 'ann')
    render(
      <RealtimeProvider client={client}>
        <Card topic="user:2" id="first" />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(screen.getByTestId('first').dataset.status).toBe('subscribed'))
    expect(screen.getByTestId('first').textContent).toBe('initial')
    await act(() => server.realtime.publishTopic('user:2', { userId: '2', name: 'Bo' }))
    await waitFor(() => expect(screen.getByTestId('first').textContent).toBe('Bo'))
    const other = user(server, 'ann')
    render(
      <RealtimeProvider client={other}>
        <Card topic="user:2" id="second" />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(screen.getByTestId('second').textContent).toBe('Bo'))
  })

  it('takes the state from a subscription already live for another component', async () => {
    const server = await setup()
    await server.realtime.publishTopic('user:3', { userId: '3', name: 'Cy' })
    const client = user(server, 'cy')
    client.subscribe('user:3')
    await client.subscription('user:3').ready(3000)
    expect(client.subscription('user:3').value).toEqual({ userId: '3', name: 'Cy' })
    render(
      <RealtimeProvider client={client}>
        <Card topic="user:3" id="card" />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(screen.getByTestId('card').textContent).toBe('Cy'))
  })

  it('goes through `merge` when one is given', async () => {
    const server = await setup()
    await server.realtime.publishTopic('user:4', { userId: '4', name: 'Di' })
    const client = user(server, 'di')
    function Names() {
      const [names] = useTopicState<Topics, 'user:4', string[]>('user:4', [], { merge: (prev, p) => [...prev, p.name] })
      return <p data-testid="names">{names.join(',')}</p>
    }
    render(
      <RealtimeProvider client={client}>
        <Names />
      </RealtimeProvider>,
    )
    await waitFor(() => expect(screen.getByTestId('names').textContent).toBe('Di'))
    await act(() => server.realtime.publishTopic('user:4', { userId: '4', name: 'Dee' }))
    await waitFor(() => expect(screen.getByTestId('names').textContent).toBe('Di,Dee'))
  })
})
