import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { ServerFrame } from '../src/protocol.js'
import { DEFAULT_LIMITS } from '../src/server/index.js'
import type { Logger } from '../src/server/index.js'
import { RawClient, startServer, waitFor, type TestServer } from './utils/server.js'

/**
 * Property-based fuzzing of the server over real WebSockets. Every generated frame must get the
 * reply the protocol specifies (a reply frame, or an `error` frame with the specified code and the
 * frame's id), or a documented close; the server must never throw, never log an error, and never
 * disturb another connection: a good client on the same server receives every patch throughout.
 *
 * The expected reply is computed by `expectedOutcome`, written from the protocol (docs/PROTOCOL.md),
 * not from the parser: the two agreeing on every input is the property.
 */

/** The fuzzed server's frame size limit: small, so that oversized frames are cheap to generate. */
const MAX_PAYLOAD = 8 * 1024
const MIN_FRAMES = 10_000
const LIVE_TOPIC = 'fuzz:live'
const TOPIC = /^[A-Za-z0-9_\-:.@]{1,200}$/
/** Error codes that spend the connection's bad-frame budget (past it: close 4000). */
const ABUSIVE = new Set(['BAD_REQUEST', 'UNKNOWN_TYPE', 'INVALID_TOPIC', 'RATE_LIMITED', 'UNSUPPORTED_VERSION'])

type Input = { text: string } | { binary: Uint8Array } | { bytes: Uint8Array }
type Expected = { close: number } | { type: string; code?: string; id?: unknown; authenticates?: boolean }

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
function acceptedCredentials(auth: unknown): boolean {
  return auth === 'token' || (isRecord(auth) && auth.token === 'token')
}
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** What the protocol says the server answers to one frame, given whether hello was accepted. */
function expectedOutcome(input: Input, authenticated: boolean): Expected {
  if ('binary' in input) return { type: 'error', code: 'BAD_REQUEST' }
  let text: string
  if ('bytes' in input) {
    if (input.bytes.length > MAX_PAYLOAD) return { close: 1009 }
    try {
      text = utf8.decode(input.bytes)
    } catch {
      return { close: 1007 }
    }
  } else {
    // What travels is UTF-8: a lone surrogate arrives as U+FFFD.
    const bytes = Buffer.from(input.text)
    if (bytes.length > MAX_PAYLOAD) return { close: 1009 }
    text = bytes.toString('utf8')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { type: 'error', code: 'BAD_REQUEST' }
  }
  if (!isRecord(value)) return { type: 'error', code: 'BAD_REQUEST' }
  const { id } = value
  const validId = id === undefined || (typeof id === 'number' && Number.isSafeInteger(id)) || (typeof id === 'string' && id.length <= 64)
  if (!validId) return { type: 'error', code: 'BAD_REQUEST' }
  const error = (code: string): Expected => ({ type: 'error', code, id })
  if (typeof value.type !== 'string') return error('BAD_REQUEST')
  switch (value.type) {
    case 'hello':
      if (value.v === undefined) return error('BAD_REQUEST')
      if (value.v !== 1) return error('UNSUPPORTED_VERSION')
      if (authenticated) return error('BAD_REQUEST')
      return acceptedCredentials(value.auth) ? { type: 'welcome', authenticates: true } : { close: 4001 }
    case 'auth':
      if (!authenticated) return error('UNAUTHORIZED')
      return acceptedCredentials(value.auth) ? { type: 'authenticated', id } : error('UNAUTHORIZED')
    case 'subscribe':
    case 'unsubscribe': {
      const { topic, since } = value
      if (topic === undefined) return error('BAD_REQUEST')
      if (typeof topic !== 'string' || !TOPIC.test(topic)) return error('INVALID_TOPIC')
      if (value.type === 'subscribe' && since !== undefined && since !== null) {
        const position =
          isRecord(since) &&
          typeof since.epoch === 'string' &&
          since.epoch.length <= 100 &&
          typeof since.offset === 'string' &&
          since.offset.length <= 100
        if (!position) return error('BAD_REQUEST')
      }
      if (!authenticated) return error('UNAUTHORIZED')
      if (value.type === 'unsubscribe') return { type: 'unsubscribed', id }
      return topic.startsWith('secret') ? error('FORBIDDEN') : { type: 'subscribed', id }
    }
    case 'ping':
      return { type: 'pong', id }
    default:
      return error('UNKNOWN_TYPE')
  }
}

// ---- generators --------------------------------------------------------------------------------

const topicArb = fc.oneof(
  fc.constantFrom(LIVE_TOPIC, 'user:1', 'profile', 'secret:admin', 'a'),
  fc.stringMatching(/^[A-Za-z0-9_\-:.@]{1,24}$/),
)
const idArb = fc.oneof(fc.integer(), fc.string({ maxLength: 12 }))
const authArb = fc.constantFrom<unknown>('token', { token: 'token' }, 'expired', null, 42)
const positionArb = fc.record({ epoch: fc.string({ maxLength: 12 }), offset: fc.oneof(fc.nat().map(String), fc.string({ maxLength: 6 })) })

/** Well-formed frames of every client type (some with refused credentials or forbidden topics). */
const validFrameArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ type: fc.constant('hello'), v: fc.constant(1), id: idArb, auth: authArb }, { requiredKeys: ['type', 'v'] }),
  fc.record({ type: fc.constant('auth'), id: idArb, auth: authArb }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('subscribe'), id: idArb, topic: topicArb, since: positionArb }, { requiredKeys: ['type', 'topic'] }),
  fc.record({ type: fc.constant('unsubscribe'), id: idArb, topic: topicArb }, { requiredKeys: ['type', 'topic'] }),
  fc.record({ type: fc.constant('ping'), id: idArb }, { requiredKeys: ['type'] }),
)

/** A valid frame with exactly one thing wrong (or, now and then, nothing wrong). */
const nearValidArb: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    validFrameArb,
    fc.constantFrom('delete', 'set', 'add', 'type', 'topic', 'id', 'since'),
    fc.nat(),
    fc.jsonValue({ maxDepth: 2 }),
    fc.string({ maxLength: 12 }),
  )
  .map(([frame, mutation, pick, json, text]) => {
    const copy: Record<string, unknown> = { ...frame }
    const keys = Object.keys(copy)
    const key = keys[pick % keys.length]!
    switch (mutation) {
      case 'delete':
        delete copy[key]
        break
      case 'set':
        copy[key] = json
        break
      case 'add':
        copy[text || 'extra'] = json
        break
      case 'type':
        copy.type = [text, 'publish', '__proto__', 'Subscribe', 'subscribe ', 'constructor'][pick % 6]
        break
      case 'topic':
        copy.topic = [`${text}/../x`, 'a b', '', 'x'.repeat(201), `user:${text}\n`, 'ü', `${text}\u0000`][pick % 7]
        break
      case 'id':
        copy.id = [1.5, 2 ** 60, 'i'.repeat(65), { n: 1 }, [1], true, null, -0][pick % 8]
        break
      case 'since':
        copy.since = [json, { epoch: text }, { epoch: 1, offset: '1' }, { epoch: 'e', offset: 'o'.repeat(101) }][pick % 4]
        break
    }
    return copy
  })

const jsonFrame = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Input> => arb.map((value) => ({ text: JSON.stringify(value) }))

const stringsArb: fc.Arbitrary<Input> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 120 }),
  fc.string({ unit: 'binary-ascii', maxLength: 120 }),
  fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), maxLength: 8 }),
  fc.constantFrom('', ' ', '{', '}', '[]', 'null', '"', '{"type":', '{"type":"ping"', '\u0000'),
).map((text) => ({ text }))

const jsonArb: fc.Arbitrary<Input> = fc.oneof(
  fc.json({ maxDepth: 4 }).map((text) => ({ text })),
  jsonFrame(
    fc
      .tuple(fc.constantFrom('hello', 'auth', 'subscribe', 'unsubscribe', 'ping', 'publish'), fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }))
      .map(([type, rest]) => ({ ...rest, type })),
  ),
)

const nearValidInputArb: fc.Arbitrary<Input> = fc.oneof({ weight: 8, arbitrary: jsonFrame(nearValidArb) }, { weight: 2, arbitrary: jsonFrame(validFrameArb) })

/** Rare inputs that end the connection: invalid UTF-8, oversized frames; and binary frames. */
const transportArb: fc.Arbitrary<Input> = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 64 }).map((binary) => ({ binary })) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 32 }).map((bytes) => ({ bytes })) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_PAYLOAD - 40, max: MAX_PAYLOAD + 200 }).map((size) => ({ text: `{"type":"ping","pad":"${'x'.repeat(size - 22)}"}` })) },
)

// ---- the fuzzed connection ---------------------------------------------------------------------

type Outcome = { frame: ServerFrame } | { close: number }

/** One hostile connection: sends a frame, then waits for its reply (patches aside) or the close. */
class FuzzConnection {
  private readonly replies: ServerFrame[] = []
  private closeCode: number | undefined
  private wake: (() => void) | undefined

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as ServerFrame
      if (frame.type === 'patch') return
      this.replies.push(frame)
      this.wake?.()
    })
    socket.on('close', (code) => {
      this.closeCode = code
      this.wake?.()
    })
    socket.on('error', () => {})
  }

  static open(url: string): Promise<FuzzConnection> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url)
      socket.once('open', () => resolve(new FuzzConnection(socket)))
      socket.once('error', reject)
    })
  }

  send(input: Input): void {
    if ('binary' in input) this.socket.send(input.binary, { binary: true })
    else if ('bytes' in input) this.socket.send(input.bytes, { binary: false })
    else this.socket.send(input.text)
  }

  async next(timeoutMs = 5000): Promise<Outcome> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const frame = this.replies.shift()
      if (frame) return { frame }
      if (this.closeCode !== undefined) return { close: this.closeCode }
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('no reply and no close in time')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.wake = undefined
    }
  }

  close(): void {
    this.socket.terminate()
  }
}

// ---- the server under fuzz ---------------------------------------------------------------------

let server: TestServer
let good: RawClient
const goodPatches: number[] = []
let published = 0
let publisher: ReturnType<typeof setInterval> | undefined
const serverErrors: unknown[] = []
const processErrors: unknown[] = []
const onProcessError = (error: unknown) => processErrors.push(error)
let framesAnswered = 0
const closesSeen: Record<number, number> = {}

const logger: Logger = {
  info() {},
  warn() {},
  error(obj, msg) {
    serverErrors.push([msg, obj])
  },
}

beforeAll(async () => {
  process.on('uncaughtException', onProcessError)
  process.on('unhandledRejection', onProcessError)
  server = await startServer({
    authenticate: (_request, auth) => {
      if (!acceptedCredentials(auth)) throw new Error('bad credentials')
      return { id: 'fuzz' }
    },
    authorize: (_principal, topic) => !topic.startsWith('secret'),
    limits: { maxPayloadBytes: MAX_PAYLOAD },
    logger,
  })
  good = await RawClient.connect(server.url)
  good.send({ type: 'hello', v: 1, auth: 'token' })
  await good.nextOf('welcome')
  await good.request({ type: 'subscribe', id: 1, topic: LIVE_TOPIC })
  good.socket.on('message', (data) => {
    const frame = JSON.parse(data.toString())
    if (frame.type === 'patch') goodPatches.push(frame.payload.n)
  })
  // Patches flow to the good client (and to fuzzed clients that subscribe) all through the run.
  publisher = setInterval(() => {
    void server.realtime.publishTopic(LIVE_TOPIC, { n: published++ })
  }, 2)
})

afterAll(async () => {
  if (publisher) clearInterval(publisher)
  good?.close()
  await server?.close()
  process.off('uncaughtException', onProcessError)
  process.off('unhandledRejection', onProcessError)
})

/**
 * Runs one generated session: hello (or not), then each frame in turn, checking each outcome
 * against the protocol. Returns when the frames are used up or the server closed the connection.
 */
async function session(inputs: Input[], helloFirst: boolean): Promise<void> {
  const connection = await FuzzConnection.open(server.url)
  try {
    let authenticated = false
    if (helloFirst) {
      connection.send({ text: JSON.stringify({ type: 'hello', v: 1, auth: 'token' }) })
      const welcome = await connection.next()
      expect(welcome).toMatchObject({ frame: { type: 'welcome' } })
      authenticated = true
    }
    let abusive = 0
    for (const input of inputs) {
      const expected = expectedOutcome(input, authenticated)
      connection.send(input)
      const outcome = await connection.next()
      const context = `input ${JSON.stringify('text' in input ? input.text.slice(0, 300) : [...('binary' in input ? input.binary : input.bytes)])}`
      if ('close' in outcome) {
        closesSeen[outcome.close] = (closesSeen[outcome.close] ?? 0) + 1
        // A close is documented and deserved: the connection spent its bad-frame budget (the
        // last error frame is followed by the close, which may cross this frame), or the frame
        // itself calls for it.
        if (outcome.close === 4000 && abusive > DEFAULT_LIMITS.maxBadFrames) {
          // deserved
        } else if ('close' in expected) expect(outcome.close, context).toBe(expected.close)
        else expect.fail(`${context}: closed ${outcome.close} after ${abusive} bad frames`)
        framesAnswered++
        return
      }
      expect('close' in expected ? `close ${expected.close}` : 'a frame', context).toBe('a frame')
      const want = expected as Exclude<Expected, { close: number }>
      const frame = outcome.frame as ServerFrame & { code?: string; id?: unknown }
      expect(frame.type, context).toBe(want.type)
      if (want.code) expect(frame.code, context).toBe(want.code)
      // The reply carries the frame's id when it had a valid one (welcome never has one).
      if (want.type !== 'welcome') expect(frame.id === want.id, `${context}: id ${String(frame.id)} vs ${String(want.id)}`).toBe(true)
      if (want.authenticates) authenticated = true
      if (frame.type === 'error' && ABUSIVE.has(frame.code!)) abusive++
      framesAnswered++
    }
  } finally {
    connection.close()
  }
}

const runs = (inputs: fc.Arbitrary<Input>, numRuns: number) =>
  fc.assert(
    fc.asyncProperty(fc.array(inputs, { minLength: 10, maxLength: 30 }), fc.boolean(), fc.boolean(), async (frames, helloFirst, helloDefault) => {
      await session(frames, helloFirst || helloDefault)
    }),
    { numRuns, endOnFailure: false, interruptAfterTimeLimit: 40_000 },
  )

describe('fuzzing the server over WebSockets', () => {
  it('answers arbitrary strings with an error frame or a documented close', async () => {
    await runs(stringsArb, 150)
  })

  it('answers arbitrary JSON as the protocol says', async () => {
    await runs(jsonArb, 150)
  })

  it('answers near-valid frames (one field mutated) as the protocol says', async () => {
    await runs(nearValidInputArb, 250)
  })

  it('answers a mix with binary, invalid UTF-8 and oversized frames, closing with 1007 and 1009', async () => {
    await runs(fc.oneof({ weight: 6, arbitrary: nearValidInputArb }, { weight: 2, arbitrary: jsonArb }, { weight: 2, arbitrary: stringsArb }, { weight: 1, arbitrary: transportArb }), 150)
  })

  it(`sent at least ${MIN_FRAMES} frames, and nothing else was disturbed`, async () => {
    console.log(`fuzz: ${framesAnswered} frames answered; closes seen ${JSON.stringify(closesSeen)}; ${published} patches published; server stats ${JSON.stringify({ errors: server.realtime.stats().errors, closes: server.realtime.stats().closes })}`)
    expect(framesAnswered).toBeGreaterThanOrEqual(MIN_FRAMES)
    clearInterval(publisher)
    publisher = undefined
    await waitFor(() => goodPatches.length === published, 10_000, 'the good client to receive every patch')
    expect(goodPatches).toEqual(Array.from({ length: published }, (_, i) => i))
    expect(good.closeCode).toBeUndefined()
    expect(good.frames.filter((f) => f.type !== 'patch')).toEqual([])
    expect(serverErrors).toEqual([])
    expect(processErrors).toEqual([])
    // The server counted the closes the WebSocket layer made for it.
    expect(server.realtime.stats().closes['1009']).toBe(closesSeen[1009])
    expect(server.realtime.stats().closes['1007']).toBe(closesSeen[1007])
    // Every fuzzed connection is gone; nothing is left subscribed but the good client.
    await waitFor(() => server.realtime.stats().connections === 1, 5000, 'fuzzed connections to be cleaned up')
    expect(server.realtime.stats()).toMatchObject({ connections: 1, subscriptions: 1, topics: 1 })
  })
})
