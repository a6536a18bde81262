import type { Cluster, Redis } from 'ioredis'
import type { BusPresence, PresenceChange, PresenceListener } from '../bus/types.js'
import type { PresenceMember } from '../protocol.js'
import type { CommandConnection } from './connection.js'

/** Default age after which the members of an instance that stopped renewing its lease leave. */
export const DEFAULT_PRESENCE_TTL_MS = 30_000

/**
 * Presence of `RedisBus`. Per topic, under its hash tag (one Cluster slot):
 * - `…{topic}:pm` hash: member id → info (JSON, '' for none): the member list;
 * - `…{topic}:pc` hash: member id → how many instances hold it;
 * - `…{topic}:ph` hash: `instance \n member` → 1: who holds what, so a dead instance's holds can go;
 * - `…{topic}:pv`: the version, raised by every change, so a watcher notices a missed one.
 * Per instance: its lease in the `…pi` sorted set (score: when it expires) and the topics it
 * holds members on in `…pt:<instance>`. Changes are published on `…m:<topic>` as
 * `version \n J|L \n id [\n info]`, by the same script that makes them.
 */
const JOIN_SCRIPT = `
if redis.call('HSETNX', KEYS[3], ARGV[1], '1') == 0 then return 1 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  redis.call('HDEL', KEYS[3], ARGV[1])
  return 0
end
local holders = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if holders == 1 then
  local v = redis.call('INCR', KEYS[4])
  redis.call('PUBLISH', ARGV[5], v .. '\\nJ\\n' .. ARGV[2] .. '\\n' .. ARGV[3])
end
return 1
`

/** Removes holds (ARGV[1]: one holder field, or with ARGV[3] = '*' every field that starts with it). */
const LEAVE_SCRIPT = `
local fields = {}
if ARGV[3] == '*' then
  local all = redis.call('HKEYS', KEYS[3])
  for i = 1, #all do
    if string.sub(all[i], 1, #ARGV[1]) == ARGV[1] then fields[#fields + 1] = all[i] end
  end
else
  fields[1] = ARGV[1]
end
local left = 0
for i = 1, #fields do
  if redis.call('HDEL', KEYS[3], fields[i]) == 1 then
    local id = string.sub(fields[i], string.find(fields[i], '\\n', 1, true) + 1)
    if redis.call('HINCRBY', KEYS[2], id, -1) <= 0 then
      redis.call('HDEL', KEYS[2], id)
      redis.call('HDEL', KEYS[1], id)
      local v = redis.call('INCR', KEYS[4])
      redis.call('PUBLISH', ARGV[2], v .. '\\nL\\n' .. id)
      left = left + 1
    end
  end
end
return left
`

/** The version and the member list, in one step. */
const SNAPSHOT_SCRIPT = `
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HGETALL', KEYS[1])}
`

type Scripts = CommandConnection & {
  realtimePresenceJoin(pm: string, pc: string, ph: string, pv: string, holder: string, id: string, info: string, max: string, channel: string): Promise<number>
  realtimePresenceLeave(pm: string, pc: string, ph: string, pv: string, holder: string, channel: string, mode: string): Promise<number>
  realtimePresenceSnapshot(pm: string, pv: string): Promise<[number, string[]]>
}

interface Watched {
  listeners: Set<PresenceListener>
  /** The version of the last change passed on; changes at or below it are in the list already. */
  version: number
  /** While the list is read: changes that came meanwhile, applied after it. */
  held: { version: number; change: PresenceChange }[] | undefined
}

interface HeldMember {
  member: PresenceMember
  maxMembers: number
}

function memberOf(id: string, info: string): PresenceMember {
  return info === '' ? { id } : { id, info: JSON.parse(info) as Record<string, unknown> }
}

export class RedisPresence implements BusPresence {
  private readonly watched = new Map<string, Watched>()
  /** What this instance holds, by topic: joined again after Redis lost it (a restart). */
  private readonly holds = new Map<string, Map<string, HeldMember>>()
  private sub: CommandConnection | undefined
  private subLost = false
  private pubLost = false
  private leaseTimer: ReturnType<typeof setInterval> | undefined
  private closed = false
  private readonly leaseKey: string
  private readonly topicsKey: string
  private readonly detach: () => void

  constructor(
    private readonly pub: CommandConnection,
    private readonly prefix: string,
    private readonly instance: string,
    private readonly ttlMs: number,
    /** Runs a command on `pub` within the bus's time bound, once the connection is ready. */
    private readonly run: <T>(what: string, call: () => Promise<T>) => Promise<T>,
    private readonly onError: (error: unknown) => void,
  ) {
    this.leaseKey = `${prefix}pi`
    this.topicsKey = `${prefix}pt:${instance}`
    pub.defineCommand('realtimePresenceJoin', { numberOfKeys: 4, lua: JOIN_SCRIPT })
    pub.defineCommand('realtimePresenceLeave', { numberOfKeys: 4, lua: LEAVE_SCRIPT })
    pub.defineCommand('realtimePresenceSnapshot', { numberOfKeys: 2, lua: SNAPSHOT_SCRIPT })
    const onClose = () => {
      this.pubLost = true
    }
    const onReady = () => {
      if (!this.pubLost) return
      this.pubLost = false
      void this.rejoinAll()
    }
    pub.on('close', onClose)
    pub.on('ready', onReady)
    this.detach = () => {
      pub.off('close', onClose)
      pub.off('ready', onReady)
    }
  }

  private keys(topic: string): [string, string, string, string] {
    const base = `${this.prefix}{${topic}}:p`
    return [`${base}m`, `${base}c`, `${base}h`, `${base}v`]
  }

  private channel(topic: string): string {
    return `${this.prefix}m:${topic}`
  }

  async join(topic: string, member: PresenceMember, maxMembers: number): Promise<boolean> {
    let held = this.holds.get(topic)
    if (!held) this.holds.set(topic, (held = new Map()))
    held.set(member.id, { member, maxMembers })
    this.startLease()
    try {
      return await this.runJoin(topic, member, maxMembers)
    } catch (error) {
      // Held all the same: joined when Redis is back (`rejoinAll`).
      this.onError(error)
      return true
    }
  }

  private async runJoin(topic: string, member: PresenceMember, maxMembers: number): Promise<boolean> {
    await this.run(`presence of "${topic}"`, () => this.pub.sadd(this.topicsKey, topic))
    const info = member.info === undefined ? '' : JSON.stringify(member.info)
    const joined = await this.run(`presence of "${topic}"`, () =>
      (this.pub as Scripts).realtimePresenceJoin(
        ...this.keys(topic),
        `${this.instance}\n${member.id}`,
        member.id,
        info,
        String(maxMembers),
        this.channel(topic),
      ),
    )
    if (joined === 0) this.holds.get(topic)?.delete(member.id)
    return joined === 1
  }

  async leave(topic: string, memberId: string): Promise<void> {
    const held = this.holds.get(topic)
    held?.delete(memberId)
    if (held?.size === 0) this.holds.delete(topic)
    await this.run(`presence of "${topic}"`, () =>
      (this.pub as Scripts).realtimePresenceLeave(...this.keys(topic), `${this.instance}\n${memberId}`, this.channel(topic), ''),
    )
  }

  async watch(topic: string, listener: PresenceListener): Promise<PresenceMember[]> {
    const sub = this.subscriber()
    let watched = this.watched.get(topic)
    if (!watched) {
      watched = { listeners: new Set(), version: 0, held: [] }
      this.watched.set(topic, watched)
      await sub.subscribe(this.channel(topic))
    }
    watched.listeners.add(listener)
    // Watching instances reap dead ones too, even when they hold no member themselves.
    this.startLease()
    return this.snapshot(topic, watched)
  }

  async unwatch(topic: string, listener: PresenceListener): Promise<void> {
    const watched = this.watched.get(topic)
    if (!watched || !watched.listeners.delete(listener) || watched.listeners.size > 0) return
    this.watched.delete(topic)
    await this.sub?.unsubscribe(this.channel(topic))
  }

  /** Reads the list (after the channel is subscribed), then passes on what came meanwhile. */
  private async snapshot(topic: string, watched: Watched): Promise<PresenceMember[]> {
    watched.held ??= []
    const [pm, , , pv] = this.keys(topic)
    try {
      const [version, flat] = await this.run(`members of "${topic}"`, () => (this.pub as Scripts).realtimePresenceSnapshot(pm, pv))
      const members: PresenceMember[] = []
      for (let i = 0; i < flat.length; i += 2) members.push(memberOf(flat[i] as string, flat[i + 1] as string))
      watched.version = version
      const held = watched.held
      watched.held = undefined
      // After the caller has the list: the changes are passed on in the next turn.
      queueMicrotask(() => {
        for (const { version: v, change } of held) this.pass(topic, watched, v, change)
      })
      return members
    } catch (error) {
      watched.held = undefined
      throw error
    }
  }

  private receive(channel: string, text: string): void {
    const topic = channel.slice(this.prefix.length + 2)
    const watched = this.watched.get(topic)
    if (!watched) return
    const a = text.indexOf('\n')
    const b = text.indexOf('\n', a + 1)
    const version = Number(text.slice(0, a))
    const kind = text.slice(a + 1, b)
    let change: PresenceChange
    if (kind === 'J') {
      const c = text.indexOf('\n', b + 1)
      change = { join: [memberOf(text.slice(b + 1, c), text.slice(c + 1))] }
    } else {
      change = { leave: [text.slice(b + 1)] }
    }
    if (watched.held) watched.held.push({ version, change })
    else this.pass(topic, watched, version, change)
  }

  private pass(topic: string, watched: Watched, version: number, change: PresenceChange): void {
    if (version <= watched.version) return
    if (version !== watched.version + 1) {
      // A change was missed (or the version started again): read the whole list.
      void this.resync(topic, watched)
      return
    }
    watched.version = version
    for (const listener of watched.listeners) listener(change)
  }

  private async resync(topic: string, watched: Watched): Promise<void> {
    if (watched.held || this.closed) return
    try {
      const members = await this.snapshot(topic, watched)
      if (this.watched.get(topic) === watched) for (const listener of watched.listeners) listener({ members })
    } catch (error) {
      this.onError(error)
    }
  }

  /** The subscriber connection of presence, made on the first watch. */
  private subscriber(): CommandConnection {
    if (this.sub) return this.sub
    // Its SUBSCRIBEs may wait for the connection (the offline queue): a subscriber runs nothing else.
    // Classic pub/sub: on a Cluster a change reaches every node, and the channel is not sharded.
    const own = { autoResubscribe: false, enableOfflineQueue: true, connectionName: 'realtime-bus-presence' }
    const sub: CommandConnection = (this.pub as Cluster).isCluster
      ? (this.pub as Cluster).duplicate([], { enableOfflineQueue: true, redisOptions: own })
      : (this.pub as Redis).duplicate(own)
    sub.on('error', () => {})
    sub.on('message', (channel: string, text: string) => this.receive(channel, text))
    sub.on('close', () => {
      this.subLost = true
    })
    sub.on('ready', () => {
      if (!this.subLost) return
      this.subLost = false
      void this.resubscribeAll(sub)
    })
    this.sub = sub
    return sub
  }

  private async resubscribeAll(sub: CommandConnection): Promise<void> {
    const topics = [...this.watched.keys()]
    if (topics.length === 0) return
    try {
      await sub.subscribe(...topics.map((topic) => this.channel(topic)))
    } catch (error) {
      this.onError(error)
      return
    }
    for (const topic of topics) {
      const watched = this.watched.get(topic)
      if (watched) void this.resync(topic, watched)
    }
  }

  /** Redis came back: holds it may have lost (a restart without persistence) are made again. */
  private async rejoinAll(): Promise<void> {
    for (const [topic, held] of this.holds) {
      for (const { member, maxMembers } of held.values()) {
        await this.runJoin(topic, member, maxMembers).catch(this.onError)
      }
    }
  }

  /** Renews this instance's lease, and makes the holds of instances whose lease ran out leave. */
  private startLease(): void {
    if (this.leaseTimer || this.closed) return
    const tick = () => void this.renew().catch(() => {})
    tick()
    this.leaseTimer = setInterval(tick, Math.max(10, Math.floor(this.ttlMs / 3)))
    this.leaseTimer.unref?.()
  }

  private async renew(): Promise<void> {
    const now = Date.now()
    // Renewed every third of the age, so the lease runs out at most two thirds of it after the last renewal.
    await this.pub.zadd(this.leaseKey, now + Math.ceil((this.ttlMs * 2) / 3), this.instance)
    const dead = await this.pub.zrangebyscore(this.leaseKey, '-inf', now, 'LIMIT', 0, 20)
    for (const instance of dead) {
      if (instance !== this.instance) await this.reap(instance)
    }
  }

  /** Every hold of a dead instance leaves (any instance may do it; doing it twice is harmless). */
  private async reap(instance: string): Promise<void> {
    const topicsKey = `${this.prefix}pt:${instance}`
    const topics = await this.pub.smembers(topicsKey)
    for (const topic of topics) {
      await (this.pub as Scripts).realtimePresenceLeave(...this.keys(topic), `${instance}\n`, this.channel(topic), '*')
    }
    await this.pub.del(topicsKey)
    await this.pub.zrem(this.leaseKey, instance)
  }

  /** Releases this instance's holds and lease (a clean shutdown: others need not wait for the age). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.leaseTimer) clearInterval(this.leaseTimer)
    this.detach()
    try {
      if (this.holds.size > 0 || this.leaseTimer) await this.reap(this.instance)
    } catch {
      // Down: the lease runs out and another instance reaps.
    }
    this.holds.clear()
    this.watched.clear()
    this.sub?.disconnect()
  }
}
