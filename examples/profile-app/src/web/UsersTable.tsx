import { useState } from 'react'
import type { User } from '../shared/topics.js'
import { ApiCallError, api } from './api.js'
import { Avatar } from './Avatar.js'

type Draft = { tgUsername: string; photoUrl: string }

/**
 * The users list, updated in place by the dashboard; "Batch edit" turns the rows into inputs and
 * saves every changed row in one all-or-nothing request.
 */
export function UsersTable(props: { token: string; users: User[]; onSaved: (users: User[]) => void }) {
  const [drafts, setDrafts] = useState<Record<string, Draft> | null>(null)
  const [fields, setFields] = useState<Record<string, string>>({})
  const [message, setMessage] = useState<string | null>(null)

  const start = () => {
    setDrafts(Object.fromEntries(props.users.map((u) => [u.userId, { tgUsername: u.tgUsername, photoUrl: u.photoUrl ?? '' }])))
    setFields({})
    setMessage(null)
  }

  const save = async () => {
    if (!drafts) return
    const items = props.users.flatMap((user) => {
      const draft = drafts[user.userId]
      if (!draft) return []
      const item: { userId: string; tgUsername?: string; photoUrl?: string | null } = { userId: user.userId }
      if (draft.tgUsername !== user.tgUsername) item.tgUsername = draft.tgUsername
      const photo = draft.photoUrl.trim() === '' ? null : draft.photoUrl.trim()
      if (photo !== user.photoUrl) item.photoUrl = photo
      return Object.keys(item).length > 1 ? [item] : []
    })
    if (items.length === 0) {
      setDrafts(null)
      return
    }
    try {
      const { users } = await api.batch(props.token, items)
      props.onSaved(users)
      setDrafts(null)
      setMessage(`Saved ${users.length} profile(s).`)
    } catch (error) {
      if (!(error instanceof ApiCallError)) return setMessage('the server cannot be reached')
      // Map `items.<i>.<field>` back to the row the item came from.
      const byRow: Record<string, string> = {}
      for (const [path, text] of Object.entries(error.fields)) {
        const [, index, field] = path.split('.')
        const item = items[Number(index)]
        if (item) byRow[`${item.userId}.${field}`] = text
      }
      setFields(byRow)
      setMessage(`Nothing saved: ${error.message}`)
    }
  }

  const edit = (userId: string, patch: Partial<Draft>) =>
    setDrafts((prev) => (prev ? { ...prev, [userId]: { ...prev[userId]!, ...patch } } : prev))

  return (
    <section className="card">
      <header className="row spread">
        <h2>Users</h2>
        {drafts ? (
          <div className="row">
            <button type="button" className="button" onClick={save} data-testid="batch-save">
              Save all
            </button>
            <button type="button" className="button secondary" onClick={() => setDrafts(null)}>
              Cancel
            </button>
          </div>
        ) : (
          <button type="button" className="button" onClick={start} data-testid="batch-edit">
            Batch edit
          </button>
        )}
      </header>
      {message && <p className="hint" data-testid="batch-message">{message}</p>}
      <table className="users" data-testid="users">
        <tbody>
          {props.users.map((user) => {
            const draft = drafts?.[user.userId]
            return (
              <tr key={user.userId} data-user-id={user.userId}>
                <td>
                  <Avatar name={user.tgUsername} photoUrl={user.photoUrl} size={32} />
                </td>
                <td className="hint">#{user.userId}</td>
                {draft ? (
                  <>
                    <td>
                      <input aria-label={`name of ${user.userId}`} value={draft.tgUsername} onChange={(e) => edit(user.userId, { tgUsername: e.target.value })} />
                      {fields[`${user.userId}.tgUsername`] && <p className="field-error">{fields[`${user.userId}.tgUsername`]}</p>}
                    </td>
                    <td>
                      <input aria-label={`photo of ${user.userId}`} value={draft.photoUrl} placeholder="https://…" onChange={(e) => edit(user.userId, { photoUrl: e.target.value })} />
                      {fields[`${user.userId}.photoUrl`] && <p className="field-error">{fields[`${user.userId}.photoUrl`]}</p>}
                    </td>
                  </>
                ) : (
                  <>
                    <td data-testid="user-name">{user.tgUsername}</td>
                    <td className="hint">{new Date(user.updatedAt).toLocaleTimeString()}</td>
                  </>
                )}
              </tr>
            )
          })}
        </tbody>
      </table>
    </section>
  )
}
