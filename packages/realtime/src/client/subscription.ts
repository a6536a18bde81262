import type { Position } from '../topics.js'

/** The state of one topic subscription on the client. */
export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed'

/**
 * The client's record of one topic: how many callers want it, the last position seen (sent as
 * `since` on re-subscribe), and the id of the subscribe frame in flight.
 */
export class TopicSubscription {
  refs = 0
  state: SubscriptionState = 'unsubscribed'
  position: Position | undefined
  /** Id of the latest subscribe frame: replies to older ones are stale and ignored. */
  requestId = 0
  /** Whether the in-flight subscribe carried `since` (so `recovered:false` means a resync). */
  sentSince = false
  retryTimer: ReturnType<typeof setTimeout> | undefined
  retries = 0

  constructor(readonly topic: string) {}
}
