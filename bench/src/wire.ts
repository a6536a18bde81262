/**
 * A minimal RFC 6455 client over `net`, for the bench's client process: the upgrade request, then
 * unmasked server frames parsed in place (text, ping, close) and masked client frames (zero mask
 * key: valid, and it makes masking a copy). No streams, no event emitter per message: with 5,000
 * sockets in one process the client must stay far cheaper than the server it measures.
 */
import net from 'node:net'
import { randomBytes } from 'node:crypto'

export interface WireSocket {
  send(text: string): void
  /** Sends a close frame and ends the socket. */
  close(): void
  /** Destroys the socket at once. */
  terminate(): void
  readonly open: boolean
}

export interface WireHandlers {
  onOpen(): void
  onText(payload: Buffer): void
  onClose(): void
  onError(error: Error): void
}

const EMPTY = Buffer.alloc(0)
/**
 * One read buffer shared by every socket (`onread`): no Buffer per read and no Readable stream in
 * the way. Safe because a read is parsed before the next one, and a partial frame is copied out.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)

function frame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length
  const head = n < 126 ? 2 : n < 65_536 ? 4 : 10
  const out = Buffer.allocUnsafe(head + 4 + n)
  out[0] = 0x80 | opcode
  if (n < 126) out[1] = 0x80 | n
  else if (n < 65_536) {
    out[1] = 0x80 | 126
    out.writeUInt16BE(n, 2)
  } else {
    out[1] = 0x80 | 127
    out.writeBigUInt64BE(BigInt(n), 2)
  }
  out.writeUInt32BE(0, head) // mask key 0: payload XOR 0 = payload
  payload.copy(out, head + 4)
  return out
}

export function connectWire(port: number, path: string, h: WireHandlers): WireSocket {
  const sock = net.connect({
    port,
    host: '127.0.0.1',
    noDelay: true,
    onread: { buffer: READ_BUFFER, callback: (n: number, b: Buffer) => void onChunk(b.subarray(0, n)) },
  })
  let upgraded = false
  let open = false
  let buf: Buffer = EMPTY
  let fragments: Buffer[] | undefined
  const key = randomBytes(16).toString('base64')
  sock.on('connect', () => {
    sock.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    )
  })
  const onChunk = (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) {
        buf = Buffer.from(buf)
        return
      }
      const status = buf.toString('latin1', 0, buf.indexOf('\r\n'))
      if (!status.startsWith('HTTP/1.1 101')) {
        h.onError(new Error(`upgrade refused: ${status}`))
        sock.destroy()
        return
      }
      upgraded = open = true
      buf = buf.subarray(end + 4)
      h.onOpen()
    }
    let i = 0
    while (buf.length - i >= 2) {
      const b0 = buf[i]!
      let len = buf[i + 1]! & 0x7f
      let at = i + 2
      if (len === 126) {
        if (buf.length - i < 4) break
        len = buf.readUInt16BE(i + 2)
        at = i + 4
      } else if (len === 127) {
        if (buf.length - i < 10) break
        len = Number(buf.readBigUInt64BE(i + 2))
        at = i + 10
      }
      if (buf.length - at < len) break
      const payload = buf.subarray(at, at + len)
      i = at + len
      const opcode = b0 & 0x0f
      const fin = (b0 & 0x80) !== 0
      if (opcode === 1 || opcode === 2 || opcode === 0) {
        if (!fin) (fragments ??= []).push(Buffer.from(payload))
        else if (fragments) {
          fragments.push(payload)
          const whole = Buffer.concat(fragments)
          fragments = undefined
          h.onText(whole)
        } else h.onText(payload)
      } else if (opcode === 9) {
        sock.write(frame(10, payload))
      } else if (opcode === 8) {
        if (open) {
          open = false
          sock.end(frame(8, payload.subarray(0, 2)))
        }
      }
    }
    // Keep only the unparsed tail, copied: the shared read buffer is reused by the next read.
    buf = i === buf.length ? EMPTY : Buffer.from(buf.subarray(i))
  }
  sock.on('error', (e) => h.onError(e))
  sock.on('close', () => {
    open = false
    h.onClose()
  })
  return {
    send(text) {
      if (open) sock.write(frame(1, Buffer.from(text)))
    },
    close() {
      if (!open) return void sock.end()
      open = false
      const code = Buffer.alloc(2)
      code.writeUInt16BE(1000)
      sock.end(frame(8, code))
    },
    terminate() {
      open = false
      sock.destroy()
    },
    get open() {
      return open
    },
  }
}
