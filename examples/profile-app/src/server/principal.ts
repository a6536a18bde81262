import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Topics } from '../shared/topics.js'
import { ApiError } from './errors.js'

/** Who a request or a WebSocket connection acts as. */
export interface Principal {
  userId: string
  isAdmin: boolean
  /** The user's name when the connection opened (WebSocket principals only): the `$online` info. */
  name?: string
}

declare module '@app/realtime/fastify' {
  interface RealtimeRegister {
    topics: Topics
    principal: Principal
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `requireSession`. */
    principal: Principal | null
  }
}

/**
 * Topic rules: `user:<id>` for that user and admins, `$online` for everyone (only admins see its
 * members: `presence.watch`), `profile` and `$stats` for admins, nothing else.
 */
export function mayRead(principal: Principal, topic: string): boolean {
  if (topic === `user:${principal.userId}` || topic === ONLINE_TOPIC) return true
  if (!principal.isAdmin) return false
  return topic === 'profile' || topic === '$stats' || /^user:\d{1,20}$/.test(topic)
}

/**
 * The presence topic of the users with a profile page open. Its members are those users (admins
 * watch it from the dashboard and are not listed), with their name as `info`; only admins may see
 * who is on it.
 */
export const ONLINE_TOPIC = '$online'

/** The `presence` option of the realtime server: `$online` as described above. */
export const onlinePresence = {
  topics: (topic: string) => topic === ONLINE_TOPIC,
  member: (principal: Principal) => (principal.isAdmin ? null : { id: principal.userId, info: { name: principal.name ?? '' } }),
  watch: (principal: Principal) => principal.isAdmin,
}

/** `user:<id>` topics keep their last patch, the whole public profile: a page opens from it. */
export function isStateTopic(topic: string): boolean {
  return topic.startsWith('user:')
}

/** The bearer token of a request, if any. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const header = headers.authorization
  if (typeof header !== 'string') return undefined
  const match = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(header)
  return match?.[1]
}

/** onRequest hook: 401 without a valid session token. */
export async function requireSession(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
  const token = bearerToken(request.headers)
  if (!token) throw new ApiError(401, 'UNAUTHORIZED', 'sign in first: send Authorization: Bearer <token>')
  request.principal = request.server.principalOf(token)
}

/** onRequest hook: 403 unless the signed-in user is an admin. */
export async function requireAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  await requireSession(request, reply)
  if (!request.principal?.isAdmin) throw new ApiError(403, 'FORBIDDEN', 'admins only')
}
