/**
 * The presence chaos run (issue 15's proof), shared by the bounded test
 * (`test/presence-chaos.test.ts`) and the full run (`npm run chaos -w bench -- --scenario presence`):
 *
 * 1. **churn**: 3 instances in their own processes on one Redis; `users × tabs` tabs open and close
 *    at random on random instances for `seconds`; then every watcher's member list (one admin per
 *    instance, following `presence` frames from its `members` reply) must equal the true set, and
 *    so must a fresh `members` reply;
 * 2. **SIGKILL**: an instance is killed with its members' only tabs on it: they must leave every
 *    watcher's list within `presenceTtlMs` (plus a flush);
 * 3. **storm**: `stormClients` members on one instance drop their sockets at once and reconnect to
 *    the other within `stormReconnectMs` (< leave delay): the join/leave entries the watchers get
 *    are counted (the bound: at most 2 per member whose reconnect took longer than the leave delay,
 *    here none).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import type { PresenceFrame, ServerFrame } from '../../src/protocol.js'
import { deleteKeys, uniquePrefix } from './redis.js'
import { sleep, waitFor } from './wait.js'

const FIXTURE = fileURLToPath(new URL('../fixtures/presence-instance.ts', import.meta.url))
const TOPIC = 'room:lobby'

export interface PresenceChaosOptions {
  redisUrl: string
  /** Length of the churn phase. */
  seconds: number
  users: number
  tabs: number
  stormClients: number
  presenceTtlMs: number
  leaveDelayMs: number
  /** Reconnects of the storm are spread over this window (keep it under the leave delay). */
  stormReconnectMs: number
  log?: (line: string) => void
}

export interface PresenceChaosResult {
  /** Tab opens and closes in the churn phase. */
  churnOps: number
  /** Watchers whose list differed from the true set after the churn (0 to pass), and the set's size. */
  churnMismatches: number
  trueMembers: number
  /** Milliseconds from the SIGKILL until every watcher saw the killed instance's members leave. */
  killLeaveMs: number
  killedMembers: number
  /** Join and leave entries, and frames, the watchers got during the storm (per watcher, summed). */
  stormEntries: number
  stormFrames: number
  stormMembers: number
  /** Storm members whose new subscription was confirmed later than the leave delay after the drop. */
  stormSlow: number
  /** The slowest storm reconnect (drop to `subscribed`), in ms. */
  stormSlowestMs: number
  /** Watchers whose list differed from the true set at the very end (0 to pass). */
  finalMismatches: number
}

interface Instance {
  url: string
  child: ChildProcess
  exited: Promise<void>
}

async function startInstance(redisUrl: string, prefix: string, options: PresenceChaosOptions): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: {
      ...process.env,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      PRESENCE_TTL_MS: String(options.presenceTtlMs),
      LEAVE_DELAY_MS: String(options.leaveDelayMs),
      FLUSH_MS: '50',
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('presence instance did not start within 20 s')), 20_000)
    child.once('exit', (code) => reject(new Error(`presence instance exited with ${code}`)))
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as { ready?: number }
      if (message.ready !== undefined) {
        clearTimeout(timer)
        resolve(message.ready)
      }
    })
  })
  return { url: `ws://127.0.0.1:${port}/ws`, child, exited }
}

/** A connection that says hello as `user` and subscribes to the lobby. */
class Tab {
  readonly socket: WebSocket
  subscribed = false
  readonly opened: Promise<void>
  constructor(url: string, user: { id: string; admin?: boolean }, onFrame?: (frame: ServerFrame) => void) {
    this.socket = new WebSocket(url)
    this.socket.on('error', () => {})
    this.opened = new Promise<void>((resolve, reject) => {
      this.socket.once('open', () => {
        this.socket.send(JSON.stringify({ type: 'hello', v: 1, auth: user }))
        this.socket.send(JSON.stringify({ type: 'subscribe', id: 1, topic: TOPIC }))
      })
      this.socket.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString()) as ServerFrame
        if (frame.type === 'subscribed') {
          this.subscribed = true
          resolve()
        }
        onFrame?.(frame)
      })
      this.socket.once('close', () => reject(new Error('closed before subscribed')))
    })
    this.opened.catch(() => {})
  }
  close(): void {
    this.socket.terminate()
  }
}

/** An admin on one instance: its view of the lobby's members. */
class Watcher {
  readonly members = new Set<string>()
  entries = 0
  frames = 0
  private readonly tab: Tab
  private nextId = 10
  private readonly replies = new Map<number, (ids: string[]) => void>()

  constructor(url: string, name: string) {
    this.tab = new Tab(url, { id: name, admin: true }, (frame) => this.onFrame(frame))
  }

  async start(): Promise<void> {
    await this.tab.opened
    const ids = await this.request()
    for (const id of ids) this.members.add(id)
  }

  /** A fresh `members` reply. */
  request(): Promise<string[]> {
    const id = this.nextId++
    return new Promise((resolve) => {
      this.replies.set(id, resolve)
      this.tab.socket.send(JSON.stringify({ type: 'members', id, topic: TOPIC }))
    })
  }

  private onFrame(frame: ServerFrame): void {
    if (frame.type === 'members' && typeof frame.id === 'number') {
      this.replies.get(frame.id)?.(frame.members.map((m) => m.id))
      this.replies.delete(frame.id)
    } else if (frame.type === 'presence') {
      const presence = frame as PresenceFrame
      this.frames++
      for (const member of presence.join ?? []) {
        this.members.add(member.id)
        this.entries++
      }
      for (const id of presence.leave ?? []) {
        this.members.delete(id)
        this.entries++
      }
    }
  }

  close(): void {
    this.tab.close()
  }
}

function same(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x))
}

export async function presenceChaos(options: PresenceChaosOptions): Promise<PresenceChaosResult> {
  const log = options.log ?? (() => {})
  const prefix = uniquePrefix('presence-chaos')
  const instances = await Promise.all([0, 1, 2].map(() => startInstance(options.redisUrl, prefix, options)))
  const watchers: Watcher[] = []
  const tabs = new Map<number, { tab: Tab; user: string; instance: number }>()
  const stormTabs: Tab[] = []
  const truth = () => {
    const set = new Set<string>()
    for (const { user, tab } of tabs.values()) if (tab.subscribed) set.add(user)
    for (const tab of stormTabs) if (tab.subscribed) set.add((tab as Tab & { user: string }).user)
    return set
  }
  const settle = async (live: Watcher[], what: string) => {
    await sleep(options.leaveDelayMs + 300)
    const expected = truth()
    await waitFor(() => live.every((w) => same(w.members, expected)), 10_000, what).catch(() => {})
    return live.filter((w) => !same(w.members, expected)).length
  }
  try {
    for (const [i, instance] of instances.entries()) {
      const watcher = new Watcher(instance.url, `admin-${i}`)
      await watcher.start()
      watchers.push(watcher)
    }

    // 1. Churn.
    log(`churn: ${options.users} users × ${options.tabs} tabs on 3 instances for ${options.seconds} s`)
    let ops = 0
    const slots = options.users * options.tabs
    const end = Date.now() + options.seconds * 1000
    const workers = Array.from({ length: slots }, async (_, slot) => {
      const user = `u${slot % options.users}`
      while (Date.now() < end) {
        await sleep(100 + Math.random() * 900)
        const open = tabs.get(slot)
        if (open) {
          open.tab.close()
          tabs.delete(slot)
        } else {
          const instance = Math.floor(Math.random() * 3)
          const tab = new Tab(instances[instance]!.url, { id: user })
          tabs.set(slot, { tab, user, instance })
          await tab.opened.catch(() => {})
        }
        ops++
      }
    })
    await Promise.all(workers)
    const churnMismatches = await settle(watchers, 'the watchers agree after the churn')
    const expected = truth()
    const replies = await Promise.all(watchers.map((w) => w.request()))
    const replyMismatches = replies.filter((ids) => !same(new Set(ids), expected)).length
    log(`churn: ${ops} opens/closes; ${expected.size} members; ${churnMismatches} watcher lists and ${replyMismatches} members replies differ`)

    // 2. SIGKILL of instance 2, holding the only tabs of some members.
    for (const [slot, open] of tabs) {
      if (open.instance === 2) continue
      open.tab.close()
      tabs.delete(slot)
    }
    const killUsers = Math.max(5, Math.floor(options.users / 5))
    for (let k = 0; k < killUsers; k++) {
      const tab = new Tab(instances[2]!.url, { id: `k${k}` })
      tabs.set(100_000 + k, { tab, user: `k${k}`, instance: 2 })
      await tab.opened
    }
    const live = watchers.slice(0, 2)
    await waitFor(() => live.every((w) => w.members.has(`k${killUsers - 1}`)), 10_000, 'the killed instance members joined')
    const killedMembers = [...truth()]
    const killedAt = Date.now()
    instances[2]!.child.kill('SIGKILL')
    await instances[2]!.exited
    for (const [slot, open] of tabs) if (open.instance === 2) tabs.delete(slot)
    watchers[2]!.close()
    await waitFor(() => live.every((w) => killedMembers.every((id) => !w.members.has(id))), options.presenceTtlMs * 2 + 10_000, 'the killed instance members left')
    const killLeaveMs = Date.now() - killedAt
    log(`SIGKILL: ${killedMembers.length} members of the killed instance left every list after ${killLeaveMs} ms (presenceTtlMs ${options.presenceTtlMs})`)

    // 3. Storm: members on instance 0 drop at once and reconnect to instance 1.
    for (let s = 0; s < options.stormClients; s++) {
      const tab = new Tab(instances[0]!.url, { id: `s${s}` }) as Tab & { user: string }
      tab.user = `s${s}`
      stormTabs.push(tab)
    }
    await Promise.all(stormTabs.map((tab) => tab.opened))
    await waitFor(() => live.every((w) => w.members.has(`s${options.stormClients - 1}`) && w.members.size === options.stormClients), 20_000, 'the storm members joined')
    await sleep(300)
    const before = live.map((w) => ({ entries: w.entries, frames: w.frames }))
    const dropped = stormTabs.splice(0)
    const droppedAt = Date.now()
    for (const tab of dropped) tab.close()
    const took = await Promise.all(
      dropped.map(async (old) => {
        await sleep(Math.random() * options.stormReconnectMs)
        const tab = new Tab(instances[1]!.url, { id: (old as Tab & { user: string }).user }) as Tab & { user: string }
        tab.user = (old as Tab & { user: string }).user
        stormTabs.push(tab)
        await tab.opened
        return Date.now() - droppedAt
      }),
    )
    // The join on the new instance comes a moment after its `subscribed`: counted slow with a margin.
    const stormSlow = took.filter((ms) => ms > options.leaveDelayMs - 250).length
    const stormSlowestMs = Math.max(...took)
    await sleep(options.leaveDelayMs + 500)
    const stormEntries = live.reduce((sum, w, i) => sum + w.entries - before[i]!.entries, 0)
    const stormFrames = live.reduce((sum, w, i) => sum + w.frames - before[i]!.frames, 0)
    log(`storm: ${options.stormClients} members reconnected to another instance within ${options.stormReconnectMs} ms: ${stormEntries} join/leave entries in ${stormFrames} frames reached the ${live.length} watchers; ${stormSlow} reconnects took longer than the leave delay (slowest ${stormSlowestMs} ms)`)
    const finalMismatches = await settle(live, 'the watchers agree at the end')

    return {
      churnOps: ops,
      churnMismatches: churnMismatches + replyMismatches,
      trueMembers: expected.size,
      killLeaveMs,
      killedMembers: killedMembers.length,
      stormEntries,
      stormFrames,
      stormMembers: options.stormClients,
      stormSlow,
      stormSlowestMs,
      finalMismatches,
    }
  } finally {
    for (const watcher of watchers) watcher.close()
    for (const { tab } of tabs.values()) tab.close()
    for (const tab of stormTabs) tab.close()
    for (const instance of instances) instance.child.kill('SIGKILL')
    await Promise.all(instances.map((instance) => instance.exited))
    await deleteKeys(options.redisUrl, prefix)
  }
}
