/**
 * The names `RedisBus` uses in Redis, all under the bus's `prefix`. Everything of one topic — its
 * stream, its epoch hash, its channel and the records of publishes with an idempotency key — carries
 * the topic in a hash tag (`{topic}`), so it all lives in one Redis Cluster slot: the publish script
 * runs on one shard, and its `SPUBLISH` reaches only that shard's nodes. Topic names cannot contain
 * `{` or `}` (see `isValidTopic`), so the tag is always the whole topic; the prefix must not
 * contain them either (`assertPrefix`).
 */

/** The topic's stream: one entry per message, field `d` = payload; id = offset. */
export function streamKey(prefix: string, topic: string): string {
  return `${prefix}{${topic}}:s`
}

/** The topic's epoch hash: `e` = the epoch, `p` = set once a message was published under it. */
export function metaKey(prefix: string, topic: string): string {
  return `${prefix}{${topic}}:e`
}

/** The topic's sharded pub/sub channel (`SPUBLISH` / `SSUBSCRIBE`). */
export function channelOf(prefix: string, topic: string): string {
  return `${prefix}{${topic}}:c`
}

/** The topic of a channel named by `channelOf`, or undefined for another name. */
export function topicOfChannel(prefix: string, channel: string): string | undefined {
  if (!channel.startsWith(prefix) || !channel.endsWith('}:c') || channel[prefix.length] !== '{') return undefined
  return channel.slice(prefix.length + 1, -3)
}

/** The flow-control probe channel (classic pub/sub): every instance with a subscribed topic listens. */
export function probeChannel(prefix: string): string {
  return `${prefix}p`
}

/** Where the other instances answer the probes of the bus with this `id` (classic pub/sub). */
export function ackChannel(prefix: string, id: string): string {
  return `${prefix}a:${id}`
}

/**
 * The record of a publish made with an idempotency key (`PublishOptions.id`): its positions. One
 * per slot group of the publish, named after the group's first topic so that it shares its slot.
 */
export function publishedKey(prefix: string, topic: string, id: string): string {
  return `${prefix}{${topic}}:o:${id}`
}

/**
 * Throws a `TypeError` for a prefix with `{` or `}`: its hash tag would put every topic of the bus
 * in one Redis Cluster slot.
 */
export function assertPrefix(prefix: string): void {
  if (/[{}]/.test(prefix)) throw new TypeError(`RedisBus prefix must not contain "{" or "}" (it would be the hash tag of every key): ${JSON.stringify(prefix)}`)
}
