import type { ApiErrorBody, PublicConfig, SessionResponse, User, UserPage } from '../shared/topics.js'

/** A failed API call, with the server's error code and per-field messages. */
export class ApiCallError extends Error {
  override readonly name = 'ApiCallError'
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: Record<string, string> = {},
  ) {
    super(message)
  }
}

let unauthorizedHandler: (() => void) | undefined
/** Called when the server refuses the session token (expired, or signed by a restarted server). */
export function onUnauthorized(handler: () => void): void {
  unauthorizedHandler = handler
}

async function call<R>(method: string, path: string, token: string | null, body?: unknown): Promise<R> {
  const headers: Record<string, string> = {}
  if (token) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const data = (await response.json().catch(() => null)) as unknown
  if (!response.ok) {
    const error = (data as ApiErrorBody | null)?.error
    if (response.status === 401 && token) unauthorizedHandler?.()
    throw new ApiCallError(response.status, error?.code ?? 'HTTP_ERROR', error?.message ?? response.statusText, error?.fields)
  }
  return data as R
}

export const api = {
  config: () => call<PublicConfig>('GET', '/api/config', null),
  telegramLogin: (initData: string) => call<SessionResponse>('POST', '/api/auth/telegram', null, { initData }),
  devLogin: (userId: string, tgUsername?: string) =>
    call<SessionResponse>('POST', '/api/auth/dev', null, tgUsername ? { userId, tgUsername } : { userId }),
  user: (token: string, userId: string) => call<User>('GET', `/api/users/${encodeURIComponent(userId)}`, token),
  users: (token: string, offset = 0, limit = 50) => call<UserPage>('GET', `/api/users?limit=${limit}&offset=${offset}`, token),
  updateUser: (token: string, userId: string, changes: Partial<Pick<User, 'tgUsername' | 'photoUrl'>>) =>
    call<User>('PUT', `/api/users/${encodeURIComponent(userId)}`, token, changes),
  batch: (token: string, items: Array<{ userId: string; tgUsername?: string; photoUrl?: string | null }>) =>
    call<{ users: User[] }>('PUT', '/api/users/batch', token, { items }),
}

/** The newer of two versions of one profile (patches and fetches may arrive in any order). */
export function newer(current: User | null, next: User): User {
  return current && current.userId === next.userId && current.updatedAt > next.updatedAt ? current : next
}
