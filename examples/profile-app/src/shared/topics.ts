/**
 * Types shared by the server and the web app: the profile, the realtime topics and the API's
 * answers. Importing this file pulls in no runtime code.
 */

/** A user's profile as stored and served. */
export interface User {
  /** The Telegram user id, as a decimal string (ids exceed 32 bits). */
  userId: string
  tgUsername: string
  /** An https URL, or null when the user has no photo. */
  photoUrl: string | null
  /** ISO 8601 time of the last change. */
  updatedAt: string
}

/**
 * The patch published to `user:<id>` and `profile` after every profile write: the whole public
 * profile (`user:<id>` is a state topic, whose every payload is the whole state).
 */
export interface ProfileUpdated extends User {
  type: 'profile_updated'
}

/** Tells every instance to drop these users from its read cache. Never sent to browsers. */
export interface UsersInvalidated {
  userIds: string[]
  /** The cache (`UserCache.origin`) of the instance that wrote: it invalidated itself already. */
  from?: string
}

/** A refusal an instance saw: a forbidden subscription or refused credentials. */
export interface Refusal {
  /** Milliseconds since the epoch. */
  at: number
  reason: 'forbidden' | 'unauthorized'
  topic?: string
  userId?: string
}

/**
 * What each instance publishes to `$stats` once a second (admins only): its gauges, counter
 * totals, rates since its previous sample, and its busiest topics and last refusals. The activity
 * page keeps the latest sample of every instance and sums them.
 */
export interface ActivitySample {
  instanceId: string
  /** Milliseconds since the epoch. */
  at: number
  busStatus: 'up' | 'down'
  connections: number
  subscriptions: number
  topics: number
  totals: { connectionsOpened: number; framesIn: number; framesOut: number; published: number; delivered: number }
  /** Per second, since the instance's previous sample (0 in its first). */
  rates: { framesInPerSec: number; framesOutPerSec: number; publishedPerSec: number; deliveredPerSec: number }
  drops: Record<string, number>
  errors: Record<string, number>
  closes: Record<string, number>
  refused: Record<string, number>
  busReconnects: number
  /** Estimated from the histograms since start; null before the first observation. */
  latencyMs: {
    publishToSendP50: number | null
    publishToSendP99: number | null
    busPublishP50: number | null
    busPublishP99: number | null
  }
  busiestTopics: { topic: string; subscribers: number; delivered: number }[]
  recentRefusals: Refusal[]
}

/** The app's realtime topics. */
export type Topics = {
  profile: ProfileUpdated
  '$stats': ActivitySample
  'cache:users': UsersInvalidated
  /** Presence only (who has a profile page open): nothing is published on it. */
  '$online': never
  [k: `user:${string}`]: ProfileUpdated
}

/** The `info` of an `$online` member. */
export interface OnlineInfo {
  name: string
}

/** The topic of one user's profile. */
export function userTopic(userId: string): `user:${string}` {
  return `user:${userId}`
}

/** Error body of every 4xx/5xx answer. */
export interface ApiErrorBody {
  error: { code: string; message: string; fields?: Record<string, string> }
}

/** Answer of the sign-in routes. */
export interface SessionResponse {
  token: string
  /** Milliseconds since the epoch. */
  expiresAt: number
  user: User
  isAdmin: boolean
}

/** Answer of `GET /api/users`. */
export interface UserPage {
  users: User[]
  total: number
  limit: number
  offset: number
}

/** Answer of `GET /api/config`: what the sign-in page may offer. */
export interface PublicConfig {
  devLogin: boolean
  telegramLogin: boolean
}
