/**
 * A map from topic name (or template-literal pattern such as `` `user:${string}` ``) to the payload
 * type published on it. One such type is shared by server and client:
 *
 * ```ts
 * type Topics = { profile: ProfileUpdated; [k: `user:${string}`]: ProfileUpdated }
 * // or: interface Topics { profile: ProfileUpdated; [k: `user:${string}`]: ProfileUpdated }
 * ```
 */
// `any`, not `unknown`: an `interface` has no implicit index signature, so only an index
// signature of `any` accepts one (`RealtimeRegister` and most apps' maps are interfaces).
export type TopicMap = Record<string, any>

/** Any topic name the map accepts: its literal keys and every string matching its patterns. */
export type TopicName<T extends TopicMap> = keyof T & string

/** The payload type of topic `K` in map `T`. */
export type TopicPayload<T extends TopicMap, K extends TopicName<T>> = T[K]

/**
 * A payload that fits every topic of `K` (for `publishTopics`): the intersection of their payload
 * types, so a payload missing a field of one of the topics is a compile error.
 */
export type TopicsPayload<T extends TopicMap, K extends TopicName<T>> = (K extends unknown ? (payload: T[K]) => void : never) extends (
  payload: infer I,
) => void
  ? I
  : never

/** A position in a topic's history: the store's `epoch` and the message's `offset` (opaque strings). */
export interface Position {
  epoch: string
  offset: string
}

/** The `patch` frame, typed by topic: narrowing on `msg.topic` narrows `msg.payload`. */
export type PatchMessage<T extends TopicMap = TopicMap> = {
  [K in TopicName<T>]: {
    type: 'patch'
    topic: K
    payload: T[K]
    offset: string
    epoch: string
  }
}[TopicName<T>]
