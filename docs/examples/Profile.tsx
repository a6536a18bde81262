// Quick start, React: state kept live by a topic; refetch when recovery was impossible.
import { RealtimeProvider, useConnectionState, useTopicState } from '@app/realtime/react'
import { client } from './client.js'
import type { ProfileUpdated, Topics } from './topics.js'

function Profile({ initial }: { initial: ProfileUpdated }) {
  const [profile, setProfile] = useTopicState<Topics, `user:${string}`>(`user:${initial.userId}`, initial, {
    onResync: () => void fetch(`/api/users/${initial.userId}`).then(async (r) => setProfile(await r.json())),
  })
  const connection = useConnectionState()
  return (
    <figure title={connection}>
      <img src={profile.photoUrl} alt="" />
      <figcaption>{profile.tgUsername}</figcaption>
    </figure>
  )
}

export const App = ({ user }: { user: ProfileUpdated }) => (
  <RealtimeProvider client={client}>
    <Profile initial={user} />
  </RealtimeProvider>
)
