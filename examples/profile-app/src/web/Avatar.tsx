import { useEffect, useState } from 'react'

/**
 * A round photo over the user's initial: the initial shows where there is no photo or it fails
 * to load (the `img` stays, hidden, so its `src` still tells which photo is current).
 */
export function Avatar(props: { name: string; photoUrl: string | null; size?: number; testId?: string }) {
  const size = props.size ?? 96
  const [failed, setFailed] = useState(false)
  useEffect(() => setFailed(false), [props.photoUrl])
  const initial = [...props.name.trim()][0]?.toUpperCase() ?? '?'
  const hue = [...props.name].reduce((sum, ch) => sum + ch.codePointAt(0)!, 0) % 360
  return (
    <span className="avatar" style={{ width: size, height: size, fontSize: size * 0.42, background: `hsl(${hue} 55% 55%)` }}>
      <span aria-hidden="true">{initial}</span>
      {props.photoUrl && (
        <img
          src={props.photoUrl}
          alt={`${props.name}'s photo`}
          data-testid={props.testId}
          className={failed ? 'failed' : undefined}
          referrerPolicy="no-referrer"
          onError={() => setFailed(true)}
        />
      )}
    </span>
  )
}
