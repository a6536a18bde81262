import type { Redis } from 'ioredis'
import type { Position } from '../topics.js'
import { channelOf, metaKey, streamKey } from './keys.js'

/** Options of a `RedisBus`'s check after a failover (the `failoverCheck` option). */
export interface FailoverCheckOptions {
  /**
   * How long the bus remembers the position of each publish Redis confirmed, to look for it on the
   * next primary, in milliseconds. It must cover how far the replicas may lag behind the primary
   * (bound it in Redis with `min-replicas-max-lag`) plus the time a failover takes. Default 60 000.
   */
  rememberMs?: number
}

export const DEFAULT_FAILOVER_REMEMBER_MS = 60_000

/**
 * Why `RedisBus` reports a gap (`onGap`), after its subscriber connection came back:
 * - `'history'`: the topic's stream no longer holds what the listeners missed (trimmed past it,
 *   older than the history age);
 * - `'epoch'`: the topic has a new epoch: its history was lost (Redis lost its data, or a failover
 *   check on another instance replaced it and this one was not subscribed to hear the notice);
 * - `'failover'`: a failover check (this instance's, or another's notice) found that the new
 *   primary lacks messages the old one had confirmed, and replaced the topic's epoch.
 */
export type GapReason = 'history' | 'epoch' | 'failover'

/**
 * KEYS: stream, meta. ARGV: epoch, offset (a position the old primary had), fresh epoch, channel,
 * ttlMs. When the topic is still in that epoch — or was fenced already and the position is younger
 * than that fence (`f`, Redis' time of it: the old primary confirmed it afterwards) — and its stream
 * lacks that offset (and it was not merely trimmed away: older than the first entry), the topic's
 * epoch is replaced, so that no
 * position of the old epoch can "recover" across the lost messages, and a notice
 * `! \n oldEpoch \n newEpoch` goes out on the topic's channel. A topic whose keys are both gone is
 * fenced only if the position is younger than the history age (else its keys simply expired).
 * Returns 1 when it fenced, else 0.
 */
export const FENCE_SCRIPT = `
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('HGET', KEYS[2], 'e')
local ms, seq = parts(ARGV[2])
if epoch and epoch ~= ARGV[1] then
  -- Fenced already (another instance's check): what was lost before that fence is covered by it;
  -- a message the old primary confirmed after it (it took writes for a while) is a new loss.
  local fencedAt = tonumber(redis.call('HGET', KEYS[2], 'f') or '')
  if not fencedAt or not ms or ms <= fencedAt then return 0 end
end
local exists = redis.call('EXISTS', KEYS[1]) == 1
if not epoch then
  if ARGV[2] == '0' or not ms then return 0 end
  if ms < now - tonumber(ARGV[5]) then return 0 end
elseif ARGV[2] == '0' or not ms then
  return 0
elseif exists then
  if #redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) > 0 then return 0 end
  local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if #head > 0 then
    local hms, hseq = parts(head[1][1])
    if ms < hms or (ms == hms and seq < hseq) then return 0 end
  end
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'e', ARGV[3], 'f', now)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SPUBLISH', ARGV[4], '!\\n' .. ARGV[1] .. '\\n' .. ARGV[3])
return 1
`

/** A fence notice as `FENCE_SCRIPT` publishes it: the epoch replaced and the new one; else undefined. */
export function parseFenceNotice(text: string): { from: string; to: string } | undefined {
  // Epochs are base64url and base36: a message's text never starts with '!'.
  if (text.charCodeAt(0) !== 33) return undefined
  const parts = text.split('\n')
  if (parts.length !== 3) return undefined
  return { from: parts[1] as string, to: parts[2] as string }
}

/** Reads `run_id` from an `INFO server` reply. */
function runIdOf(info: string): string | undefined {
  return /^run_id:(\w+)/m.exec(info)?.[1]
}

/** What the check needs of its bus. */
export interface FailoverCheckContext {
  prefix: string
  ttlMs: number
  freshEpoch: () => string
  /** The positions the bus delivered to its listeners (last, or where they started). */
  delivered: () => Iterable<[string, Position]>
  /** A topic the check moved to a new epoch: its listeners must resync. */
  onFenced: (topic: string, epoch: string) => void
}

interface Remembered {
  position: Position
  at: number
}

/**
 * The asynchronous-replication window. A primary confirms a publish before its replicas have it;
 * if it dies (or is demoted) then, the promoted replica lacks the message, and a client that
 * recovers from the new primary's stream would skip it without knowing. So the bus remembers
 * where the primary it talked to was — the positions of its confirmed publishes (for
 * `rememberMs`) and of what it delivered to its listeners — and when its command connection comes
 * back to another primary (another `run_id`), it holds its publishes and history reads while it
 * checks each of those positions there (`FENCE_SCRIPT`): a topic whose position is missing gets a
 * new epoch, its listeners resync (`onFenced`), and every other instance learns of it from the
 * notice on the topic's channel.
 */
export class FailoverCheck {
  private primary: string | undefined
  private checking: Promise<void> | undefined
  /** Confirmed publishes by topic, oldest first (a topic moves to the end on each publish). */
  private readonly confirmed = new Map<string, Remembered>()
  /** Topics fenced by this bus's checks, and after how many failovers (for stats and tests). */
  fenced = 0
  failovers = 0

  constructor(
    private readonly pub: Redis,
    private readonly options: FailoverCheckContext & { rememberMs: number },
  ) {
    pub.defineCommand('realtimeBusFence', { numberOfKeys: 2, lua: FENCE_SCRIPT })
  }

  /** The check a bus's `failoverCheck` option asks for, or undefined when it is off. */
  static of(option: FailoverCheckOptions | boolean, pub: Redis, context: FailoverCheckContext): FailoverCheck | undefined {
    if (option === false) return undefined
    const rememberMs = Math.max(0, (typeof option === 'object' ? option.rememberMs : undefined) ?? DEFAULT_FAILOVER_REMEMBER_MS)
    const check = new FailoverCheck(pub, { ...context, rememberMs })
    // Connections supplied ready: their first primary is the one they are on.
    if (pub.status === 'ready') check.onReady()
    return check
  }

  /** Resolves once the check after the last reconnect is done (at once when none runs). */
  settled(): Promise<void> | undefined {
    return this.checking
  }

  /** Remembers a position the primary confirmed. */
  record(topic: string, position: Position): void {
    const now = Date.now()
    this.confirmed.delete(topic)
    this.confirmed.set(topic, { position, at: now })
    this.prune(now)
  }

  /** Called on each 'ready' of the command connection: checks the new primary if it is another one. */
  onReady(): void {
    const check = this.check().catch(() => {
      // The connection dropped during the check: the next 'ready' checks again.
    })
    const current = check.finally(() => {
      if (this.checking === current) this.checking = undefined
    })
    this.checking = current
  }

  private prune(now: number): void {
    for (const [topic, entry] of this.confirmed) {
      if (entry.at >= now - this.options.rememberMs) break
      this.confirmed.delete(topic)
    }
  }

  private async check(): Promise<void> {
    const id = runIdOf(String(await this.pub.info('server')))
    if (id === undefined) return
    if (this.primary === undefined) {
      // The first primary: nothing was confirmed or delivered before it.
      this.primary = id
      return
    }
    if (id === this.primary) return
    this.prune(Date.now())
    const positions: [string, Position][] = [...this.confirmed].map(([topic, { position }]) => [topic, position])
    for (const entry of this.options.delivered()) positions.push(entry)
    const { prefix, ttlMs } = this.options
    const fences = positions.map(async ([topic, position]) => {
      const fresh = this.options.freshEpoch()
      const fenced = (await (this.pub as RedisWithFence).realtimeBusFence(
        streamKey(prefix, topic),
        metaKey(prefix, topic),
        position.epoch,
        position.offset,
        fresh,
        channelOf(prefix, topic),
        String(ttlMs),
      )) as number
      if (fenced === 1) {
        this.fenced++
        this.confirmed.delete(topic)
        this.options.onFenced(topic, fresh)
      }
    })
    await Promise.all(fences)
    // Only once every position was checked: a check cut short runs again on the next 'ready'.
    this.primary = id
    this.failovers++
  }
}

type RedisWithFence = Redis & { realtimeBusFence(...args: string[]): Promise<unknown> }
