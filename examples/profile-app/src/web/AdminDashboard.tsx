import { useRealtimeClient } from '@app/realtime/react'
import { useCallback, useEffect, useRef, useState } from 'react'
import type { ProfileUpdated, User } from '../shared/topics.js'
import { useActivity } from './activity.js'
import { ApiCallError, api, newer } from './api.js'
import { Avatar } from './Avatar.js'
import { ConnectionBadge } from './ConnectionBadge.js'
import { OnlineUsers } from './OnlineUsers.js'
import { UsersTable } from './UsersTable.js'
import { useAppTopic } from './realtime.js'

interface FeedEntry {
  key: string
  receivedAt: number
  patch: ProfileUpdated
  changes: string[]
}

const FEED_LENGTH = 50

function describeChanges(before: User | undefined, after: ProfileUpdated): string[] {
  if (!before) return ['signed in']
  const changes: string[] = []
  if (before.tgUsername !== after.tgUsername) changes.push(`name "${before.tgUsername}" → "${after.tgUsername}"`)
  if (before.photoUrl !== after.photoUrl) changes.push(after.photoUrl ? 'new photo' : 'photo removed')
  return changes.length ? changes : ['signed in again']
}

/**
 * The admin view: every profile change as it happens (the `profile` topic), the users list kept
 * current by the same patches, a batch edit, and the server's connection and message counters.
 */
export function AdminDashboard(props: { token: string }) {
  const client = useRealtimeClient()
  const [feed, setFeed] = useState<FeedEntry[]>([])
  const [users, setUsers] = useState<User[]>([])
  const [total, setTotal] = useState(0)
  const [forbidden, setForbidden] = useState<string | null>(null)
  // Connections and message rate of every instance, from the admin-only `$stats` topic.
  const { totals } = useActivity()
  const usersRef = useRef(users)
  usersRef.current = users

  const loadUsers = useCallback(async () => {
    try {
      const page = await api.users(props.token, 0, 100)
      // A page read before a patch may arrive after it: keep whichever of the two is newer.
      setUsers((prev) => page.users.map((user) => newer(prev.find((u) => u.userId === user.userId) ?? null, user)))
      setTotal(page.total)
    } catch (error) {
      if (error instanceof ApiCallError && error.status === 403) setForbidden(`${error.code}: ${error.message}`)
    }
  }, [props.token])

  const { status } = useAppTopic(
    'profile',
    (message) => {
      const patch = message.payload
      const before = usersRef.current.find((user) => user.userId === patch.userId)
      const entry: FeedEntry = {
        key: `${message.epoch}:${message.offset}`,
        receivedAt: Date.now(),
        patch,
        changes: describeChanges(before, patch),
      }
      setFeed((prev) => [entry, ...prev].slice(0, FEED_LENGTH))
      const { type: _type, ...user } = patch
      if (!before) setTotal((t) => t + 1)
      setUsers((prev) => {
        const index = prev.findIndex((u) => u.userId === user.userId)
        if (index === -1) return [...prev, user]
        const next = [...prev]
        next[index] = newer(prev[index]!, user)
        return next
      })
    },
    { onResync: () => void loadUsers() },
  )

  // A refused subscription arrives as an `error` event: show it rather than an empty feed.
  useEffect(
    () =>
      client.on('error', (error) => {
        if (error.topic === 'profile' && error.code === 'FORBIDDEN') setForbidden(`${error.code}: ${error.message}`)
      }),
    [client],
  )

  // At once, so that the list shows without the WebSocket; again once subscribed, so that a change
  // made between the first load and the subscription is not missed.
  useEffect(() => {
    void loadUsers()
  }, [loadUsers])

  useEffect(() => {
    if (status === 'subscribed') void loadUsers()
  }, [status, loadUsers])

  return (
    <div className="dashboard">
      <section className="card">
        <header className="row spread">
          <h1>Admin dashboard</h1>
          <ConnectionBadge />
        </header>
        {forbidden ? (
          <p className="field-error" data-testid="forbidden">
            {forbidden}
          </p>
        ) : (
          <div className="row stats">
            <span data-testid="stat-connections">{totals.instances ? `${totals.connections} connection${totals.connections === 1 ? '' : 's'}` : '…'}</span>
            <span data-testid="stat-rate">{totals.instances ? `${totals.framesOutPerSec.toFixed(1)} messages/s` : ''}</span>
            <span>
              {total} user{total === 1 ? '' : 's'}
            </span>
            <a href="/admin/activity">Activity →</a>
          </div>
        )}
      </section>
      {!forbidden && <OnlineUsers users={users} />}
      {/* Refused: no feed either, rather than an empty one that promises changes. */}
      {!forbidden && (
        <section className="card">
          <h2>Live feed</h2>
          {feed.length === 0 && <p className="hint">No changes yet. Edit a profile in another tab.</p>}
          <ol className="feed" data-testid="feed">
            {feed.map((entry) => (
              <li key={entry.key} data-user-id={entry.patch.userId}>
                <Avatar name={entry.patch.tgUsername} photoUrl={entry.patch.photoUrl} size={32} />
                <span>
                  <strong>{entry.patch.tgUsername}</strong> <span className="hint">#{entry.patch.userId}</span>:{' '}
                  {entry.changes.join(', ')}
                </span>
                <time className="hint">{new Date(entry.receivedAt).toLocaleTimeString()}</time>
              </li>
            ))}
          </ol>
        </section>
      )}
      {!forbidden && <UsersTable token={props.token} users={users} onSaved={(saved) => setUsers(mergeUsers(saved))} />}
    </div>
  )
}

function mergeUsers(saved: User[]) {
  return (prev: User[]) => prev.map((user) => newer(user, saved.find((s) => s.userId === user.userId) ?? user))
}
