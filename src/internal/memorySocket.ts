/**
 * Two connected in-memory WebSocket ends: what one end writes, the other reads, in
 * order, a microtask later. Closing sends a close frame behind the data (the peer
 * echoes it); terminating drops everything and both ends see 1006. A ping is
 * answered with a pong by the reading end unless it is silent. An end can be
 * stalled: it reads nothing, and the writing end reports a socket buffer past any
 * high-water mark, so the writer's outbox keeps what it has and applies its policy.
 *
 * @internal
 */
import { Fifo } from "./fifo.js"
import type { Frame } from "./outbox.js"
import type { RawSocket, SocketHandlers } from "./transport.js"

/** @internal */
export interface CloseEvent {
  readonly code: number
  readonly reason: string
}

class Control {
  constructor(
    readonly kind: "ping" | "pong" | "close",
    readonly code = 0,
    readonly reason = ""
  ) {}
}

type Item = Frame | Control

const utf8Length = (text: string): number => {
  let bytes = text.length
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 2 // a surrogate pair: 2 code units, 4 bytes
      i++
    } else if (c >= 0x800) {
      bytes += 2
    } else if (c >= 0x80) {
      bytes += 1
    }
  }
  return bytes
}

const sizeOf = (item: Item): number =>
  typeof item === "string"
    ? utf8Length(item)
    : item instanceof Uint8Array
    ? item.byteLength
    : item instanceof Control
    ? 0
    : utf8Length(item.text)

/** What a real socket hands its reader: text as a string, binary as its own copy. */
const onTheWire = (frame: Frame): string | Uint8Array =>
  typeof frame === "string" ? frame : frame instanceof Uint8Array ? frame.slice() : frame.text

/** @internal */
export class MemorySocket implements RawSocket {
  peer!: MemorySocket
  private handlers: SocketHandlers | undefined
  private readonly inbox = new Fifo<{ readonly item: Item; readonly size: number }>()
  private inboxBytes = 0
  private scheduled = false
  /** paused by the connection that reads this end (inbound backpressure) */
  private paused = false
  /** after an oversized frame: the rest of the data is not read */
  private discarding = false
  private closeSent = false
  private drainWaiters: Array<() => void> = []
  private closeWaiters: Array<(event: CloseEvent) => void> = []
  /** set by the test: this end reads nothing */
  stalled = false
  /** set by the test: this end does not answer pings */
  silent = false
  closeEvent: CloseEvent | undefined = undefined
  /** sees every data frame this end reads, before its handlers do */
  tap: ((frame: string | Uint8Array) => void) | undefined = undefined

  constructor(readonly maxPayload: number = Infinity) {}

  /** Two connected ends; `maxPayload` limits what each end accepts (1009 above it). */
  static pair(options?: { readonly maxPayload?: readonly [number, number] | undefined }): [MemorySocket, MemorySocket] {
    const a = new MemorySocket(options?.maxPayload?.[0])
    const b = new MemorySocket(options?.maxPayload?.[1])
    a.peer = b
    b.peer = a
    return [a, b]
  }

  // ---------------------------------------------------------------------------
  // RawSocket: what the owner of this end calls
  // ---------------------------------------------------------------------------

  write(frames: ReadonlyArray<Frame>): void {
    if (this.closeSent || this.closeEvent !== undefined) return
    for (let i = 0; i < frames.length; i++) this.peer.receive(frames[i])
  }

  bufferedAmount(): number {
    if (this.closeEvent !== undefined) return 0
    return this.peer.stalled ? Number.POSITIVE_INFINITY : this.peer.inboxBytes
  }

  whenFlushed(f: () => void): void {
    this.peer.onDrained(f)
  }

  close(code: number, reason: string): void {
    if (this.closeSent || this.closeEvent !== undefined) return
    this.closeSent = true
    this.peer.receive(new Control("close", code, reason))
  }

  terminate(): void {
    if (this.closeEvent !== undefined && this.peer.closeEvent !== undefined) return
    this.abort()
    this.peer.abort()
  }

  ping(): boolean {
    if (this.closeSent || this.closeEvent !== undefined) return false
    this.peer.receive(new Control("ping"))
    return true
  }

  pause(): void {
    this.paused = true
  }

  resume(): void {
    this.paused = false
    this.schedule()
  }

  // ---------------------------------------------------------------------------
  // the transport's side
  // ---------------------------------------------------------------------------

  listen(handlers: SocketHandlers): void {
    this.handlers = handlers
    const closed = this.closeEvent
    if (closed !== undefined) queueMicrotask(() => handlers.onClose(closed.code, closed.reason))
    else this.schedule()
  }

  /** Stops (or restarts) reading this end. */
  setStalled(stalled: boolean): void {
    this.stalled = stalled
    if (!stalled) {
      this.schedule()
      this.drained()
    }
  }

  /** Whether either end has closed or begun closing the connection. */
  get isClosing(): boolean {
    return this.closeSent || this.closeEvent !== undefined || this.peer.closeSent || this.peer.closeEvent !== undefined
  }

  /** Calls `f` when this end is closed, with what it saw. */
  onClose(f: (event: CloseEvent) => void): void {
    if (this.closeEvent !== undefined) f(this.closeEvent)
    else this.closeWaiters.push(f)
  }

  private receive(item: Item): void {
    if (this.closeEvent !== undefined) return
    const size = sizeOf(item)
    this.inbox.push({ item, size })
    this.inboxBytes += size
    this.schedule()
  }

  private onDrained(f: () => void): void {
    if (this.closeEvent !== undefined || (this.inboxBytes === 0 && !this.stalled)) f()
    else this.drainWaiters.push(f)
  }

  private drained(): void {
    if (this.drainWaiters.length === 0) return
    if (this.closeEvent === undefined && (this.inboxBytes > 0 || this.stalled)) return
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const f of waiters) f()
  }

  private get canRead(): boolean {
    return this.handlers !== undefined && !this.paused && !this.stalled && this.closeEvent === undefined
  }

  private schedule(): void {
    if (this.scheduled || !this.canRead || this.inbox.length === 0) return
    this.scheduled = true
    queueMicrotask(() => this.read())
  }

  private read(): void {
    this.scheduled = false
    while (this.canRead && this.inbox.length > 0) {
      const { item, size } = this.inbox.shift()!
      this.inboxBytes -= size
      if (item instanceof Control) this.control(item)
      else this.data(item, size)
    }
    this.drained()
  }

  private data(frame: Frame, size: number): void {
    if (this.discarding) return
    if (size > this.maxPayload) {
      this.discarding = true
      this.close(1009, "")
      return
    }
    const wire = onTheWire(frame)
    this.tap?.(wire)
    this.handlers!.onFrame(wire)
  }

  private control(control: Control): void {
    switch (control.kind) {
      case "ping": {
        if (!this.silent && !this.closeSent) this.peer.receive(new Control("pong"))
        return
      }
      case "pong": {
        this.handlers!.onPong()
        return
      }
      case "close": {
        if (!this.closeSent) {
          this.closeSent = true
          this.peer.receive(new Control("close", control.code, control.reason))
        }
        this.closed(control.code, control.reason)
      }
    }
  }

  private abort(): void {
    this.closeSent = true
    this.inbox.clear()
    this.inboxBytes = 0
    queueMicrotask(() => this.closed(1006, ""))
  }

  private closed(code: number, reason: string): void {
    if (this.closeEvent !== undefined) return
    const event = { code, reason }
    this.closeEvent = event
    this.inbox.clear()
    this.inboxBytes = 0
    this.drained()
    this.handlers?.onClose(code, reason)
    const waiters = this.closeWaiters
    this.closeWaiters = []
    for (const f of waiters) f(event)
  }
}
