import type { Bus, PublishOptions } from '../bus/types.js'
import { RealtimeError, isRealtimeError } from '../errors.js'
import { isValidTopic } from '../protocol.js'
import type { Position } from '../topics.js'
import type { StatsCounters } from './stats.js'
import type { Logger } from './types.js'

/** What publishing needs from its server. */
export interface PublishContext {
  readonly bus: Bus
  readonly stats: StatsCounters
  /** Undefined without a logger: then not even the log record is built (this runs once per publish). */
  readonly logger: Logger | undefined
  readonly validate: ((topic: string, payload: unknown) => void) | undefined
  /** Local subscribers of a topic, for the log line. */
  subscriberCount(topic: string): number
  /** True once the server's drain is over: publishes are refused. */
  closed(): boolean
  /** The `stateTopics` rule: a publish to such a topic is kept as its state. */
  readonly stateTopics: ((topic: string) => boolean) | undefined
}

/**
 * One line per publish. `$`-prefixed topics are the app's own telemetry (published every second
 * or so): at debug level, so that they do not drown the publishes of the app's data.
 */
function logPublished(logger: Logger, topic: string, position: Position, subscribers: number): void {
  const fields = { topic, offset: position.offset, epoch: position.epoch, subscribers }
  if (topic.startsWith('$')) logger.debug?.(fields, 'realtime: published')
  else logger.info(fields, 'realtime: published')
}

function checkTopic(topic: string): void {
  if (!isValidTopic(topic)) {
    throw new RealtimeError('INVALID_TOPIC', `invalid topic ${JSON.stringify(String(topic).slice(0, 50))}: 1-200 characters of A-Z a-z 0-9 _ - : . @`)
  }
}

/**
 * `publishTopic` and `publishTopics` of a server: every check (the server open, valid topics, the
 * app's `validate`, a JSON payload) before anything reaches the bus, then one serialization of the
 * payload for every topic and one bus call.
 */
export class Publisher {
  /** Bus calls started and not settled: `close()` waits for them before it closes the bus. */
  private inFlight = 0
  private onSettled: (() => void) | undefined

  constructor(private readonly ctx: PublishContext) {}

  /** Resolves once every bus call in flight has settled (each is bounded by the bus's timeout). */
  settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => (this.onSettled = resolve))
  }

  private done(): void {
    if (--this.inFlight === 0 && this.onSettled !== undefined) {
      this.onSettled()
      this.onSettled = undefined
    }
  }

  /** The hot path: no array, no extra promise (but with an idempotency key). Every check comes before the bus is called. */
  async publish(topic: string, payload: unknown, options?: PublishOptions): Promise<Position> {
    this.checkOpen()
    checkTopic(topic)
    this.validate(topic, payload)
    const data = serialize(topic, payload)
    const { stats, logger, bus } = this.ctx
    let position: Position
    const started = performance.now()
    this.inFlight++
    try {
      position =
        options?.id !== undefined && bus.publishMany
          ? ((await bus.publishMany([topic], data, options))[0] as Position)
          : await bus.publish(topic, data)
    } catch (error) {
      throw unavailable(topic, error)
    } finally {
      this.done()
    }
    stats.busPublish.observe((performance.now() - started) / 1000)
    stats.published++
    if (logger !== undefined) logPublished(logger, topic, position, this.ctx.subscriberCount(topic))
    if (this.ctx.stateTopics?.(topic)) await this.retain(topic, data, position)
    return position
  }

  /**
   * One payload to several topics: validated for each topic and serialized once, then one bus call
   * (`publishMany`: one Redis round trip on `RedisBus`). Each topic keeps its own order and
   * positions; the positions come back in the order of `topics`.
   */
  async publishMany(topics: readonly string[], payload: unknown, options?: PublishOptions): Promise<Position[]> {
    if (!Array.isArray(topics)) throw new RealtimeError('INVALID_TOPIC', 'publishTopics takes an array of topics')
    this.checkOpen()
    for (const topic of topics) checkTopic(topic)
    if (topics.length > 1 && new Set(topics).size !== topics.length) {
      throw new RealtimeError('INVALID_TOPIC', `a topic is listed twice in ${JSON.stringify(topics.slice(0, 10))}`)
    }
    for (const topic of topics) this.validate(topic, payload)
    const data = serialize(topics, payload)
    if (topics.length === 0) return []
    const { stats, logger, bus } = this.ctx
    let positions: Position[]
    const started = performance.now()
    this.inFlight++
    try {
      positions = await (bus.publishMany
        ? bus.publishMany(topics, data, options)
        : Promise.all(topics.map((topic) => bus.publish(topic, data))))
    } catch (error) {
      throw unavailable(topics, error)
    } finally {
      this.done()
    }
    stats.busPublish.observe((performance.now() - started) / 1000)
    stats.published += topics.length
    if (logger !== undefined) {
      topics.forEach((topic, i) => logPublished(logger, topic, positions[i] as Position, this.ctx.subscriberCount(topic)))
    }
    const stateTopics = this.ctx.stateTopics
    if (stateTopics) {
      await Promise.all(topics.map((topic, i) => (stateTopics(topic) ? this.retain(topic, data, positions[i] as Position) : undefined)))
    }
    return positions
  }

  /**
   * Keeps a state topic's payload as its state. The message is published whatever happens here: a
   * failure is logged, not thrown (a retry would publish it twice), and a subscriber that then gets
   * the older state also gets the patches after it from the history.
   */
  private async retain(topic: string, data: string, position: Position): Promise<void> {
    // In flight like the publish itself: `close()` must not close the bus under it.
    this.inFlight++
    try {
      await this.ctx.bus.retain?.({ topic, data, epoch: position.epoch, offset: position.offset })
    } catch (error) {
      this.ctx.logger?.warn({ err: error, topic }, 'realtime: the state of a state topic could not be kept')
    } finally {
      this.done()
    }
  }

  private checkOpen(): void {
    if (this.ctx.closed()) throw new RealtimeError('CLOSED', 'the realtime server is closed')
  }

  /** The app's `validate`, its throw made an `INVALID_PAYLOAD`. */
  private validate(topic: string, payload: unknown): void {
    const validate = this.ctx.validate
    if (!validate) return
    try {
      validate(topic, payload)
    } catch (error) {
      throw new RealtimeError('INVALID_PAYLOAD', `payload for "${topic}" is invalid: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
  }
}

/** How errors name the topics of a publish. */
function describe(topics: string | readonly string[]): string {
  return typeof topics === 'string' ? `"${topics}"` : JSON.stringify(topics.slice(0, 10))
}

/** The payload's JSON, made once for every topic it goes to. */
function serialize(topics: string | readonly string[], payload: unknown): string {
  let data: string | undefined
  try {
    data = JSON.stringify(payload)
  } catch (error) {
    throw new RealtimeError('INVALID_PAYLOAD', `payload for ${describe(topics)} cannot be serialized as JSON`, { cause: error })
  }
  if (data === undefined) throw new RealtimeError('INVALID_PAYLOAD', `payload for ${describe(topics)} is not JSON (undefined or a function)`)
  return data
}

function unavailable(topics: string | readonly string[], error: unknown): RealtimeError {
  if (isRealtimeError(error)) return error
  return new RealtimeError('BUS_UNAVAILABLE', `publish to ${describe(topics)} failed: the bus is unavailable`, { cause: error })
}
