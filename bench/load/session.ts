/**
 * One load-generator client: a plain `ws` socket that counts broadcast frames and hands every other
 * frame to the single request waiting for it (a client never has more than one request in flight).
 */
import type { Socket } from "node:net"
import { WebSocket } from "ws"

export interface Wire {
  readonly name: string
  /** Appended to the server's path, e.g. the engine.io query. */
  readonly query: string
  readonly isBroadcast: (frame: string) => boolean
  /** Answers protocol keep-alives; returns true when the frame was one. */
  readonly keepAlive: (frame: string, session: Session) => boolean
  /** Runs after the socket opened, until the client is ready for events (e.g. namespace connected). */
  readonly handshake: (session: Session) => Promise<void>
  readonly join: (session: Session, room: string) => Promise<void>
  readonly echo: (session: Session) => Promise<void>
}

interface Waiter {
  readonly resolve: (frame: string) => void
  readonly reject: (error: Error) => void
}

export class Session {
  /** Whether this client's broadcasts count; a paused client's do not. */
  counting = true
  private waiter: Waiter | undefined
  /** Frames that arrived before anyone waited for them, e.g. a greeting sent right after the upgrade. */
  private readonly inbox: Array<string> = []
  private closed: Error | undefined

  constructor(
    readonly ws: WebSocket,
    readonly wire: Wire,
    onBroadcast: (session: Session, frame: string) => void
  ) {
    ws.on("message", (data: Buffer) => {
      const frame = data.toString()
      if (wire.isBroadcast(frame)) return onBroadcast(this, frame)
      if (wire.keepAlive(frame, this)) return
      const waiter = this.waiter
      this.waiter = undefined
      if (waiter) waiter.resolve(frame)
      else this.inbox.push(frame)
    })
    ws.on("close", (code) => this.fail(new Error(`closed (${code})`)))
    ws.on("error", (error) => this.fail(error))
  }

  /** Waits for the next frame that is neither a broadcast nor a keep-alive. */
  next(): Promise<string> {
    return new Promise((resolve, reject) => {
      const queued = this.inbox.shift()
      if (queued !== undefined) return resolve(queued)
      if (this.closed) return reject(this.closed)
      this.waiter = { resolve, reject }
    })
  }

  /** Sends `frame` and checks the reply. */
  async request(frame: string, isReply: (reply: string) => boolean): Promise<void> {
    const reply = this.next()
    this.ws.send(frame)
    const text = await reply
    if (!isReply(text)) throw new Error(`${this.wire.name}: unexpected reply ${JSON.stringify(text.slice(0, 80))}`)
  }

  /** Stops reading from the TCP socket, so the server's writes back up; its broadcasts stop counting. */
  pause() {
    // ws has no public API for this; its underlying net.Socket is the `_socket` field
    const socket = (this.ws as unknown as { readonly _socket: Socket })._socket
    socket.pause()
    this.counting = false
  }

  terminate() {
    this.ws.terminate()
    this.fail(new Error("terminated"))
  }

  private fail(error: Error) {
    this.closed ??= error
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(error)
  }
}

const connectTimeoutMs = 10_000

/** Opens a client and completes the wire's handshake, within a timeout. */
export const connect = (
  wire: Wire,
  url: string,
  onBroadcast: (session: Session, frame: string) => void
): Promise<Session> => {
  const ws = new WebSocket(url + wire.query, { perMessageDeflate: false, skipUTF8Validation: true })
  const session = new Session(ws, wire, onBroadcast)
  const timer = setTimeout(() => session.terminate(), connectTimeoutMs)
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", resolve)
    ws.once("error", reject)
    ws.once("close", () => reject(new Error("closed before open")))
  })
  return opened
    .then(() => wire.handshake(session))
    .then(() => session, (error: unknown) => {
      session.terminate()
      throw error
    })
    .finally(() => clearTimeout(timer))
}
