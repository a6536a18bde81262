/**
 * A small SVG line chart of the last minutes: time on x (now at the right edge), values on y from
 * zero to a rounded maximum. No dependency: a polyline per series, a few grid lines and labels.
 */
import { useEffect, useRef, useState } from 'react'

export interface ChartSeries {
  name: string
  colour: string
  points: { at: number; value: number }[]
}

/** Until the chart is measured; then it is drawn at its shown width, one unit per CSS pixel. */
const DEFAULT_WIDTH = 640
const HEIGHT = 160
const PAD = { left: 44, right: 8, top: 10, bottom: 20 }

/** 1, 2 or 5 times a power of ten, at least `value` (and at least 1). */
function niceMax(value: number): number {
  if (value <= 1) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

function formatValue(value: number): string {
  if (value >= 10_000) return `${Math.round(value / 1000)}k`
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`
  return Number.isInteger(value) ? String(value) : value.toFixed(1)
}

export function LineChart(props: { title: string; series: ChartSeries[]; spanMs: number; now: number; testId: string }) {
  const { series, spanMs, now } = props
  // A fixed viewBox scaled to a phone's width shrank the 11 px labels to about 5 px: measure the
  // width instead and draw at it.
  const figure = useRef<HTMLElement>(null)
  const [width, setWidth] = useState(DEFAULT_WIDTH)
  useEffect(() => {
    const element = figure.current
    if (!element || typeof ResizeObserver === 'undefined') return
    const measure = () => setWidth(Math.max(200, Math.round(element.clientWidth)))
    measure()
    const observer = new ResizeObserver(measure)
    observer.observe(element)
    return () => observer.disconnect()
  }, [])
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.value))))
  const plotW = width - PAD.left - PAD.right
  const plotH = HEIGHT - PAD.top - PAD.bottom
  const x = (at: number) => PAD.left + plotW * (1 - Math.min(1, Math.max(0, (now - at) / spanMs)))
  const y = (value: number) => PAD.top + plotH * (1 - value / max)
  const last = series.map((s) => s.points.at(-1)?.value)
  // A tick every 15 s on a one-minute chart, every minute on longer ones.
  const tickMs = spanMs <= 60_000 ? 15_000 : 60_000
  const ticks = Array.from({ length: Math.floor(spanMs / tickMs) + 1 }, (_, i) => i * tickMs)

  return (
    <figure ref={figure} className="chart" data-testid={props.testId} data-points={series[0]?.points.length ?? 0} data-last={last.join(',')}>
      <figcaption className="row spread">
        <strong>{props.title}</strong>
        <span className="row legend">
          {series.map((s, i) => (
            <span key={s.name}>
              <span className="swatch" style={{ background: s.colour }} /> {s.name}: {last[i] === undefined ? '–' : formatValue(last[i]!)}
            </span>
          ))}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${HEIGHT}`} role="img" aria-label={props.title}>
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={PAD.left} x2={width - PAD.right} y1={y(max * f)} y2={y(max * f)} className="grid" />
            <text x={PAD.left - 6} y={y(max * f) + 4} textAnchor="end" className="axis">
              {formatValue(max * f)}
            </text>
          </g>
        ))}
        {ticks.map((ago) => (
          <text key={ago} x={x(now - ago)} y={HEIGHT - 4} textAnchor={ago === 0 ? 'end' : ago === spanMs ? 'start' : 'middle'} className="axis">
            {ago === 0 ? 'now' : ago % 60_000 === 0 ? `-${ago / 60_000}m` : `-${ago / 1000}s`}
          </text>
        ))}
        {series.map((s) =>
          s.points.length > 1 ? (
            <polyline
              key={s.name}
              fill="none"
              stroke={s.colour}
              strokeWidth={2}
              strokeLinejoin="round"
              points={s.points.map((p) => `${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ')}
            />
          ) : null,
        )}
      </svg>
    </figure>
  )
}
