import { useState, type FormEvent } from 'react'
import type { PublicConfig, SessionResponse } from '../shared/topics.js'
import { ApiCallError, api } from './api.js'

/** How the form names the fields the server reports errors for. */
const FIELD_LABELS: Record<string, string> = { userId: 'User id', tgUsername: 'Name' }

/** Shown in a plain browser: the dev login where the server enables it, else how to open the app. */
export function SignIn(props: { config: PublicConfig | null; error: string | null; onSignedIn: (session: SessionResponse) => void }) {
  const [userId, setUserId] = useState('')
  const [name, setName] = useState('')
  const [error, setError] = useState<string | null>(null)

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    try {
      props.onSignedIn(await api.devLogin(userId.trim(), name.trim() || undefined))
    } catch (caught) {
      if (caught instanceof ApiCallError) {
        const fieldText = Object.entries(caught.fields)
          .map(([field, text]) => `${FIELD_LABELS[field] ?? field} ${text}`)
          .join('; ')
        setError(fieldText || caught.message)
      } else setError('the server cannot be reached')
    }
  }

  return (
    <section className="card signin">
      <h1>Profile</h1>
      {props.error && (
        <p className="field-error" data-testid="signed-out-reason">
          {props.error}
        </p>
      )}
      {props.config?.devLogin ? (
        <form onSubmit={submit} className="form" data-testid="dev-login">
          <p className="hint">Dev login (enabled by DEV_LOGIN=1): pick any user id.</p>
          <label>
            User id
            <input name="userId" value={userId} inputMode="numeric" placeholder="1" onChange={(e) => setUserId(e.target.value)} />
          </label>
          <label>
            Name (optional)
            <input name="tgUsername" value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          {error && (
            <p className="field-error" data-testid="sign-in-error">
              {error}
            </p>
          )}
          <button type="submit" className="button" data-testid="dev-login-submit">
            Sign in (dev)
          </button>
        </form>
      ) : (
        <p className="hint">Open this app from its Telegram bot to sign in.</p>
      )}
    </section>
  )
}
