/**
 * The names `RedisBus` uses in Redis, all under the bus's `prefix`. A topic's stream and epoch hash
 * carry the topic in a hash tag (`{topic}`), so they live in one Redis Cluster slot.
 */

/** The topic's stream: one entry per message, field `d` = payload; id = offset. */
export function streamKey(prefix: string, topic: string): string {
  return `${prefix}{${topic}}:s`
}

/** The topic's epoch hash: `e` = the epoch, `p` = set once a message was published under it. */
export function metaKey(prefix: string, topic: string): string {
  return `${prefix}{${topic}}:e`
}

/** The topic's pub/sub channel. */
export function channelOf(prefix: string, topic: string): string {
  return `${prefix}c:${topic}`
}

/** Where publishers send flow-control probes; every instance with a topic subscribed reads it. */
export function probeChannel(prefix: string): string {
  return `${prefix}p`
}

/** Where the other instances answer the probes of the bus with this `id`. */
export function ackChannel(prefix: string, id: string): string {
  return `${prefix}a:${id}`
}

/** The record of a publish made with an idempotency key (`PublishOptions.id`): its positions. */
export function publishedKey(prefix: string, id: string): string {
  return `${prefix}o:${id}`
}
