import { useConnectionState } from './realtime.js'

const LABELS = { connected: 'Live', connecting: 'Connecting…', disconnected: 'Offline' } as const

/** The WebSocket's state, so a user knows whether what they see is live. */
export function ConnectionBadge() {
  const state = useConnectionState()
  return (
    <span className={`badge badge-${state}`} data-testid="connection" data-state={state}>
      {LABELS[state]}
    </span>
  )
}
