import type { PresenceMember } from '../protocol.js'
import type { BusPresence, PresenceListener } from './types.js'

interface MemberRecord {
  member: PresenceMember
  /** How many holders (server instances on this bus) hold the member. */
  holders: number
}

interface PresenceTopicState {
  members: Map<string, MemberRecord>
  listeners: Set<PresenceListener>
}

/**
 * Presence of `InMemoryBus`: one process, so every server on the bus sees one map; changes reach
 * the watchers synchronously, in order. A server counts its own connections and holds a member
 * once, so `holders` counts servers sharing this bus.
 */
export class MemoryPresence implements BusPresence {
  private readonly topics = new Map<string, PresenceTopicState>()

  async join(topic: string, member: PresenceMember, maxMembers: number): Promise<boolean> {
    const state = this.state(topic)
    const record = state.members.get(member.id)
    if (record) {
      record.holders++
      return true
    }
    if (state.members.size >= maxMembers) return false
    state.members.set(member.id, { member, holders: 1 })
    for (const listener of state.listeners) listener({ join: [member] })
    return true
  }

  async leave(topic: string, memberId: string): Promise<void> {
    const state = this.topics.get(topic)
    const record = state?.members.get(memberId)
    if (!state || !record) return
    if (--record.holders > 0) return
    state.members.delete(memberId)
    for (const listener of state.listeners) listener({ leave: [memberId] })
    this.drop(topic, state)
  }

  async watch(topic: string, listener: PresenceListener): Promise<PresenceMember[]> {
    const state = this.state(topic)
    state.listeners.add(listener)
    return [...state.members.values()].map((record) => record.member)
  }

  async unwatch(topic: string, listener: PresenceListener): Promise<void> {
    const state = this.topics.get(topic)
    if (!state) return
    state.listeners.delete(listener)
    this.drop(topic, state)
  }

  clear(): void {
    this.topics.clear()
  }

  private state(topic: string): PresenceTopicState {
    let state = this.topics.get(topic)
    if (!state) {
      state = { members: new Map(), listeners: new Set() }
      this.topics.set(topic, state)
    }
    return state
  }

  private drop(topic: string, state: PresenceTopicState): void {
    if (state.members.size === 0 && state.listeners.size === 0) this.topics.delete(topic)
  }
}
