/**
 * The publisher flow control's bookkeeping (`PublishFlow`), driven by hand: probes answered or
 * not, receivers that go silent, leave, and come back. The same logic over real Redis and
 * processes is in flow-control.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { PublishFlow } from '../src/redis/flow.js'

interface Sent {
  seq: number
  receivers: (n: number) => void
}

function flow(options: Partial<{ targetLagMs: number; maxWindow: number; timeoutMs: number }> = {}) {
  const sent: Sent[] = []
  const f = new PublishFlow({ targetLagMs: 100, maxWindow: 16_384, timeoutMs: 500, ...options }, (seq) =>
    new Promise<number>((resolve) => sent.push({ seq, receivers: resolve })),
  )
  f.setArmed(true)
  return { f, sent }
}

/** Admits and starts publishes until one has to wait; returns how many went through. */
function fill(f: PublishFlow): { admitted: number; waiting: Promise<void> } {
  for (let admitted = 0; ; admitted++) {
    const wait = f.admit()
    if (wait) return { admitted, waiting: wait }
    f.started()
  }
}

/**
 * Two receivers, a and b, answer probe 1; then b hangs: a answers probes 2-4, b does not, and
 * 500 ms pass. Probe 2 times out, which silences b, and that completes probes 3 and 4 on a's answers.
 */
async function withBHung() {
  const { f, sent } = flow({ timeoutMs: 500 })
  fill(f)
  for (const s of sent) s.receivers(2)
  await Promise.resolve()
  f.ack(1, 'a')
  f.ack(1, 'b')
  for (const seq of [2, 3, 4]) f.ack(seq, 'a')
  vi.advanceTimersByTime(500)
  return { f, sent }
}

/** Publishes until the window is full again; the first probe that sent reached `receivers`. */
async function nextProbe(f: PublishFlow, sent: Sent[], receivers: number): Promise<Sent> {
  const before = sent.length
  fill(f)
  const next = sent[before] ?? sent[sent.length - 1]!
  next.receivers(receivers)
  await Promise.resolve()
  return next
}

const settled = async (p: Promise<unknown>) => {
  let done = false
  void p.then(() => (done = true))
  await Promise.resolve()
  await Promise.resolve()
  return done
}

describe('PublishFlow', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('lets a window of publishes through, then holds the next until every receiver answered', async () => {
    const { f, sent } = flow()
    const { admitted, waiting } = fill(f)
    expect(admitted).toBe(32)
    // A probe every quarter window.
    expect(sent.map((s) => s.seq)).toEqual([1, 2, 3, 4])
    for (const s of sent) s.receivers(2)
    await Promise.resolve()
    f.ack(1, 'a')
    expect(await settled(waiting)).toBe(false)
    f.ack(1, 'b')
    expect(await settled(waiting)).toBe(true)
    expect(f.state()).toMatchObject({ waiting: 0, probes: { completed: 1, timedOut: 0 } })
  })

  it('shrinks the window when a probe comes back late and grows it while probes come back in time', async () => {
    const { f, sent } = flow({ targetLagMs: 100 })
    fill(f)
    for (const s of sent) s.receivers(1)
    await Promise.resolve()
    vi.advanceTimersByTime(400)
    f.ack(1, 'a')
    // 400 ms against a 100 ms target: a quarter of the window.
    expect(f.state().window).toBe(8)
    // Probes sent before the decrease measured the same backlog: no second decrease for it.
    for (const seq of [2, 3, 4]) f.ack(seq, 'a')
    expect(f.state().window).toBe(8)
    // Probes sent now and answered at once: the window grows again.
    const before = sent.length
    fill(f)
    for (const s of sent.slice(before)) {
      s.receivers(1)
      await Promise.resolve()
      f.ack(s.seq, 'a')
    }
    expect(f.state().window).toBeGreaterThan(8)
  })

  it('stops waiting for an instance that let a probe time out, until it answers again', async () => {
    const { f, sent } = await withBHung()
    expect(f.state()).toMatchObject({ silent: 1, probes: { completed: 3, timedOut: 1 } })
    // New probes, still two receivers: a's answer is enough.
    let next = await nextProbe(f, sent, 2)
    f.ack(next.seq, 'a')
    expect(f.state().probes.completed).toBe(4)
    // b answers again: it is no longer silent, and the next probe waits for it.
    f.ack(next.seq, 'b')
    expect(f.state().silent).toBe(0)
    next = await nextProbe(f, sent, 2)
    f.ack(next.seq, 'a')
    const completed = f.state().probes.completed
    f.ack(next.seq, 'b')
    expect(f.state().probes.completed).toBe(completed + 1)
  })

  it('lets silence expire, so that an instance that left does not make probes wait for one too few', async () => {
    const { f, sent } = await withBHung()
    expect(f.state()).toMatchObject({ silent: 1, probes: { completed: 3 } })
    // b is gone for good (Redis now counts one receiver), and 30 s pass.
    vi.advanceTimersByTime(30_000)
    const next = await nextProbe(f, sent, 1)
    // Were b still counted silent, this probe to one receiver would be done with no answer at all.
    expect(f.state().silent).toBe(0)
    expect(f.state().probes.completed).toBe(3)
    f.ack(next.seq, 'a')
    expect(f.state().probes.completed).toBe(4)
  })

  it('lets every waiting publish go when disarmed, and rejects them when aborted', async () => {
    const { f } = flow()
    const { waiting } = fill(f)
    f.setArmed(false)
    expect(await settled(waiting)).toBe(true)
    f.setArmed(true)
    const second = fill(f).waiting
    f.abort(new Error('closed') as never)
    await expect(second).rejects.toThrow('closed')
  })
})
