import { useRealtimeClient } from '@app/realtime/react'
import { useEffect, useState } from 'react'
import { HISTORY_MS, useActivity } from './activity.js'
import { ConnectionBadge } from './ConnectionBadge.js'
import { LineChart } from './LineChart.js'

const rate = (value: number) => (value >= 100 ? value.toFixed(0) : value.toFixed(1))

function Counter(props: { label: string; value: string | number; testId: string }) {
  return (
    <div className="counter" data-testid={props.testId} data-value={props.value}>
      <span className="counter-value">{props.value}</span>
      <span className="hint">{props.label}</span>
    </div>
  )
}

/**
 * The realtime activity of every instance, live from the admin-only `$stats` topic: connections
 * and messages per second over the last minutes, the busiest topics and the last refusals.
 */
export function ActivityPage() {
  const client = useRealtimeClient()
  const { instances, totals, history, busiestTopics, refusals, status } = useActivity()
  const [forbidden, setForbidden] = useState<string | null>(null)
  const now = history.at(-1)?.at ?? Date.now()
  // The charts grow from one minute to HISTORY_MS as history accumulates.
  const spanMs = Math.min(HISTORY_MS, Math.max(60_000, Math.ceil((now - (history[0]?.at ?? now)) / 60_000) * 60_000))

  useEffect(
    () =>
      client.on('error', (error) => {
        if (error.topic === '$stats' && error.code === 'FORBIDDEN') setForbidden(`${error.code}: ${error.message}`)
      }),
    [client],
  )

  if (forbidden) {
    return (
      <section className="card">
        <h1>Realtime activity</h1>
        <p className="field-error" data-testid="forbidden">
          {forbidden}
        </p>
      </section>
    )
  }

  return (
    <div className="dashboard activity" data-testid="activity" data-status={status}>
      <section className="card">
        <header className="row spread">
          <h1>Realtime activity</h1>
          <span className="row">
            <a href="/admin">Dashboard</a>
            <ConnectionBadge />
          </span>
        </header>
        <div className="counters">
          <Counter label="instances" value={totals.instances} testId="total-instances" />
          <Counter label="connections" value={totals.connections} testId="total-connections" />
          <Counter label="subscriptions" value={totals.subscriptions} testId="total-subscriptions" />
          <Counter label="frames out/s" value={rate(totals.framesOutPerSec)} testId="total-frames-out-rate" />
          <Counter label="published/s" value={rate(totals.publishedPerSec)} testId="total-published-rate" />
          <Counter label="published" value={totals.published} testId="total-published" />
          <Counter label="slow consumers cut" value={totals.slowConsumers} testId="total-slow-consumers" />
          <Counter label="refusals" value={totals.refusals} testId="total-refusals" />
          <Counter
            label="publish→send p99"
            value={totals.publishToSendP99Ms === null ? '–' : `${totals.publishToSendP99Ms.toFixed(2)} ms`}
            testId="total-p99"
          />
        </div>
        {totals.busDown > 0 && <p className="field-error">The bus is down on {totals.busDown} instance(s).</p>}
      </section>

      <section className="card">
        <LineChart
          title="Connections"
          testId="chart-connections"
          now={now}
          spanMs={spanMs}
          series={[{ name: 'connections', colour: '#2481cc', points: history.map((p) => ({ at: p.at, value: p.connections })) }]}
        />
        <LineChart
          title="Messages per second"
          testId="chart-messages"
          now={now}
          spanMs={spanMs}
          series={[
            { name: 'frames out/s', colour: '#1f9d55', points: history.map((p) => ({ at: p.at, value: p.framesOutPerSec })) },
            { name: 'published/s', colour: '#c98a00', points: history.map((p) => ({ at: p.at, value: p.publishedPerSec })) },
          ]}
        />
      </section>

      <section className="card">
        <h2>Instances</h2>
        {instances.length === 0 && <p className="hint">Waiting for the first samples…</p>}
        <table className="users instances" data-testid="instances">
          <tbody>
            {instances.map((s) => (
              <tr key={s.instanceId} data-instance-id={s.instanceId} data-connections={s.connections}>
                <td>
                  <code>{s.instanceId}</code>
                </td>
                <td>{s.connections} conn.</td>
                <td>{s.subscriptions} subs.</td>
                <td>{rate(s.rates.framesOutPerSec)} frames out/s</td>
                <td className={s.busStatus === 'up' ? 'badge-connected' : 'badge-disconnected'}>bus {s.busStatus}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <section className="card">
        <h2>Busiest topics</h2>
        <table className="users" data-testid="busiest-topics">
          <tbody>
            {busiestTopics.map((t) => (
              <tr key={t.topic} data-topic={t.topic} data-subscribers={t.subscribers}>
                <td>
                  <code>{t.topic}</code>
                </td>
                <td>
                  {t.subscribers} subscriber{t.subscribers === 1 ? '' : 's'}
                </td>
                <td>{t.delivered} delivered</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <section className="card">
        <h2>Recent refusals</h2>
        {refusals.length === 0 && <p className="hint">None.</p>}
        <ol className="feed" data-testid="refusals">
          {refusals.map((r) => (
            <li key={`${r.instanceId}:${r.at}:${r.topic ?? ''}:${r.userId ?? ''}`} data-reason={r.reason} data-topic={r.topic ?? ''}>
              <span className="badge badge-disconnected">{r.reason}</span>
              <span>
                {r.topic ? <code>{r.topic}</code> : 'credentials'}
                {r.userId ? <span className="hint"> by #{r.userId}</span> : null}
              </span>
              <time className="hint">{new Date(r.at).toLocaleTimeString()}</time>
            </li>
          ))}
        </ol>
      </section>
    </div>
  )
}
