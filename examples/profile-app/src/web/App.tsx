import { createRealtimeClient, type RealtimeClient } from '@app/realtime/client'
import { RealtimeProvider } from '@app/realtime/react'
import { useEffect, useRef, useState } from 'react'
import type { PublicConfig, SessionResponse, Topics } from '../shared/topics.js'
import { ActivityPage } from './ActivityPage.js'
import { AdminDashboard } from './AdminDashboard.js'
import { api, onUnauthorized } from './api.js'
import { Profile } from './Profile.js'
import { realtimeUrl } from './realtime.js'
import { clearSession, loadSession, saveSession, type StoredSession } from './session.js'
import { SignIn } from './SignIn.js'
import { followTelegramTheme, telegramWebApp } from './telegram.js'

type Boot = { phase: 'starting' } | { phase: 'signed-out'; error: string | null } | { phase: 'signed-in'; session: StoredSession }

/** Shown when the server refuses the stored session, on the REST API (401) or the socket (4001). */
export const SESSION_ENDED = 'Your session ended, sign in again.'

/**
 * Signs in (Telegram init data inside Telegram, else a stored session, else the sign-in page),
 * then shows the profile, or the dashboard at /admin.
 */
export function App() {
  const [boot, setBoot] = useState<Boot>({ phase: 'starting' })
  const [config, setConfig] = useState<PublicConfig | null>(null)

  const sessionEnded = () => {
    clearSession()
    setBoot({ phase: 'signed-out', error: SESSION_ENDED })
  }

  useEffect(() => {
    onUnauthorized(sessionEnded)
    void api.config().then(setConfig, () => setConfig(null))
    void (async () => {
      const webApp = await telegramWebApp()
      if (webApp) {
        followTelegramTheme(webApp)
        try {
          // Every open from Telegram signs in afresh: that is how a new name or avatar arrives.
          const session = saveSession(await api.telegramLogin(webApp.initData))
          return setBoot({ phase: 'signed-in', session })
        } catch (error) {
          return setBoot({ phase: 'signed-out', error: `Telegram sign-in failed: ${(error as Error).message}` })
        }
      }
      const stored = loadSession()
      setBoot(stored ? { phase: 'signed-in', session: stored } : { phase: 'signed-out', error: null })
    })()
  }, [])

  if (boot.phase === 'starting') return <p className="hint center">Loading…</p>
  if (boot.phase === 'signed-out') {
    return (
      <SignIn
        config={config}
        error={boot.error}
        onSignedIn={(response: SessionResponse) => setBoot({ phase: 'signed-in', session: saveSession(response) })}
      />
    )
  }
  return (
    <SignedIn
      session={boot.session}
      onSignOut={() => {
        clearSession()
        setBoot({ phase: 'signed-out', error: null })
      }}
      onSessionEnded={sessionEnded}
    />
  )
}

function SignedIn(props: { session: StoredSession; onSignOut: () => void; onSessionEnded: () => void }) {
  const { token, userId, isAdmin } = props.session
  // Made in an effect, not a memo: StrictMode's second mount must get a fresh client, not the
  // one its first cleanup closed.
  const [client, setClient] = useState<RealtimeClient<Topics> | null>(null)
  const onSessionEnded = useRef(props.onSessionEnded)
  onSessionEnded.current = props.onSessionEnded
  useEffect(() => {
    // One WebSocket for all of this user's tabs; keyed by the user, whose credentials they share.
    const created = createRealtimeClient<Topics>({ url: realtimeUrl(), auth: () => token, shared: { key: `user:${userId}` } })
    // For the browser's console and the browser tests.
    ;(window as { realtimeClient?: RealtimeClient<Topics> }).realtimeClient = created
    // The socket closed 4001: the server refused the token (expired, or signed with another secret).
    created.on('error', (error) => {
      if (error.code === 'UNAUTHORIZED') onSessionEnded.current()
    })
    setClient(created)
    return () => created.close()
  }, [token, userId])
  if (!client) return null

  const path = window.location.pathname
  const viewed = new URLSearchParams(window.location.search).get('user')
  const profileUserId = isAdmin && viewed && /^\d{1,20}$/.test(viewed) ? viewed : userId
  return (
    <RealtimeProvider client={client}>
      <nav className="row spread nav">
        <span className="row">
          <a href="/">My profile</a>
          {isAdmin && <a href="/admin">Dashboard</a>}
          {isAdmin && <a href="/admin/activity">Activity</a>}
        </span>
        <span className="row">
          <span className="hint" data-testid="signed-in-as">
            #{userId}
            {isAdmin ? ' (admin)' : ''}
          </span>
          <button type="button" className="link" onClick={props.onSignOut}>
            Sign out
          </button>
        </span>
      </nav>
      {path.startsWith('/admin/activity') ? (
        <ActivityPage />
      ) : path.startsWith('/admin') ? (
        <AdminDashboard token={token} />
      ) : (
        <Profile key={profileUserId} token={token} userId={profileUserId} editable />
      )}
    </RealtimeProvider>
  )
}
