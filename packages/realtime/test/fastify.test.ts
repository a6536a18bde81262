import Fastify, { type FastifyInstance } from 'fastify'
import { describe, expect, it } from 'vitest'
import { InMemoryBus } from '../src/bus/memory.js'
import realtimePlugin, { type RealtimePluginOptions } from '../src/fastify/index.js'
import { closeAfterTest, useRawClient as connect } from './utils/harness.js'

/** A Fastify app with the plugin, listening on a free port; closed when the test finishes. */
async function start(options: RealtimePluginOptions = {}): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ logger: false })
  closeAfterTest(() => app.close())
  await app.register(realtimePlugin, options)
  app.post('/publish', async (request) => {
    const { topic, payload } = request.body as { topic: string; payload: unknown }
    return app.publishTopic(topic, payload)
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `${address.replace('http', 'ws')}${options.path ?? '/ws'}` }
}

describe('realtimePlugin', () => {
  describe('#register', () => {
    it('decorates fastify.realtime and fastify.publishTopic', async () => {
      const { app } = await start()
      expect(typeof app.realtime.publishTopic).toBe('function')
      expect(typeof app.publishTopic).toBe('function')
      expect(app.realtime.stats().connections).toBe(0)
    })

    it('serves WebSockets on the Fastify server, on the configured path', async () => {
      const { url } = await start({ path: '/live' })
      expect(url.endsWith('/live')).toBe(true)
      const client = await connect(url)
      client.send({ type: 'hello', v: 1 })
      expect(await client.nextOf('welcome')).toMatchObject({ type: 'welcome', v: 1 })
    })

    it('passes authenticate and authorize through', async () => {
      const { url } = await start({
        authenticate: (_request, auth) => {
          if (auth !== 'secret') throw new Error('no')
          return { name: 'ann' }
        },
        authorize: (principal, topic) => topic === `user:${(principal as { name: string }).name}`,
      })
      const refused = await connect(url)
      refused.send({ type: 'hello', v: 1, auth: 'wrong' })
      expect(await refused.closed()).toBe(4001)

      const client = await connect(url)
      client.send({ type: 'hello', v: 1, auth: 'secret' })
      await client.nextOf('welcome')
      expect(await client.request({ type: 'subscribe', id: 1, topic: 'user:ann' })).toMatchObject({ type: 'subscribed' })
      expect(await client.request({ type: 'subscribe', id: 2, topic: 'profile' })).toMatchObject({ type: 'error', code: 'FORBIDDEN' })
    })
  })

  describe('#publishTopic', () => {
    it('delivers a payload published from a route to a subscribed socket', async () => {
      const { app, url } = await start()
      const client = await connect(url)
      expect(await client.request({ type: 'subscribe', id: 1, topic: 'profile' })).toMatchObject({ type: 'subscribed' })
      const response = await app.inject({ method: 'POST', url: '/publish', payload: { topic: 'profile', payload: { n: 1 } } })
      expect(response.json()).toMatchObject({ epoch: expect.any(String), offset: expect.any(String) })
      expect(await client.nextOf('patch')).toMatchObject({ type: 'patch', topic: 'profile', payload: { n: 1 } })
    })

    it('reaches server-side listeners (onTopic)', async () => {
      const { app } = await start()
      const seen: unknown[] = []
      const stop = app.realtime.onTopic('cache', (payload) => seen.push(payload))
      await stop.ready
      await app.publishTopic('cache', { id: 7 })
      await expect.poll(() => seen).toEqual([{ id: 7 }])
      await stop()
    })
  })

  describe('#close', () => {
    it('closes open sockets with 4010 and lets fastify.close() finish', async () => {
      const { app, url } = await start()
      const client = await connect(url)
      client.send({ type: 'hello', v: 1 })
      await client.nextOf('welcome')
      const closed = client.closed()
      const started = Date.now()
      await app.close()
      expect(await closed).toBe(4010)
      expect(Date.now() - started).toBeLessThan(3000)
    })

    it('closes the bus it was given unless told not to', async () => {
      const shared = new InMemoryBus()
      const { app } = await start({ bus: shared, closeBus: false })
      await app.close()
      // Still usable: a second app can publish on it.
      await expect(shared.publish('t', '1')).resolves.toMatchObject({ offset: expect.any(String) })
      await shared.close()
    })
  })
})
