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

/**
 * A `ws` socket as a `RawSocket`. A class, not an object of closures: an idle
 * connection should cost little memory.
 *
 * @internal
 */
class WsSocket implements RawSocket {
  // ws keeps the TCP socket and its frame writer here; corking the socket makes a batch one write
  private readonly tcp: Net.Socket
  private readonly sender: { readonly _queue: ReadonlyArray<unknown> }
  /** server side without compression: a whole frame may be written to the socket as it is */
  private readonly rawWrites: boolean
  constructor(private readonly ws: WS.WebSocket, server: boolean) {
    const internals = ws as unknown as { _socket: Net.Socket; _sender: { _queue: ReadonlyArray<unknown> } }
    this.tcp = internals._socket
    this.sender = internals._sender
    this.rawWrites = server && ws.extensions === "" && Array.isArray(this.sender._queue)
  }
  private send(frame: Frame): void {
    if (typeof frame === "string") this.ws.send(frame, textOptions)
    else if (frame instanceof Uint8Array) this.ws.send(frame, binaryOptions)
    else if (this.rawWrites && this.ws.readyState === 1 && this.sender._queue.length === 0) {
      // a broadcast: the same frame bytes for every receiver (servers do not mask), framed once
      this.tcp.write(frame.framed ??= textFrame(frame.text))
    } else this.ws.send(frame.text, textOptions)
  }
  write(frames: ReadonlyArray<Frame>): void {
    if (frames.length === 1) return this.send(frames[0])
    this.tcp.cork()
    for (let i = 0; i < frames.length; i++) this.send(frames[i])
    this.tcp.uncork()
  }
  bufferedAmount(): number {
    return this.ws.bufferedAmount
  }
  whenFlushed(f: () => void): void {
    if (this.tcp.destroyed || !this.tcp.writableNeedDrain) f()
    else this.tcp.once("drain", f)
  }
  close(code: number, reason: string): void {
    try {
      this.ws.close(code, truncateReason(reason))
    } catch {
      this.ws.terminate()
    }
  }
  terminate(): void {
    this.ws.terminate()
  }
  ping(): boolean {
    try {
      this.ws.ping()
      return true
    } catch {
      return false
    }
  }
  pause(): void {
    this.ws.pause()
  }
  resume(): void {
    this.ws.resume()
  }
}

/** @internal */
export const fromWebSocket = (ws: WS.WebSocket, side: "server" | "client"): RawSocket =>
  new WsSocket(ws, side === "server")

/** An unmasked, final text frame (RFC 6455 5.2) of `text`: one buffer, the text encoded into it. */
const textFrame = (text: string): Uint8Array => {
  const length = Buffer.byteLength(text)
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = 0x81
  if (length < 126) {
    frame[1] = length
  } else if (length < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  frame.write(text, headerLength, "utf8")
  return frame
}

/** A close reason may hold at most 123 bytes. */
const truncateReason = (reason: string): string => {
  if (Buffer.byteLength(reason) <= 123) return reason
  let cut = reason.slice(0, 123)
  while (Buffer.byteLength(cut) > 123) cut = cut.slice(0, -1)
  return cut
}

const kHandlers = Symbol.for("effect-neffos/handlers")

type Listening = WS.WebSocket & { [kHandlers]: SocketHandlers }

// shared listeners: `this` is the socket, its handlers hang on it
function onMessage(this: Listening, data: WS.RawData, isBinary: boolean) {
  const buffer = data as Buffer
  this[kHandlers].onFrame(isBinary ? buffer : buffer.toString("utf8"))
}
function onPong(this: Listening) {
  this[kHandlers].onPong()
}
// protocol errors (invalid UTF-8: 1007, too big: 1009) are followed by "close"
function onError() {}
function onClose(this: Listening, code: number, reason: Buffer) {
  this[kHandlers].onClose(code, reason.toString("utf8"))
}

/** @internal */
export const listen = (ws: WS.WebSocket, handlers: SocketHandlers): void => {
  ;(ws as Listening)[kHandlers] = handlers
  ws.on("message", onMessage as (...args: Array<any>) => void)
  ws.on("pong", onPong as (...args: Array<any>) => void)
  ws.on("error", onError)
  ws.on("close", onClose as (...args: Array<any>) => void)
}

/** @internal */
export const requestOf = (req: Http.IncomingMessage): Conn.Request => {
  // Node joins repeated request headers with ", " (only set-cookie, a response header, is an array)
  const headers = req.headers as Record<string, string>
  return { url: req.url ?? "/", headers, remoteAddress: req.socket.remoteAddress }
}
