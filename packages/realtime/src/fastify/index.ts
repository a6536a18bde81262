/**
 * Fastify integration: registers a realtime server on Fastify's own HTTP server and decorates
 * `fastify.realtime`, `fastify.publishTopic` and `fastify.publishTopics`.
 *
 * ```ts
 * import realtime from '@app/realtime/fastify'
 *
 * declare module '@app/realtime/fastify' {
 *   interface RealtimeRegister { topics: Topics; principal: Session }
 * }
 *
 * await app.register(realtime, { authenticate, authorize })
 * await app.publishTopic('profile', payload) // checked against Topics
 * ```
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { createRealtimeServer } from '../server/index.js'
import type { RealtimeServer, RealtimeServerOptions } from '../server/types.js'
import type { TopicMap } from '../topics.js'

/**
 * Augment this interface to type the decorators for your app. Both members are optional:
 * `topics` (a `TopicMap`) types `publishTopic` and `onTopic`; `principal` is what your
 * `authenticate` returns and what `authorize` receives.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface RealtimeRegister {}

/** The topic map registered through `RealtimeRegister`, or `TopicMap` when none is. */
export type RegisteredTopics = RealtimeRegister extends { topics: infer T extends TopicMap } ? T : TopicMap

/** The principal type registered through `RealtimeRegister`, or `unknown` when none is. */
export type RegisteredPrincipal = RealtimeRegister extends { principal: infer P } ? P : unknown

/** The realtime server as decorated on Fastify, typed by `RealtimeRegister`. */
export type FastifyRealtime = RealtimeServer<RegisteredTopics, RegisteredPrincipal>

/**
 * Options of the plugin: those of `createRealtimeServer`, less `server` and `noServer` (the plugin
 * always attaches to `fastify.server`).
 */
export type RealtimePluginOptions = Omit<RealtimeServerOptions<RegisteredPrincipal>, 'server' | 'noServer'>

declare module 'fastify' {
  interface FastifyInstance {
    /** The realtime server attached to this instance's HTTP server. */
    realtime: FastifyRealtime
    /** `fastify.realtime.publishTopic`, bound: publishes to a topic on every instance. */
    publishTopic: FastifyRealtime['publishTopic']
    /** `fastify.realtime.publishTopics`, bound: one payload to several topics in one call. */
    publishTopics: FastifyRealtime['publishTopics']
  }
}

const plugin: FastifyPluginAsync<RealtimePluginOptions> = async (fastify: FastifyInstance, options) => {
  const realtime: FastifyRealtime = createRealtimeServer<RegisteredTopics, RegisteredPrincipal>({
    logger: fastify.log,
    ...options,
    server: fastify.server,
  })
  fastify.decorate('realtime', realtime)
  fastify.decorate('publishTopic', realtime.publishTopic.bind(realtime) as FastifyRealtime['publishTopic'])
  fastify.decorate('publishTopics', realtime.publishTopics.bind(realtime) as FastifyRealtime['publishTopics'])
  // preClose, not onClose: Fastify closes its HTTP server between the two, and Node's
  // `server.close()` waits for every upgraded socket, so open WebSockets would hang `fastify.close()`.
  fastify.addHook('preClose', async () => {
    await realtime.close()
  })
}

/** The Fastify plugin (encapsulation skipped, so the decorators are visible app-wide). */
export const realtimePlugin = fp(plugin, { fastify: '5.x', name: '@app/realtime/fastify' })

export default realtimePlugin
