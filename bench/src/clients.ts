/**
 * The client process of the bench: many raw `ws` connections, each speaking its contender's wire
 * protocol directly (no client library, so the client side stays cheap and the same for everyone):
 *
 * - 'rt' (baseline-ws and @app/realtime): `subscribe` → `subscribed`, then `patch` frames;
 *   on reconnect, `subscribe` with `since: {epoch, offset}` of the last patch.
 * - 'sio' (Socket.IO 4): Engine.IO v4 over WebSocket (`0` open, `2`/`3` ping/pong) and Socket.IO
 *   packets (`40` connect, `42` event, `43` ack); on reconnect, `40{"pid","offset"}` (connection
 *   state recovery).
 *
 * Sockets are `wire.ts`' minimal RFC 6455 client by default (`--client ws` uses the `ws` library).
 * The hot path reads the sequence number `"s":` and publish time `"t":` from the raw bytes, with
 * no JSON parse and no string, and records the latency in a fixed histogram.
 */
import WebSocket from 'ws'
import { Histogram } from './histogram.js'
import { connectWire } from './wire.js'
import { nowUs, openFilesLimit, serve, sleep } from './ipc.js'

type Proto = 'rt' | 'sio'

/** What the client needs of a socket, from either implementation. */
interface Sock {
  send(text: string): void
  close(): void
  terminate(): void
  readonly open: boolean
}

interface Conn {
  topic: string
  ws: Sock | undefined
  closedAt: Promise<void> | undefined
  lastSeq: number
  received: number
  subscribed: boolean
  recovered: boolean | undefined
  epoch: string
  offset: string
  // Socket.IO session
  sid: string
  pid: string
  onReady: (() => void) | undefined
  onFail: ((e: Error) => void) | undefined
  doneAt: number
}

const S_KEY = Buffer.from('"s":')
const T_KEY = Buffer.from('"t":')
const OFFSET_KEY = Buffer.from('"offset":"')
const EPOCH_KEY = Buffer.from('"epoch":"')

const hist = new Histogram()
let conns: Conn[] = []
let proto: Proto = 'rt'
let url = ''
let impl: 'wire' | 'ws' = 'wire'
/** Parse positions (offsets) in the hot path: the recovery scenario only. */
let track = false
let delivered = 0
let dupes = 0
let firstRecv = 0
let lastRecv = 0
let unexpectedCloses = 0
let errorsSeen = 0
let cpuMark = process.cpuUsage()
let wallMark = nowUs()
/** Recovery: messages each connection must receive before it counts as done. */
let recoverTarget = 0
let recoverDone = 0
let recoverResolve: (() => void) | undefined

function readInt(buf: Buffer, i: number): number {
  let v = 0
  for (let c = buf[i]!; c >= 48 && c <= 57; c = buf[++i]!) v = v * 10 + (c - 48)
  return v
}

function readString(buf: Buffer, key: Buffer, from: number): string | undefined {
  const i = buf.indexOf(key, from)
  if (i < 0) return undefined
  const start = i + key.length
  return buf.toString('latin1', start, buf.indexOf(34, start))
}

function onData(c: Conn, data: Buffer): void {
  const i = data.indexOf(S_KEY)
  if (i < 0) return control(c, data)
  const now = nowUs()
  const s = readInt(data, i + 4)
  const t = readInt(data, data.indexOf(T_KEY, i) + 4)
  hist.record(now - t)
  if (delivered === 0) firstRecv = now
  lastRecv = now
  delivered++
  c.received++
  if (s <= c.lastSeq) dupes++
  c.lastSeq = s
  if (track) {
    if (proto === 'rt') {
      c.offset = readString(data, OFFSET_KEY, i) ?? c.offset
      c.epoch = readString(data, EPOCH_KEY, i) ?? c.epoch
    } else {
      // 42["patch",{...},"<offset>"]: the last string of the array.
      const end = data.length - 2
      const start = data.lastIndexOf(34, end - 1) + 1
      c.offset = data.toString('latin1', start, end)
    }
    if (recoverTarget && c.received === recoverTarget) finishRecovery(c)
  }
}

function finishRecovery(c: Conn) {
  if (c.doneAt) return
  c.doneAt = nowUs()
  if (++recoverDone === conns.length) recoverResolve?.()
}

function control(c: Conn, data: Buffer): void {
  const text = data.toString()
  if (proto === 'rt') {
    let f: any
    try {
      f = JSON.parse(text)
    } catch {
      return
    }
    if (f.type === 'subscribed') {
      c.subscribed = true
      c.recovered = f.recovered
      if (!c.epoch) {
        c.epoch = f.epoch
        c.offset = f.offset
      }
      c.onReady?.()
      if (recoverTarget && f.recovered === false) finishRecovery(c)
    } else if (f.type === 'error') {
      errorsSeen++
      c.onFail?.(new Error(`${f.code}: ${f.message}`))
    }
    return
  }
  // Engine.IO / Socket.IO
  switch (text[0]) {
    case '2':
      c.ws!.send('3')
      return
    case '0': {
      const open = JSON.parse(text.slice(1))
      void open
      c.ws!.send(c.pid ? `40${JSON.stringify({ pid: c.pid, offset: c.offset })}` : '40')
      return
    }
    case '4': {
      const type = text[1]
      if (type === '0') {
        const ack = JSON.parse(text.slice(2))
        const resumed = Boolean(c.pid) && ack.sid === c.sid
        if (c.pid) c.recovered = resumed
        c.sid = ack.sid
        if (ack.pid) c.pid = ack.pid
        if (resumed) {
          // Rooms and missed packets come back with the session: nothing to send.
          c.subscribed = true
          c.onReady?.()
        } else {
          c.ws!.send(`420${JSON.stringify(['subscribe', c.topic])}`)
          if (recoverTarget) finishRecovery(c)
        }
      } else if (type === '3') {
        c.subscribed = true
        c.onReady?.()
      } else if (type === '4' || type === '1') {
        errorsSeen++
        c.onFail?.(new Error(`socket.io: ${text}`))
      }
      return
    }
    default:
      return
  }
}

function open(c: Conn): Promise<void> {
  return new Promise((resolve, reject) => {
    const target = new URL(proto === 'rt' ? url : `${url}?EIO=4&transport=websocket`)
    c.subscribed = false
    const timer = setTimeout(() => fail(new Error('connect/subscribe timeout')), 30_000)
    const fail = (e: Error) => {
      clearTimeout(timer)
      c.onReady = c.onFail = undefined
      reject(e)
    }
    c.onReady = () => {
      clearTimeout(timer)
      c.onReady = c.onFail = undefined
      resolve()
    }
    c.onFail = fail
    let markClosed!: () => void
    c.closedAt = new Promise((r) => (markClosed = r))
    const onOpen = () => {
      if (proto !== 'rt') return
      const sub: any = { type: 'subscribe', id: 1, topic: c.topic }
      if (c.epoch && c.offset) sub.since = { epoch: c.epoch, offset: c.offset }
      sock.send(JSON.stringify(sub))
    }
    const onClose = () => {
      if (c.ws === sock && !closing) unexpectedCloses++
      markClosed()
      fail(new Error('closed'))
    }
    let sock: Sock
    if (impl === 'wire') {
      sock = connectWire(Number(target.port), target.pathname + target.search, {
        onOpen,
        onText: (data) => onData(c, data),
        onClose,
        onError: (e) => fail(e),
      })
    } else {
      const ws = new WebSocket(target.href, { perMessageDeflate: false })
      sock = {
        send: (t) => ws.send(t),
        close: () => ws.close(),
        terminate: () => ws.terminate(),
        get open() {
          return ws.readyState === WebSocket.OPEN
        },
      }
      ws.on('open', onOpen)
      ws.on('message', (data: Buffer) => onData(c, data))
      ws.on('error', (e) => fail(e))
      ws.on('close', onClose)
    }
    c.ws = sock
  })
}

let closing = false

async function openAll(list: Conn[], concurrency: number): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < list.length) await open(list[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker))
}

function newConn(topic: string): Conn {
  return {
    topic,
    ws: undefined,
    closedAt: undefined,
    lastSeq: -1,
    received: 0,
    subscribed: false,
    recovered: undefined,
    epoch: '',
    offset: '',
    sid: '',
    pid: '',
    onReady: undefined,
    onFail: undefined,
    doneAt: 0,
  }
}

function resetCounters() {
  hist.reset()
  delivered = dupes = firstRecv = lastRecv = 0
  for (const c of conns) c.received = 0
  cpuMark = process.cpuUsage()
  wallMark = nowUs()
}

function report() {
  const cpu = process.cpuUsage(cpuMark)
  const wall = nowUs() - wallMark
  return {
    delivered,
    dupes,
    firstRecv,
    lastRecv,
    latency: hist.summary(),
    clientCpuUs: cpu.user + cpu.system,
    clientSysUs: cpu.system,
    clientWallUs: wall,
    unexpectedCloses,
    errorsSeen,
    open: conns.filter((c) => c.ws?.open).length,
  }
}

serve(
  {
    /** Opens `groups` of connections, each connection subscribed to one topic ('{i}' is `from` + its index in the group). */
    async connect(m: { url: string; proto: Proto; impl?: 'wire' | 'ws'; groups: { n: number; topic: string; from?: number }[]; track?: boolean; concurrency?: number }) {
      url = m.url
      impl = m.impl ?? 'wire'
      proto = m.proto
      track = Boolean(m.track)
      const list: Conn[] = []
      for (const g of m.groups) for (let i = 0; i < g.n; i++) list.push(newConn(g.topic.replace('{i}', String((g.from ?? 0) + i))))
      const limit = openFilesLimit()
      if (conns.length + list.length + 64 > limit) {
        throw new Error(`${conns.length + list.length} sockets in one client process, which may open ${limit} files: use more client processes`)
      }
      conns.push(...list)
      const t0 = nowUs()
      await openAll(list, m.concurrency ?? 100)
      return { connected: list.length, ms: (nowUs() - t0) / 1000 }
    },
    reset() {
      resetCounters()
      return true
    },
    /** Waits until `expected` deliveries, or `idleMs` without one, or `timeoutMs`. */
    async await(m: { expected: number; idleMs: number; timeoutMs: number }) {
      const start = Date.now()
      let lastCount = -1
      let lastChange = Date.now()
      while (delivered < m.expected && Date.now() - start < m.timeoutMs) {
        if (delivered !== lastCount) {
          lastCount = delivered
          lastChange = Date.now()
        } else if (Date.now() - lastChange > m.idleMs) break
        await sleep(5)
      }
      return { ...report(), timedOut: delivered < m.expected }
    },
    /** Closes every connection (the client keeps each one's position). */
    async disconnectAll() {
      closing = true
      for (const c of conns) c.ws?.close()
      await Promise.all(conns.map((c) => c.closedAt))
      closing = false
      return true
    },
    /** Reconnects every connection at once with its position; done when each has all `missed` messages or was told to resync. */
    async reconnectAll(m: { missed: number; timeoutMs: number }) {
      resetCounters()
      recoverTarget = m.missed
      recoverDone = 0
      for (const c of conns) c.doneAt = 0
      const t0 = nowUs()
      const all = new Promise<void>((r) => (recoverResolve = r))
      const opened = openAll(conns, conns.length).catch((e) => e)
      const timedOut = await Promise.race([all.then(() => false), sleep(m.timeoutMs).then(() => true)])
      const tEnd = nowUs()
      await opened
      recoverTarget = 0
      const rep = report()
      return {
        ...rep,
        timedOut,
        ms: (tEnd - t0) / 1000,
        recovered: conns.filter((c) => c.recovered === true && c.received >= m.missed).length,
        resynced: conns.filter((c) => c.recovered === false).length,
        lost: conns.reduce((n, c) => n + Math.max(0, m.missed - c.received), 0),
      }
    },
  },
  async () => {
    closing = true
    for (const c of conns) c.ws?.terminate()
  },
)
process.send!({ type: 'ready' })
