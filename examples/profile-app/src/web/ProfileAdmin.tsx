import { useState, type FormEvent } from 'react'
import type { User } from '../shared/topics.js'
import { ApiCallError, api } from './api.js'
import { Avatar } from './Avatar.js'

function isHttpsUrl(value: string): boolean {
  try {
    return new URL(value).protocol === 'https:'
  } catch {
    return false
  }
}

/**
 * "Edit profile": a form for name and photo with a live preview. Save shows the server's answer
 * at once (through `onSaved`); every other tab gets the same change as a patch.
 */
export function ProfileAdmin(props: { token: string; user: User; onSaved: (user: User) => void }) {
  const [editing, setEditing] = useState(false)
  const [tgUsername, setTgUsername] = useState(props.user.tgUsername)
  const [photoUrl, setPhotoUrl] = useState(props.user.photoUrl ?? '')
  const [fields, setFields] = useState<Record<string, string>>({})
  const [error, setError] = useState<string | null>(null)
  const [saving, setSaving] = useState(false)

  const open = () => {
    setTgUsername(props.user.tgUsername)
    setPhotoUrl(props.user.photoUrl ?? '')
    setFields({})
    setError(null)
    setEditing(true)
  }

  const save = async (event: FormEvent) => {
    event.preventDefault()
    const changes: { tgUsername?: string; photoUrl?: string | null } = {}
    if (tgUsername !== props.user.tgUsername) changes.tgUsername = tgUsername
    const photo = photoUrl.trim() === '' ? null : photoUrl.trim()
    if (photo !== props.user.photoUrl) changes.photoUrl = photo
    if (Object.keys(changes).length === 0) {
      setEditing(false)
      return
    }
    setSaving(true)
    setFields({})
    setError(null)
    try {
      props.onSaved(await api.updateUser(props.token, props.user.userId, changes))
      setEditing(false)
    } catch (caught) {
      if (caught instanceof ApiCallError) {
        setFields(caught.fields)
        setError(Object.keys(caught.fields).length ? null : caught.message)
      } else {
        setError('the server cannot be reached')
      }
    } finally {
      setSaving(false)
    }
  }

  if (!editing) {
    return (
      <button type="button" className="button" onClick={open} data-testid="edit-profile">
        Edit profile
      </button>
    )
  }
  return (
    <form className="card form" onSubmit={save} data-testid="profile-form" noValidate>
      <div className="preview">
        <Avatar name={tgUsername || '?'} photoUrl={isHttpsUrl(photoUrl) ? photoUrl : null} size={72} testId="photo-preview" />
        <span className="hint">Preview</span>
      </div>
      <label>
        Name
        <input name="tgUsername" value={tgUsername} onChange={(e) => setTgUsername(e.target.value)} />
      </label>
      {fields.tgUsername && <p className="field-error" data-testid="error-tgUsername">Name {fields.tgUsername}</p>}
      <label>
        Photo URL (https)
        <input
          name="photoUrl"
          value={photoUrl}
          placeholder="https://…"
          inputMode="url"
          onChange={(e) => setPhotoUrl(e.target.value)}
        />
      </label>
      {fields.photoUrl && <p className="field-error" data-testid="error-photoUrl">Photo URL {fields.photoUrl}</p>}
      {error && <p className="field-error">{error}</p>}
      <div className="row">
        <button type="submit" className="button" disabled={saving} data-testid="save">
          Save
        </button>
        <button type="button" className="button secondary" onClick={() => setEditing(false)} data-testid="cancel">
          Cancel
        </button>
      </div>
    </form>
  )
}
