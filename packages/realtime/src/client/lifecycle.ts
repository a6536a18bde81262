/**
 * The page-lifecycle signals a browser gives (a phone's webview going to sleep and waking, the
 * network going and coming back), for the client to check its connection at once instead of
 * waiting for its idle timeout. Outside a browser (Node, workers without `document`) it does nothing.
 */
export interface PageLifecycleHandlers {
  /** The page may have slept or lost the network and is back: check the connection now. */
  wake(): void
  /** The browser says the network is gone. */
  offline(): void
}

/** Starts listening; returns the function that stops. */
export function watchPageLifecycle(handlers: PageLifecycleHandlers): () => void {
  const page = globalThis as unknown as Partial<Window>
  const document = page.document
  if (typeof page.addEventListener !== 'function' || !document || typeof document.addEventListener !== 'function') {
    return () => undefined
  }
  // While hidden nothing happens (the connection is kept, no extra traffic); coming back is what counts.
  const onVisibility = () => {
    if (document.visibilityState === 'visible') handlers.wake()
  }
  const onWake = () => handlers.wake()
  const onOffline = () => handlers.offline()
  document.addEventListener('visibilitychange', onVisibility)
  // `resume` follows a `freeze` (a discarded-or-frozen background tab, Android's webview).
  document.addEventListener('resume', onWake)
  page.addEventListener('pageshow', onWake)
  page.addEventListener('online', onWake)
  page.addEventListener('offline', onOffline)
  return () => {
    document.removeEventListener('visibilitychange', onVisibility)
    document.removeEventListener('resume', onWake)
    page.removeEventListener!('pageshow', onWake)
    page.removeEventListener!('online', onWake)
    page.removeEventListener!('offline', onOffline)
  }
}

/** False only when the browser knows it is offline. */
export function browserOnline(): boolean {
  const navigator = (globalThis as { navigator?: { onLine?: boolean } }).navigator
  return navigator?.onLine !== false
}
