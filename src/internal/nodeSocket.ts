/**
 * The `ws` socket behind the transport seam.
 *
 * @internal
 */
import type * as Http from "node:http"
import type * as Net from "node:net"
import type * as WS from "ws"
import type * as Conn from "../Conn.js"
import type { Frame } from "./outbox.js"
import type { RawSocket, SocketHandlers } from "./transport.js"

const textOptions = { binary: false }
const binaryOptions = { binary: true }

/** @internal */
export const fromWebSocket = (ws: WS.WebSocket): RawSocket => {
  // ws keeps the TCP socket here; corking it makes a batch of frames one write
  const tcp = (ws as unknown as { _socket: Net.Socket })._socket
  const send = (frame: Frame) => {
    if (typeof frame === "string") ws.send(frame, textOptions)
    else if (frame instanceof Uint8Array) ws.send(frame, binaryOptions)
    else ws.send(frame.bytes, textOptions)
  }
  return {
    write: (frames) => {
      if (frames.length === 1) return send(frames[0])
      tcp.cork()
      for (let i = 0; i < frames.length; i++) send(frames[i])
      tcp.uncork()
    },
    bufferedAmount: () => ws.bufferedAmount,
    whenFlushed: (f) => {
      if (tcp.destroyed || !tcp.writableNeedDrain) f()
      else tcp.once("drain", f)
    },
    close: (code, reason) => {
      try {
        ws.close(code, truncateReason(reason))
      } catch {
        ws.terminate()
      }
    },
    terminate: () => ws.terminate(),
    ping: () => {
      try {
        ws.ping()
        return true
      } catch {
        return false
      }
    },
    pause: () => ws.pause(),
    resume: () => ws.resume()
  }
}

/** A close reason may hold at most 123 bytes. */
const truncateReason = (reason: string): string => {
  if (Buffer.byteLength(reason) <= 123) return reason
  let cut = reason.slice(0, 123)
  while (Buffer.byteLength(cut) > 123) cut = cut.slice(0, -1)
  return cut
}

/** @internal */
export const listen = (ws: WS.WebSocket, handlers: SocketHandlers): void => {
  ws.on("message", (data, isBinary) => {
    const buffer = data as Buffer
    handlers.onFrame(isBinary ? buffer : buffer.toString("utf8"))
  })
  ws.on("pong", handlers.onPong)
  // protocol errors (invalid UTF-8: 1007, too big: 1009) are followed by "close"
  ws.on("error", () => {})
  ws.on("close", (code, reason) => handlers.onClose(code, reason.toString("utf8")))
}

/** @internal */
export const requestOf = (req: Http.IncomingMessage): Conn.Request => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return { url: req.url ?? "/", headers, remoteAddress: req.socket.remoteAddress }
}
