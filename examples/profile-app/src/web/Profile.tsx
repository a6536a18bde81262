import { useCallback, useEffect, useRef, useState } from 'react'
import { userTopic, type User } from '../shared/topics.js'
import { api, newer } from './api.js'
import { Avatar } from './Avatar.js'
import { ConnectionBadge } from './ConnectionBadge.js'
import { ProfileAdmin } from './ProfileAdmin.js'
import { useAppTopicState, useRealtimeClient, useSubscription } from './realtime.js'

/**
 * How long the page waits for its `user:<id>` subscription before it loads the profile from REST:
 * long enough for a socket that connects, short enough for one that never does (a proxy that
 * refuses upgrades, the endpoint down), where the page must still show and be editable.
 */
export const REST_FALLBACK_MS = 2000

/**
 * A live profile, opened from the `user:<id>` state topic: the server sends the profile with the
 * subscription (no REST round trip), and the patches keep it current. It is fetched from the REST
 * API only when the topic holds nothing (a profile not written since the bus started), on
 * `resync`, and when the subscription is not live within `REST_FALLBACK_MS`.
 *
 * While it is open, the page holds the `$online` topic: the admins' dashboard lists the user as online.
 */
export function Profile(props: { token: string; userId: string; editable: boolean }) {
  const [loadError, setLoadError] = useState<string | null>(null)
  const topic = userTopic(props.userId)
  const client = useRealtimeClient()
  const inFlight = useRef<Promise<void> | null>(null)
  const [user, setUser, { status }] = useAppTopicState<`user:${string}`, User | null>(topic, null, {
    // Patches and the topic's state alike: the whole public profile, with its `type`.
    merge: (prev, payload) => {
      const { type: _type, ...next } = payload
      return newer(prev, next)
    },
    onResync: () => void refetch(),
  })
  useSubscription('$online')
  const userRef = useRef(user)
  userRef.current = user

  // One fetch at a time: a resync and a stateless `subscribed` come together.
  const refetch = useCallback(() => {
    inFlight.current ??= (async () => {
      try {
        const fetched = await api.user(props.token, props.userId)
        setUser((prev) => newer(prev, fetched))
        setLoadError(null)
      } catch (error) {
        setLoadError(error instanceof Error ? error.message : String(error))
      } finally {
        inFlight.current = null
      }
    })()
    return inFlight.current
  }, [props.token, props.userId, setUser])

  // The topic held nothing when subscribed (and nothing was recovered): load it once.
  useEffect(() => client.subscription(topic).on('subscribed', (info) => void (!info.recovered && !('state' in info) && refetch())), [client, topic, refetch])

  useEffect(() => {
    const timer = setTimeout(() => void (userRef.current === null && refetch()), REST_FALLBACK_MS)
    return () => clearTimeout(timer)
  }, [refetch])

  return (
    <section className="card profile" data-testid="profile" data-user-id={props.userId}>
      <header className="row spread">
        <h1>Profile</h1>
        <ConnectionBadge />
      </header>
      {loadError && <p className="field-error">{loadError}</p>}
      {status === 'unsubscribed' && <p className="field-error">Live updates are not available for this profile.</p>}
      {user ? (
        <>
          <div className="identity">
            <Avatar name={user.tgUsername} photoUrl={user.photoUrl} testId="profile-photo" />
            <div>
              <div className="name" data-testid="profile-name">
                {user.tgUsername}
              </div>
              <div className="hint">id {user.userId}</div>
              <div className="hint" data-testid="profile-updated">
                updated {new Date(user.updatedAt).toLocaleString()}
              </div>
            </div>
          </div>
          {props.editable && <ProfileAdmin token={props.token} user={user} onSaved={(saved) => setUser((prev) => newer(prev, saved))} />}
        </>
      ) : (
        !loadError && <p className="hint">Loading…</p>
      )}
    </section>
  )
}
