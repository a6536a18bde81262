import { useCallback, useEffect, useState } from 'react'
import { userTopic, type User } from '../shared/topics.js'
import { api, newer } from './api.js'
import { Avatar } from './Avatar.js'
import { ConnectionBadge } from './ConnectionBadge.js'
import { ProfileAdmin } from './ProfileAdmin.js'
import { useAppTopicState } from './realtime.js'

/**
 * A live profile: fetched from the REST API at once, so that it shows and can be edited even when
 * the WebSocket never connects (a proxy that refuses upgrades, the endpoint down); fetched again
 * once subscribed (a change made between the first fetch and the subscription is then not
 * missed), kept current by the patches of `user:<id>`, and fetched again on `resync`.
 */
export function Profile(props: { token: string; userId: string; editable: boolean }) {
  const [loadError, setLoadError] = useState<string | null>(null)
  const [user, setUser, { status }] = useAppTopicState<`user:${string}`, User | null>(userTopic(props.userId), null, {
    merge: (prev, payload) => {
      const { type: _type, ...next } = payload
      return newer(prev, next)
    },
    onResync: () => void refetch(),
  })

  const refetch = useCallback(async () => {
    try {
      const fetched = await api.user(props.token, props.userId)
      setUser((prev) => newer(prev, fetched))
      setLoadError(null)
    } catch (error) {
      setLoadError(error instanceof Error ? error.message : String(error))
    }
  }, [props.token, props.userId, setUser])

  useEffect(() => {
    void refetch()
  }, [refetch])

  useEffect(() => {
    if (status === 'subscribed') void refetch()
  }, [status, refetch])

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
