import type { SessionResponse } from '../shared/topics.js'

/** The signed-in user as the browser keeps it (shared by the tabs of one origin). */
export interface StoredSession {
  token: string
  expiresAt: number
  userId: string
  isAdmin: boolean
}

const KEY = 'profile-app.session'

export function loadSession(): StoredSession | null {
  try {
    const session = JSON.parse(localStorage.getItem(KEY) ?? 'null') as StoredSession | null
    return session && typeof session.token === 'string' && session.expiresAt > Date.now() ? session : null
  } catch {
    return null
  }
}

export function saveSession(response: SessionResponse): StoredSession {
  const session: StoredSession = {
    token: response.token,
    expiresAt: response.expiresAt,
    userId: response.user.userId,
    isAdmin: response.isAdmin,
  }
  localStorage.setItem(KEY, JSON.stringify(session))
  return session
}

export function clearSession(): void {
  localStorage.removeItem(KEY)
}
