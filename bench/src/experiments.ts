/**
 * Experiments on the @app/realtime contender, to measure a proposed hot-path change before it is
 * made in the library (`--experiment <name>`, realtime only):
 *
 * - `cork`: frames sent to one socket within one tick go out in one write. The first send of a
 *   tick corks the socket (net.Socket#cork) and a process.nextTick uncorks every corked socket, so
 *   a burst of publishes becomes one writev per socket instead of one per frame. The same change
 *   in the library would live in Connection#sendFrame.
 */
import { WebSocket } from 'ws'

export function applyExperiments(names: string[]): void {
  if (names.includes('cork')) corkPerTick()
}

function corkPerTick(): void {
  const proto = WebSocket.prototype as any
  const send = proto.send
  const corked: any[] = []
  let scheduled = false
  const flush = () => {
    scheduled = false
    for (let i = 0; i < corked.length; i++) {
      const ws = corked[i]
      ws.__benchCorked = false
      ws._socket?.uncork()
    }
    corked.length = 0
  }
  proto.send = function (this: any, data: unknown, options: unknown, cb: unknown) {
    if (!this.__benchCorked && this._socket && this.readyState === 1) {
      this.__benchCorked = true
      this._socket.cork()
      corked.push(this)
      if (!scheduled) {
        scheduled = true
        process.nextTick(flush)
      }
    }
    return send.call(this, data, options, cb)
  }
}
