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
