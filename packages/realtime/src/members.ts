/**
 * The members of one topic (a bus topic's listeners, a local topic's subscriptions), held compactly:
 * most topics (`user:<id>`) have one member for their whole life, and a `Set` costs over a hundred
 * bytes. `one` holds the member while there is at most one and no `many`; a second member makes
 * `many`, which then holds them all, in the order they came, until it is empty again.
 */
export interface Members<T> {
  one: T | undefined
  many: Set<T> | undefined
}

export function addMember<T>(members: Members<T>, member: T): void {
  if (members.many !== undefined) members.many.add(member)
  else if (members.one === undefined) members.one = member
  else if (members.one !== member) {
    members.many = new Set([members.one, member])
    members.one = undefined
  }
}

/** Removes `member`; false when it was not a member. */
export function deleteMember<T>(members: Members<T>, member: T): boolean {
  if (members.many !== undefined) {
    if (!members.many.delete(member)) return false
    if (members.many.size === 0) members.many = undefined
    return true
  }
  if (members.one !== member) return false
  members.one = undefined
  return true
}

export function memberCount<T>(members: Members<T>): number {
  return members.many !== undefined ? members.many.size : members.one !== undefined ? 1 : 0
}

/**
 * Members keyed by topic (a connection's subscriptions), in one field: `undefined` for none, the
 * member itself while there is one (most connections hold one subscription: no Map for it), a Map
 * once a second came. The functions return the holder's new value.
 */
export type KeyedMembers<T extends { readonly topic: string }> = T | Map<string, T> | undefined

export function keyedGet<T extends { readonly topic: string }>(members: KeyedMembers<T>, topic: string): T | undefined {
  if (members instanceof Map) return members.get(topic)
  return members !== undefined && members.topic === topic ? members : undefined
}

/** Adds `member`, replacing the member of its topic if there was one. */
export function keyedSet<T extends { readonly topic: string }>(members: KeyedMembers<T>, member: T): KeyedMembers<T> {
  if (members instanceof Map) return members.set(member.topic, member)
  if (members === undefined || members.topic === member.topic) return member
  return new Map([
    [members.topic, members],
    [member.topic, member],
  ])
}

/** Removes `member` if it is still the member of its topic. */
export function keyedDelete<T extends { readonly topic: string }>(members: KeyedMembers<T>, member: T): KeyedMembers<T> {
  if (members instanceof Map) {
    if (members.get(member.topic) === member) members.delete(member.topic)
    return members.size === 0 ? undefined : members
  }
  return members === member ? undefined : members
}

export function keyedCount<T extends { readonly topic: string }>(members: KeyedMembers<T>): number {
  return members instanceof Map ? members.size : members !== undefined ? 1 : 0
}

export function keyedValues<T extends { readonly topic: string }>(members: KeyedMembers<T>): T[] {
  if (members instanceof Map) return [...members.values()]
  return members === undefined ? [] : [members]
}
