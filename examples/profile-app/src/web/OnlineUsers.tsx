import type { User } from '../shared/topics.js'
import { Avatar } from './Avatar.js'
import { usePresence } from './realtime.js'

/**
 * Who has a profile page open now, live: the members of the `$online` presence topic (only admins
 * may see them). A name comes from the users list when it has the user (kept current by the
 * patches), else from the member's `info` (the name when that user's page connected).
 */
export function OnlineUsers(props: { users: User[] }) {
  const { members, status } = usePresence('$online')
  const byId = new Map(props.users.map((user) => [user.userId, user]))
  return (
    <section className="card">
      <h2>
        Online now <span className="hint" data-testid="online-count">{status === 'subscribed' ? members.length : '…'}</span>
      </h2>
      {status === 'subscribed' && members.length === 0 && <p className="hint">No one has a profile page open.</p>}
      <ul className="online" data-testid="online">
        {members.map((member) => {
          const user = byId.get(member.id)
          const name = user?.tgUsername ?? member.info?.name ?? `#${member.id}`
          return (
            <li key={member.id} data-user-id={member.id}>
              <Avatar name={name} photoUrl={user?.photoUrl ?? null} size={24} />
              <span data-testid="online-name">{name}</span> <span className="hint">#{member.id}</span>
            </li>
          )
        })}
      </ul>
    </section>
  )
}
