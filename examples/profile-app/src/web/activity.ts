/**
 * The admin activity data: the latest `$stats` sample of every instance, their sum, and a short
 * history of the sum for the charts. Each instance publishes its own sample once a second; an
 * instance that has not published for `STALE_MS` is left out (stopped, or cut off from the bus).
 */
import { useEffect, useRef, useState } from 'react'
import type { ActivitySample, Refusal } from '../shared/topics.js'
import { useAppTopic } from './realtime.js'

/** A sample older than this (by the page's clock at arrival) no longer counts. */
export const STALE_MS = 5000
/** One chart point per second, for this long. */
export const HISTORY_MS = 5 * 60_000

/** The sum over instances. */
export interface ActivityTotals {
  instances: number
  connections: number
  subscriptions: number
  framesInPerSec: number
  framesOutPerSec: number
  publishedPerSec: number
  deliveredPerSec: number
  published: number
  delivered: number
  slowConsumers: number
  refusals: number
  busDown: number
  /** The worst instance's estimate. */
  publishToSendP99Ms: number | null
}

export interface ActivityPoint {
  at: number
  connections: number
  framesOutPerSec: number
  publishedPerSec: number
}

export interface ActivityView {
  instances: ActivitySample[]
  totals: ActivityTotals
  history: ActivityPoint[]
  busiestTopics: { topic: string; subscribers: number; delivered: number }[]
  refusals: (Refusal & { instanceId: string })[]
}

const sum = (record: Record<string, number>) => Object.values(record).reduce((a, b) => a + b, 0)

/** Sums the samples of every instance. */
export function aggregate(samples: ActivitySample[]): Omit<ActivityView, 'history'> {
  const totals: ActivityTotals = {
    instances: samples.length,
    connections: 0,
    subscriptions: 0,
    framesInPerSec: 0,
    framesOutPerSec: 0,
    publishedPerSec: 0,
    deliveredPerSec: 0,
    published: 0,
    delivered: 0,
    slowConsumers: 0,
    refusals: 0,
    busDown: 0,
    publishToSendP99Ms: null,
  }
  const topics = new Map<string, { topic: string; subscribers: number; delivered: number }>()
  const refusals: (Refusal & { instanceId: string })[] = []
  for (const s of samples) {
    totals.connections += s.connections
    totals.subscriptions += s.subscriptions
    totals.framesInPerSec += s.rates.framesInPerSec
    totals.framesOutPerSec += s.rates.framesOutPerSec
    totals.publishedPerSec += s.rates.publishedPerSec
    totals.deliveredPerSec += s.rates.deliveredPerSec
    totals.published += s.totals.published
    totals.delivered += s.totals.delivered
    totals.slowConsumers += s.drops.slow_consumer ?? 0
    totals.refusals += sum(s.refused)
    if (s.busStatus !== 'up') totals.busDown++
    const p99 = s.latencyMs.publishToSendP99
    if (p99 !== null) totals.publishToSendP99Ms = Math.max(totals.publishToSendP99Ms ?? 0, p99)
    for (const t of s.busiestTopics) {
      const entry = topics.get(t.topic) ?? { topic: t.topic, subscribers: 0, delivered: 0 }
      entry.subscribers += t.subscribers
      entry.delivered += t.delivered
      topics.set(t.topic, entry)
    }
    for (const r of s.recentRefusals) refusals.push({ ...r, instanceId: s.instanceId })
  }
  return {
    instances: [...samples].sort((a, b) => a.instanceId.localeCompare(b.instanceId)),
    totals,
    busiestTopics: [...topics.values()]
      .sort((a, b) => b.subscribers - a.subscribers || b.delivered - a.delivered)
      .slice(0, 10),
    refusals: refusals.sort((a, b) => b.at - a.at).slice(0, 15),
  }
}

/**
 * Subscribes to `$stats` (admins only) and keeps the aggregated view: recomputed on every sample,
 * with one history point per second.
 */
export function useActivity(): ActivityView & { status: string } {
  const latest = useRef(new Map<string, { sample: ActivitySample; receivedAt: number }>())
  const [view, setView] = useState<ActivityView>(() => ({ ...aggregate([]), history: [] }))

  const current = () => {
    const now = Date.now()
    const fresh: ActivitySample[] = []
    for (const [id, entry] of latest.current) {
      if (now - entry.receivedAt > STALE_MS) latest.current.delete(id)
      else fresh.push(entry.sample)
    }
    return aggregate(fresh)
  }

  const { status } = useAppTopic('$stats', (message) => {
    latest.current.set(message.payload.instanceId, { sample: message.payload, receivedAt: Date.now() })
    setView((prev) => ({ ...current(), history: prev.history }))
  })

  useEffect(() => {
    const timer = setInterval(() => {
      const next = current()
      const now = Date.now()
      const point: ActivityPoint = {
        at: now,
        connections: next.totals.connections,
        framesOutPerSec: next.totals.framesOutPerSec,
        publishedPerSec: next.totals.publishedPerSec,
      }
      setView((prev) => ({ ...next, history: [...prev.history.filter((p) => now - p.at <= HISTORY_MS), point] }))
    }, 1000)
    return () => clearInterval(timer)
  }, [])

  return { ...view, status }
}
