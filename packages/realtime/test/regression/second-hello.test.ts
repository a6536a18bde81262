/**
 * Regression: a server without `authenticate` answered a second `hello` with a second `welcome`,
 * while PROTOCOL.md (and a server with `authenticate`) said BAD_REQUEST; and its answer to `auth`
 * (`authenticated`) was not documented. One rule now, with or without `authenticate`.
 */
import { describe, expect, it } from 'vitest'
import { useRawClient, useServer } from '../utils/harness.js'
import type { TestServer } from '../utils/server.js'

/** The running test's server (the harness closes it, and its clients, when the test ends). */
let server: TestServer | undefined
const connect = () => useRawClient(server!.url)

describe.each([
  ['without authenticate', {}],
  ['with authenticate', { authenticate: () => ({ id: 'u' }) }],
])('a second hello (%s)', (_name, options) => {
  it('gets BAD_REQUEST, and the connection stays usable', async () => {
    server = await useServer(options)
    const client = await connect()
    client.send({ type: 'hello', v: 1, auth: 't' })
    await client.nextOf('welcome')
    client.send({ type: 'hello', v: 1, id: 2, auth: 't' })
    expect(await client.nextOf('error', 2)).toMatchObject({ code: 'BAD_REQUEST' })
    expect(client.frames.filter((f) => f.type === 'welcome')).toHaveLength(0)
    expect(await client.request({ type: 'subscribe', topic: 'a', id: 3 })).toMatchObject({ type: 'subscribed', topic: 'a' })
  })
})

describe('auth', () => {
  it('is answered `authenticated` (no expiry) by a server without authenticate, before or after hello', async () => {
    server = await useServer()
    const client = await connect()
    expect(await client.request({ type: 'auth', id: 1, auth: 'x' })).toEqual({ type: 'authenticated', id: 1 })
    client.send({ type: 'hello', v: 1 })
    await client.nextOf('welcome')
    expect(await client.request({ type: 'auth', id: 2, auth: 'x' })).toEqual({ type: 'authenticated', id: 2 })
  })

  it('before hello gets UNAUTHORIZED from a server with authenticate', async () => {
    server = await useServer({ authenticate: () => ({ id: 'u' }) })
    const client = await connect()
    expect(await client.request({ type: 'auth', id: 1, auth: 'x' })).toMatchObject({ type: 'error', code: 'UNAUTHORIZED' })
  })
})
