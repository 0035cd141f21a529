/**
 * One neffos connection, either side: the reader, the sequential dispatcher, the
 * ask table and the namespace/room state. The server and the client wrap it.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type * as Conn from "../Conn.js"
import * as Errors from "../Errors.js"
import type * as Events from "../Events.js"
import * as Message from "../Message.js"
import * as Reply from "../Reply.js"
import { describe, failureOf } from "./failure.js"
import * as msg from "./message.js"
import { type Frame, nextTurn, OfferResult, Outbox, type OverflowStrategy } from "./outbox.js"
import type { Entry } from "./timers.js"
import type { RawSocket, SocketHandlers } from "./transport.js"

/** @internal */
export type Side = "server" | "client"

/** @internal */
export type AnyHandler = (ns: any, message: Message.Message) => Effect.Effect<void | Reply.Reply, unknown, any>

/** A handler's requirements are provided by the runtime its connection runs on. */
const invoke = (handler: AnyHandler, ns: NSConnImpl, message: Message.Message) =>
  Effect.suspend(() => handler(ns, message)) as Effect.Effect<void | Reply.Reply, unknown>

/** @internal */
export type EventTable = ReadonlyMap<string, ReadonlyMap<string, AnyHandler>>

/** @internal */
export interface OutboxConfig {
  readonly capacity: number
  readonly strategy: OverflowStrategy
  readonly highWaterMark: number
  readonly maxBytes: number
}

/** @internal */
export interface RequestInfo {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly remoteAddress: string | undefined
}

/** @internal */
export interface ConnHooks {
  /** the server's membership index; called synchronously when state changes */
  readonly namespaceChanged: (ns: NSConnImpl, added: boolean) => void
  readonly roomChanged: (room: RoomImpl, added: boolean) => void
  /** after the M of a server connection: decide (onConnect) and call `accept` or `reject` */
  readonly handshake: (conn: ConnImpl) => void
  /** the handshake completed (`A<id>` written) */
  readonly accepted: (conn: ConnImpl) => void
  /** after the close sequence fired its forced events */
  readonly closed: (conn: ConnImpl) => Effect.Effect<void>
  /**
   * The socket is gone without this side closing the connection. Returning true
   * keeps the connection (its namespaces and rooms) for a reconnect; the close
   * sequence then runs only when it is finally closed.
   */
  readonly lost?: ((conn: ConnImpl, code: number, reason: string) => boolean) | undefined
  readonly broadcast: (
    message: Message.Message,
    to: string | undefined,
    except: ConnImpl | undefined
  ) => Effect.Effect<void>
  readonly dropped: (conn: ConnImpl) => void
}

/**
 * Client side, while the connection reconnects: what would send something goes
 * through `hold` instead, which fails it or keeps it (the offline queue) and runs
 * it once the connection is back. `operation` is the same operation, not gated again.
 *
 * @internal
 */
export interface Gate {
  readonly hold: <A, E>(
    operation: Effect.Effect<A, E>
  ) => Effect.Effect<A, E | Errors.Offline | Errors.ConnectionClosed>
  /** the failure of a request under way when the socket was lost */
  readonly error: () => Errors.Reconnecting
}

/** @internal */
export interface ConnConfig {
  readonly side: Side
  readonly events: EventTable
  /** runs a fiber of the connection (dispatcher, close sequence, ...) under its owner's supervision */
  readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
  readonly askTimeout: Duration.Duration
  readonly inboundCapacity: number
  readonly answerUnrepliedAsks: boolean
  readonly native: "none" | "fallback" | "only"
  /** maps a failed handler to the error text its peer gets; default `failure.defaultErrorText` */
  readonly errorText: ((failure: Events.HandlerFailure, context: Events.FailureContext) => string) | undefined
  /** whether the runtime logs at debug level (expected handler failures are logged there) */
  readonly logsDebug: boolean
  /** longest namespace, room or event name a peer may send, in UTF-8 bytes */
  readonly maxNameLength: number
  /** rooms a peer may join per connection */
  readonly maxRooms: number
  readonly hooks: ConnHooks
}

type RequestOptions = Conn.RequestOptions

const ConnTypeId: Conn.TypeId = Symbol.for("effect-neffos/Conn") as Conn.TypeId

const HANDSHAKE = 0
const ACCEPTING = 1
const OPEN = 2
const CLOSED = 3
/** client side, between a lost socket and the next one */
const DOWN = 4

/** @internal */
export type ConnectionState =
  | { readonly _tag: "Connecting" }
  | { readonly _tag: "Open"; readonly id: string }
  | { readonly _tag: "Reconnecting"; readonly attempt: number; readonly code: number; readonly reason: string }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string }

/** @internal */
export type Ack =
  | { readonly _tag: "Id"; readonly id: string }
  | { readonly _tag: "Rejected"; readonly reason: string }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string }
  | { readonly _tag: "Protocol"; readonly frame: string }

type Task = Message.Message | Effect.Effect<void>

type PendingReply = (reply: Message.Message | undefined) => void

let nextKey = 0

/** How long a connect reply's ping waits for its pong before `_OnNamespaceConnected` runs anyway. */
const PONG_WAIT = Duration.seconds(1)

const {
  OnAnyEvent,
  OnNamespaceConnect,
  OnNamespaceConnected,
  OnNamespaceDisconnect,
  OnNativeMessage,
  OnRoomJoin,
  OnRoomJoined,
  OnRoomLeave,
  OnRoomLeft
} = Message

/** Whether `name` is at most `max` bytes in UTF-8, without encoding it when the length alone decides. */
const fitsBytes = (name: string, max: number): boolean => {
  if (name.length * 3 <= max) return true
  if (name.length > max) return false
  let bytes = 0
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdbff ? (i++, 4) : 3
  }
  return bytes <= max
}

/** The socket is gone (a reconnect follows) or the connection closed: nothing was refused. */
const isGone = (error: { readonly _tag: string }): boolean =>
  error._tag === "Reconnecting" || error._tag === "ConnectionClosed"

const lifecycle = (
  namespace: string,
  room: string,
  event: string,
  isLocal: boolean,
  isForced: boolean
): Message.Message => msg.unsafeMake(namespace, room, event, "", undefined, false, "", false, false, isLocal, isForced)

/** @internal */
export class ConnImpl {
  declare readonly [ConnTypeId]: Conn.TypeId
  readonly key = nextKey++
  outbox: Outbox
  readonly nsMap = new Map<string, NSConnImpl>()
  // what most connections never use is created on first use: an idle connection stays small
  private store_: Map<unknown, unknown> | undefined
  private pending_: Map<string, PendingReply> | undefined
  private connecting_: Map<string, Deferred.Deferred<NSConnImpl, Errors.RequestError | Errors.Reconnecting>> | undefined
  private closedLatch_: Deferred.Deferred<void> | undefined
  private inbound: Array<Task> = []
  private inboundHead = 0
  private dispatcher: Fiber.RuntimeFiber<void> | undefined
  private dispatching = false
  private paused = false
  private phase: number
  private scope_: Scope.CloseableScope | undefined
  private closeSequenceDone = false
  closeCode = 0
  closeReason = ""
  /** keep-alive bookkeeping, driven by the server's timers */
  awaitingPong = false
  pingSeq = 0
  /** `replyRead`: pongs still to come, and who waits for the last */
  private pongsAwaited = 0
  private pongWaiter: (() => void) | undefined
  invalidFrames = 0
  /** rooms joined, across namespaces */
  roomCount = 0
  /** the server's pending deadlines for this connection, cancelled when it closes */
  handshakeTimer: Entry<unknown> | undefined
  pingTimer: Entry<unknown> | undefined
  pongTimer: Entry<unknown> | undefined
  private socketClosed = false
  private socketClosedWaiter: (() => void) | undefined
  private accepted_ = false
  private ackWaiter: ((ack: Ack) => void) | undefined
  private namespaceWaiters_: Map<string, Array<(ns: NSConnImpl) => void>> | undefined
  /** client side: the connection state the client module maintains */
  clientState: SubscriptionRef.SubscriptionRef<ConnectionState> | undefined
  /** set by `close`: a client closed by its application does not reconnect */
  closedByUser = false
  /** client side: set by the client while it reconnects */
  gate: Gate | undefined

  constructor(
    public id: string,
    public socket: RawSocket,
    readonly config: ConnConfig,
    private readonly outboxConfig: OutboxConfig,
    readonly request: RequestInfo,
    public reconnectTries: number
  ) {
    const outbox = outboxConfig
    this.outbox = new Outbox(
      outbox.capacity,
      outbox.strategy,
      outbox.highWaterMark,
      outbox.maxBytes,
      socket,
      () => this.onOverflow()
    )
    this.phase = config.native === "only" ? OPEN : HANDSHAKE
    if (this.phase === HANDSHAKE && config.side === "server") this.outbox.hold()
  }

  get store(): Map<unknown, unknown> {
    return this.store_ ??= new Map()
  }

  private get pending(): Map<string, PendingReply> {
    return this.pending_ ??= new Map()
  }

  private get connecting(): Map<string, Deferred.Deferred<NSConnImpl, Errors.RequestError | Errors.Reconnecting>> {
    return this.connecting_ ??= new Map()
  }

  private get namespaceWaiters(): Map<string, Array<(ns: NSConnImpl) => void>> {
    return this.namespaceWaiters_ ??= new Map()
  }

  private get closedLatch(): Deferred.Deferred<void> {
    return this.closedLatch_ ??= Deferred.unsafeMake<void>(undefined as any)
  }

  /** Native-only mode: no handshake, namespace "" is connected from the start. */
  openNative(): void {
    this.addNamespace(new NSConnImpl(this, ""))
  }

  get isOpen(): boolean {
    return this.phase === OPEN || this.phase === ACCEPTING
  }

  get closed(): boolean {
    return this.phase === CLOSED
  }

  /** client side: the socket is gone and a reconnect may follow */
  get down(): boolean {
    return this.phase === DOWN
  }

  get closedError(): Errors.ConnectionClosed {
    return new Errors.ConnectionClosed({ id: this.id })
  }

  /** Why nothing can be sent now: `Reconnecting` while a client is down, otherwise closed. */
  get unavailableError(): Errors.ConnectionClosed | Errors.Reconnecting {
    return this.phase === DOWN && this.gate !== undefined ? this.gate.error() : this.closedError
  }

  /** `operation` through the gate, within its timeout counted from now. */
  held<A, E>(
    gate: Gate,
    operation: Effect.Effect<A, E>,
    namespace: string,
    event: string,
    timeout: Duration.DurationInput | undefined
  ): Effect.Effect<A, E | Errors.Offline | Errors.ConnectionClosed | Errors.AskTimeout> {
    const duration = timeout === undefined ? this.config.askTimeout : Duration.decode(timeout)
    return Effect.timeoutFail(gate.hold(operation), {
      duration,
      onTimeout: () => new Errors.AskTimeout({ namespace, event, timeout: duration })
    })
  }

  // ---------------------------------------------------------------------------
  // public API (Conn)
  // ---------------------------------------------------------------------------

  get wasReconnected(): boolean {
    return this.reconnectTries > 0
  }

  get isClosed(): Effect.Effect<boolean> {
    return Effect.sync(() => this.phase === CLOSED)
  }

  get stats(): Effect.Effect<Conn.Stats> {
    return Effect.sync(() => ({
      outboxSize: this.outbox.length,
      outboxBytes: this.outbox.bytes,
      outboxCapacity: this.outbox.capacity(),
      dropped: this.outbox.dropped,
      written: this.outbox.written
    }))
  }

  namespace(name: string): Effect.Effect<NSConnImpl, Errors.BadNamespace> {
    return Effect.suspend(() => {
      const ns = this.nsMap.get(name)
      return ns === undefined
        ? Effect.fail(new Errors.BadNamespace({ namespace: name, reason: "NotConnected" }))
        : Effect.succeed(ns)
    })
  }

  get namespaces(): Effect.Effect<ReadonlyArray<NSConnImpl>> {
    return Effect.sync(() => Array.from(this.nsMap.values()))
  }

  disconnectAll(options?: RequestOptions): Effect.Effect<void, Errors.RequestError | Errors.Offline> {
    return Effect.suspend(() =>
      Effect.forEach(Array.from(this.nsMap.values()), (ns) => this.disconnectNamespace(ns, options?.timeout), {
        discard: true
      })
    )
  }

  close(options?: { readonly code?: number; readonly reason?: string }): Effect.Effect<void> {
    return Effect.sync(() => {
      this.closedByUser = true
      if (this.phase === DOWN) this.terminated(options?.code ?? 1000, options?.reason ?? "")
      else this.unsafeClose(options?.code ?? 1000, options?.reason ?? "")
    })
  }

  get awaitClose(): Effect.Effect<void> {
    return Deferred.await(this.closedLatch)
  }

  /** Closed with the connection, after its close sequence; created on first use. */
  get scope(): Scope.Scope {
    if (this.scope_ === undefined) {
      this.scope_ = Effect.runSync(Scope.make())
      if (this.closeSequenceDone) Effect.runFork(Scope.close(this.scope_, Exit.void))
    }
    return this.scope_
  }

  get<A>(key: Conn.StoreKey<A>): Effect.Effect<A> {
    return Effect.sync(() => (this.store.has(key) ? this.store.get(key) as A : key.initial()))
  }

  set<A>(key: Conn.StoreKey<A>, value: A): Effect.Effect<void> {
    return Effect.sync(() => {
      this.store.set(key, value)
    })
  }

  modify<A>(key: Conn.StoreKey<A>, f: (a: A) => A): Effect.Effect<A> {
    return Effect.sync(() => {
      const next = f(this.store.has(key) ? this.store.get(key) as A : key.initial())
      this.store.set(key, next)
      return next
    })
  }

  // ---------------------------------------------------------------------------
  // socket events
  // ---------------------------------------------------------------------------

  /** The callbacks a transport calls: the connection itself (no closures per connection). */
  get handlers(): SocketHandlers {
    return this
  }

  /** Socket callbacks that ignore a socket this connection no longer uses (client reconnects). */
  handlersFor(socket: RawSocket): SocketHandlers {
    return new CurrentSocketOnly(this, socket)
  }

  onPong(): void {
    this.awaitingPong = false
    if (this.pongWaiter !== undefined && --this.pongsAwaited === 0) {
      const resume = this.pongWaiter
      this.pongWaiter = undefined
      resume()
    }
  }

  onClose(code: number, reason: string): void {
    this.socketClosed = true
    const waiter = this.socketClosedWaiter
    this.socketClosedWaiter = undefined
    waiter?.()
    this.terminated(code, reason)
  }

  /** Calls `f` once the transport reports the socket closed (the close handshake is over). */
  whenSocketClosed(f: () => void): void {
    if (this.socketClosed) return f()
    const previous = this.socketClosedWaiter
    this.socketClosedWaiter = previous === undefined ? f : () => {
      previous()
      f()
    }
  }

  onFrame(frame: Frame): void {
    if (this.phase === OPEN || this.phase === ACCEPTING) {
      return this.onMessageFrame(frame as string | Uint8Array)
    }
    if (this.phase === HANDSHAKE && this.config.side === "client") return this.onAck(frame)
    if (this.phase === HANDSHAKE) {
      if (typeof frame === "string" && frame.charCodeAt(0) === 77) {
        this.phase = ACCEPTING
        this.config.hooks.handshake(this)
        return
      }
      // only M acknowledges: anything else, A<id> and H<reason> included, is a protocol error
      this.unsafeClose(1002, "expected the handshake frame M")
    }
  }

  private onMessageFrame(frame: string | Uint8Array): void {
    const decoded = msg.decode(frame, this.config.native === "none" ? undefined : { native: this.config.native })
    if (decoded._tag === "InvalidFrame") {
      this.invalidFrames++
      return
    }
    const wait = decoded.wait
    if (wait.length > 0 && this.isReplyToken(wait)) {
      const pending = this.pending_?.get(wait)
      // a reply nobody waits for (late, or never asked) is dropped, never dispatched
      if (pending !== undefined) {
        this.pending.delete(wait)
        pending(decoded)
      }
      return
    }
    if (!decoded.native && this.hasLongName(decoded)) return this.refuseLongName(decoded)
    if (
      this.phase === OPEN && !this.dispatching && this.inboundHead === this.inbound.length &&
      !this.outbox.isHalfFull && this.handleNow(decoded)
    ) return
    this.enqueue(decoded)
  }

  private hasLongName(m: Message.Message): boolean {
    const max = this.config.maxNameLength
    return !fitsBytes(m.namespace, max) || !fitsBytes(m.room, max) ||
      (!fitsBytes(m.event, max) && !Message.isSystemEvent(m.event))
  }

  /** Answers an ask whose names are too long, without echoing them; anything else is dropped. */
  private refuseLongName(m: Message.Message): void {
    this.invalidFrames++
    if (m.wait.length === 0 || m.error !== undefined || m.isNoOp) return
    const max = this.config.maxNameLength
    const keep = (name: string) => (fitsBytes(name, max) ? name : "")
    const event = Message.isSystemEvent(m.event) ? m.event : keep(m.event)
    this.writeError(
      msg.unsafeMake(keep(m.namespace), keep(m.room), event, "", undefined, false, m.wait, false, false),
      "name too long"
    )
  }

  /** PROTOCOL.md 1.5: a server takes every token but `$...` as a reply; a client takes `$...` and `#...`. */
  private isReplyToken(wait: string): boolean {
    const c = wait.charCodeAt(0)
    return this.config.side === "server" ? c !== 36 : c === 36 || c === 35
  }

  // ---------------------------------------------------------------------------
  // handshake (server side)
  // ---------------------------------------------------------------------------

  get isAccepted(): boolean {
    return this.accepted_
  }

  /** Marks a connection that needs no handshake (native-only mode, clients) as accepted. */
  markAccepted(): void {
    this.accepted_ = true
    this.config.hooks.accepted(this)
  }

  /** Writes `A<id>` (once) and opens the connection. */
  accept(): void {
    if (this.phase !== ACCEPTING) return
    this.phase = OPEN
    this.socket.write(["A" + this.id])
    this.outbox.release()
    this.markAccepted()
    if (this.inboundHead < this.inbound.length && !this.dispatching) this.startDispatcher()
  }

  /** Writes `H<reason>` and closes with 1008. */
  reject(reason: string): void {
    if (this.phase !== ACCEPTING && this.phase !== HANDSHAKE) return
    this.socket.write(["H" + reason])
    // frames queued while onConnect ran must not follow the refusal
    this.unsafeClose(1008, reason, false)
  }

  // ---------------------------------------------------------------------------
  // handshake (client side)
  // ---------------------------------------------------------------------------

  /** Sends `M` and waits for `A<id>` (the connection is then open) or `H<reason>`. */
  handshake(): Effect.Effect<Ack> {
    return Effect.async<Ack>((resume) => {
      // the socket may have closed between being listened to and now: nothing would wake the waiter
      if (this.phase === CLOSED || this.phase === DOWN) {
        return resume(Effect.succeed({ _tag: "Closed", code: this.closeCode, reason: this.closeReason }))
      }
      this.ackWaiter = (ack) => resume(Effect.succeed(ack))
      this.socket.write(["M"])
      return Effect.sync(() => {
        this.ackWaiter = undefined
      })
    })
  }

  private onAck(frame: Frame): void {
    const waiter = this.ackWaiter
    this.ackWaiter = undefined
    const text = typeof frame === "string" ? frame : ""
    if (text.charCodeAt(0) === 65) {
      this.id = text.slice(1)
      this.phase = OPEN
      if (!this.accepted_) this.markAccepted()
      waiter?.({ _tag: "Id", id: this.id })
      return
    }
    if (text.charCodeAt(0) === 72) {
      waiter?.({ _tag: "Rejected", reason: text.slice(1) })
      this.closedByUser = true
      this.unsafeClose(1000, "")
      return
    }
    // neffos.js takes any first frame for the acknowledgement; only A<id> and H<reason> are
    waiter?.({ _tag: "Protocol", frame: text })
    this.closedByUser = true
    this.unsafeClose(1002, "expected A<id> or H<reason>")
  }

  /** Client side: a new socket after a lost one; the handshake comes next. */
  attach(socket: RawSocket): void {
    this.socket = socket
    this.outbox = new Outbox(
      this.outboxConfig.capacity,
      this.outboxConfig.strategy,
      this.outboxConfig.highWaterMark,
      this.outboxConfig.maxBytes,
      socket,
      () => this.onOverflow()
    )
    this.phase = HANDSHAKE
    this.socketClosed = false
  }

  /**
   * Client side, after a reconnect's handshake: connects every namespace and joins
   * every room the connection had again. What the server now refuses (or does not
   * answer in time) is left with the forced events; when the socket is lost again or
   * the connection closes, the rest is left to the next reconnect or the close.
   */
  restore(): Effect.Effect<void> {
    return Effect.forEach(Array.from(this.nsMap.values()), (ns) =>
      Effect.gen(this, function*() {
        const connected = yield* Effect.either(this.sendRequest(
          this.requestMessage(ns.namespace, "", OnNamespaceConnect),
          undefined
        ))
        if (connected._tag === "Left") {
          if (isGone(connected.left)) return
          yield* this.leaveAllForced(ns)
          this.removeNamespace(ns)
          yield* this.fire(ns, lifecycle(ns.namespace, "", OnNamespaceDisconnect, true, true))
          return
        }
        yield* this.fire(ns, lifecycle(ns.namespace, "", OnNamespaceConnected, true, false))
        for (const room of Array.from(ns.roomMap.values())) {
          const joined = yield* Effect.either(this.sendRequest(
            this.requestMessage(ns.namespace, room.name, OnRoomJoin),
            undefined
          ))
          if (joined._tag === "Left") {
            if (isGone(joined.left)) return
            this.removeRoom(room)
            yield* this.fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeft, true, true))
          } else {
            yield* this.fire(ns, lifecycle(ns.namespace, room.name, OnRoomJoined, true, false))
          }
        }
      }), { discard: true })
  }

  // ---------------------------------------------------------------------------
  // dispatcher
  // ---------------------------------------------------------------------------

  private enqueue(task: Task): void {
    if (this.phase === CLOSED) return
    this.inbound.push(task)
    if (this.phase === OPEN && !this.dispatching) this.startDispatcher()
    if (!this.paused && this.inbound.length - this.inboundHead >= this.config.inboundCapacity) {
      this.paused = true
      this.socket.pause()
    }
  }

  private startDispatcher(): void {
    this.dispatching = true
    // the fiber may run to completion inside runFork: only keep it while it is still draining
    const fiber = this.config.fork(this.drain())
    if (this.dispatching && this.dispatcher === undefined) this.dispatcher = fiber
  }

  private take(): Task | undefined {
    if (this.inboundHead >= this.inbound.length) return undefined
    const task = this.inbound[this.inboundHead]
    this.inbound[this.inboundHead++] = undefined as any
    if (this.inboundHead === this.inbound.length) {
      this.inbound = []
      this.inboundHead = 0
    } else if (this.inboundHead > 1024 && this.inboundHead * 2 > this.inbound.length) {
      this.inbound = this.inbound.slice(this.inboundHead)
      this.inboundHead = 0
    }
    if (this.paused && this.inbound.length - this.inboundHead <= this.config.inboundCapacity >> 1) {
      this.paused = false
      this.socket.resume()
    }
    return task
  }

  private drain(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const loop: Effect.Effect<void> = Effect.suspend(() => {
        const task = this.take()
        if (task === undefined) {
          this.dispatching = false
          this.dispatcher = undefined
          return Effect.void
        }
        const run = Effect.isEffect(task) ? task : this.handleIncoming(task)
        // a peer that asks faster than it reads the replies waits here (and then its socket is
        // paused by the inbound bound) instead of losing replies to its own outbox's policy
        return Effect.zipRight(
          this.outbox.isHalfFull ? Effect.zipRight(this.written, run) : run,
          loop
        )
      })
      return loop
    })
  }

  // ---------------------------------------------------------------------------
  // writing
  // ---------------------------------------------------------------------------

  /** Offers a frame to the outbox; false when the connection is closed. */
  write(frame: Frame): boolean {
    const result = this.outbox.put(frame)
    if (result === OfferResult.Dropped) this.config.hooks.dropped(this)
    return result !== OfferResult.Closed && result !== OfferResult.Overflow
  }

  private onOverflow(): void {
    this.config.hooks.dropped(this)
    this.unsafeClose(1008, "slow consumer", false)
  }

  /** Completes once everything queued so far was handed to the socket, one event-loop turn later. */
  private get written(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      this.outbox.onEmpty(() => nextTurn(() => resume(Effect.void)))
    })
  }

  /**
   * Server side, after a connect reply: completes once the client has read the reply
   * and finished what that read started, so that what `_OnNamespaceConnected` sends next
   * reaches neffos.js after it stored the namespace. neffos.js stores it a few microtasks
   * after the reply, and on Node `ws` hands it every frame of one TCP read synchronously:
   * a frame in the same read as the reply is dropped, however late the server wrote it.
   * So a ping follows the reply, and the wait ends at its pong: `ws` answers a ping while
   * it processes the read that carries it (browsers and Go peers answer on their own), so
   * whatever the server writes after the pong arrives can only reach the client in a
   * later read, after those microtasks. An outstanding keep-alive ping's pong does not
   * count; a peer that answers no ping holds the output at most `PONG_WAIT`.
   */
  private get replyRead(): Effect.Effect<void> {
    return Effect.zipRight(
      this.written,
      Effect.async<void>((resume) => {
        const pongs = this.awaitingPong ? 2 : 1
        if (this.phase === CLOSED || !this.socket.ping()) return resume(Effect.void)
        this.pongsAwaited = pongs
        this.pongWaiter = () => resume(Effect.void)
        return Effect.sync(() => {
          this.pongWaiter = undefined
        })
      }).pipe(Effect.timeoutTo({ duration: PONG_WAIT, onSuccess: () => undefined, onTimeout: () => undefined }))
    )
  }

  private writeEmptyReply(wait: string): void {
    this.write(msg.emptyReply(wait))
  }

  private writeError(request: Message.Message, text: string): void {
    this.write(
      msg.encode(
        msg.unsafeMake(request.namespace, request.room, request.event, "", text, false, request.wait, false, false)
      )
    )
  }

  // ---------------------------------------------------------------------------
  // incoming messages
  // ---------------------------------------------------------------------------

  handlerFor(namespace: string, event: string): AnyHandler | undefined {
    const events = this.config.events.get(namespace)
    if (events === undefined) return undefined
    return events.get(event) ?? events.get(OnAnyEvent)
  }

  /** Runs a lifecycle handler; its failure is the veto text. */
  fire(ns: NSConnImpl, message: Message.Message): Effect.Effect<string | undefined> {
    const handler = this.handlerFor(ns.namespace, message.event)
    if (handler === undefined) return Effect.succeed(undefined)
    return Effect.matchCauseEffect(invoke(handler, ns, message), {
      onSuccess: () => Effect.succeed(undefined),
      onFailure: (cause) => {
        const failure = failureOf(cause)
        if (failure === undefined) return Effect.succeed("interrupted")
        const { log, text } = this.describeFailure(failure, ns.namespace, message.room, message.event)
        return Effect.as(log, text)
      }
    })
  }

  private handleIncoming(m: Message.Message): Effect.Effect<void> {
    if (m.native) return this.handleNative(m)
    switch (m.event) {
      case OnNamespaceConnect:
        return m.isNoOp ? Effect.void : this.handleConnectRequest(m)
      case OnNamespaceDisconnect:
        return m.isNoOp ? Effect.void : this.handleDisconnectRequest(m)
      case OnRoomJoin:
        return m.isNoOp ? Effect.void : this.handleJoinRequest(m)
      case OnRoomLeave:
        return m.isNoOp ? Effect.void : this.handleLeaveRequest(m)
      case OnRoomLeft:
        // neffos.js's leaveAll asks with _OnRoomLeft instead of _OnRoomLeave: take it as the leave it means
        return this.config.side === "server" && m.wait.length > 0 && !m.isNoOp
          ? this.handleLeaveRequest(m)
          : Effect.void
      case OnNamespaceConnected:
      case OnRoomJoined:
        // local-only events: a peer cannot make our handlers believe they happened
        return Effect.void
      default:
        return this.handleEvent(m)
    }
  }

  private handleNative(m: Message.Message): Effect.Effect<void> {
    const ns = this.nsMap.get("")
    const handler = this.config.events.get("")?.get(OnNativeMessage)
    if (ns === undefined || handler === undefined) return Effect.void
    return this.runHandler(handler, ns, m)
  }

  private handleConnectRequest(m: Message.Message): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (!this.config.events.has(m.namespace)) {
        this.writeError(m, "bad namespace")
        return Effect.void
      }
      if (this.nsMap.has(m.namespace)) {
        this.writeEmptyReply(m.wait)
        return Effect.void
      }
      const ns = new NSConnImpl(this, m.namespace)
      return Effect.flatMap(this.fire(ns, lifecycle(m.namespace, "", OnNamespaceConnect, false, false)), (veto) => {
        if (veto !== undefined) {
          this.writeError(m, veto)
          return Effect.void
        }
        if (this.phase === CLOSED || this.nsMap.has(m.namespace)) {
          this.writeEmptyReply(m.wait)
          return Effect.void
        }
        this.addNamespace(ns)
        this.writeEmptyReply(m.wait)
        if (this.handlerFor(m.namespace, OnNamespaceConnected) === undefined) return Effect.void
        // what _OnNamespaceConnected sends goes out after the peer has stored the namespace (`replyRead`)
        return Effect.zipRight(
          this.config.side === "server" ? this.replyRead : this.written,
          Effect.asVoid(this.fire(ns, lifecycle(m.namespace, "", OnNamespaceConnected, false, false)))
        )
      })
    })
  }

  private handleDisconnectRequest(m: Message.Message): Effect.Effect<void> {
    return Effect.suspend(() => {
      const ns = this.nsMap.get(m.namespace)
      if (ns === undefined) {
        this.writeEmptyReply(m.wait)
        return Effect.void
      }
      return Effect.flatMap(this.fire(ns, lifecycle(m.namespace, "", OnNamespaceDisconnect, false, false)), (veto) => {
        // a server may refuse a client's disconnect; a client complies with the server's
        if (veto !== undefined && this.config.side === "server") {
          this.writeError(m, veto)
          return Effect.void
        }
        return Effect.map(this.leaveAllForced(ns), () => {
          this.removeNamespace(ns)
          this.writeEmptyReply(m.wait)
        })
      })
    })
  }

  private handleJoinRequest(m: Message.Message): Effect.Effect<void> {
    return Effect.suspend(() => {
      const ns = this.nsMap.get(m.namespace)
      if (ns === undefined) {
        this.writeError(m, "bad namespace")
        return Effect.void
      }
      if (ns.roomMap.has(m.room)) {
        this.writeEmptyReply(m.wait)
        return Effect.void
      }
      if (this.roomCount >= this.config.maxRooms) {
        this.writeError(m, "too many rooms")
        return Effect.void
      }
      const room = new RoomImpl(ns, m.room)
      return Effect.flatMap(this.fire(ns, lifecycle(m.namespace, m.room, OnRoomJoin, false, false)), (veto) => {
        if (veto !== undefined) {
          this.writeError(m, veto)
          return Effect.void
        }
        if (this.phase === CLOSED || ns.removed || ns.roomMap.has(m.room)) {
          this.writeEmptyReply(m.wait)
          return Effect.void
        }
        this.addRoom(room)
        return Effect.map(this.fire(ns, lifecycle(m.namespace, m.room, OnRoomJoined, false, false)), () => {
          this.writeEmptyReply(m.wait)
        })
      })
    })
  }

  private handleLeaveRequest(m: Message.Message): Effect.Effect<void> {
    return Effect.suspend(() => {
      const ns = this.nsMap.get(m.namespace)
      if (ns === undefined) {
        this.writeError(m, "bad namespace")
        return Effect.void
      }
      const room = ns.roomMap.get(m.room)
      if (room === undefined) {
        this.writeEmptyReply(m.wait)
        return Effect.void
      }
      return Effect.flatMap(this.fire(ns, lifecycle(m.namespace, m.room, OnRoomLeave, false, false)), (veto) => {
        if (veto !== undefined && this.config.side === "server") {
          this.writeError(m, veto)
          return Effect.void
        }
        this.removeRoom(room)
        return Effect.map(this.fire(ns, lifecycle(m.namespace, m.room, OnRoomLeft, false, false)), () => {
          this.writeEmptyReply(m.wait)
        })
      })
    })
  }

  private handleEvent(m: Message.Message): Effect.Effect<void> {
    const ns = this.eventTarget(m)
    return ns === undefined ? Effect.void : this.runHandler(this.handlerFor(m.namespace, m.event)!, ns, m)
  }

  /**
   * The namespace of a user event with a handler; otherwise the event is answered
   * (or dropped) here and the result is undefined.
   */
  private eventTarget(m: Message.Message): NSConnImpl | undefined {
    const isAsk = m.wait.length > 0
    const ns = this.nsMap.get(m.namespace)
    if (ns === undefined) {
      // unlike Go neffos, an ask on a namespace the connection never connected gets an answer
      if (isAsk) this.writeError(m, "bad namespace")
      return undefined
    }
    if (m.room.length > 0 && !ns.roomMap.has(m.room)) {
      if (isAsk) this.writeError(m, "bad room")
      return undefined
    }
    if (this.handlerFor(m.namespace, m.event) === undefined) {
      if (isAsk && this.config.answerUnrepliedAsks) this.writeError(m, "unknown event")
      if (this.config.logsDebug) {
        this.config.fork(
          Effect.logDebug(`effect-neffos: no handler for event ${JSON.stringify(m.event)}`).pipe(
            Effect.annotateLogs({ connection: this.id, namespace: m.namespace, room: m.room, event: m.event })
          )
        )
      }
      return undefined
    }
    return ns
  }

  /**
   * The reader's fast path, when nothing else is waiting to be handled: a user
   * event whose handler returns an already completed Effect (`Effect.succeed`,
   * `Effect.fail`, ...) is answered at once, with no fiber. Anything else goes to
   * the dispatcher as usual. Returns false when the message was not taken.
   */
  private handleNow(m: Message.Message): boolean {
    if (m.native || m.event.charCodeAt(0) === 95 /* "_": system events */) return false
    const ns = this.eventTarget(m)
    if (ns !== undefined) {
      let effect: Effect.Effect<void | Reply.Reply, unknown>
      try {
        effect = this.handlerFor(m.namespace, m.event)!(ns, m) as Effect.Effect<void | Reply.Reply, unknown>
      } catch (defect) {
        effect = Effect.die(defect)
      }
      if (Exit.isExit(effect)) {
        const after = this.handleExit(m, effect as Exit.Exit<void | Reply.Reply, unknown>)
        if (after !== Effect.void) this.config.fork(after)
      } else {
        this.enqueue(Effect.flatMap(Effect.exit(effect), (exit) => this.handleExit(m, exit)))
        return true
      }
    }
    this.outbox.flushDirty()
    return true
  }

  private runHandler(handler: AnyHandler, ns: NSConnImpl, m: Message.Message): Effect.Effect<void> {
    return invoke(handler, ns, m).pipe(
      Effect.exit,
      Effect.flatMap((exit) => this.handleExit(m, exit))
    )
  }

  /** Answers what a handler's outcome asks for; the result logs a defect. */
  private handleExit(m: Message.Message, exit: Exit.Exit<void | Reply.Reply, unknown>): Effect.Effect<void> {
    if (Exit.isSuccess(exit)) {
      const value = exit.value
      if (Reply.isReply(value)) {
        this.write(this.encodeReply(m, value.body))
      } else if (m.wait.length > 0 && this.config.answerUnrepliedAsks && !m.native) {
        this.writeEmptyReply(m.wait)
      }
      return Effect.void
    }
    const failure = failureOf(exit.cause)
    if (failure === undefined) return Effect.void
    const { log, text } = this.describeFailure(failure, m.namespace, m.room, m.event)
    // never answer an error message with an error: two such handlers would ping-pong forever
    if (m.error === undefined && !m.native) this.writeError(m, text)
    return log
  }

  /** The error text of a failed handler (safe by default, or the application's `errorText`) and its log line. */
  describeFailure(
    failure: Events.HandlerFailure,
    namespace: string,
    room: string,
    event: string
  ): { readonly text: string; readonly log: Effect.Effect<void> } {
    const described = describe(failure, { connectionId: this.id, namespace, room, event }, this.config.errorText)
    // an expected failure is logged at debug level: skip the fiber when nobody would see it
    return failure._tag === "Fail" && !this.config.logsDebug ? { text: described.text, log: Effect.void } : described
  }

  private encodeReply(m: Message.Message, body: string | Uint8Array): Frame {
    if (m.native) return body
    return msg.encode(
      msg.unsafeMake(m.namespace, m.room, m.event, body, undefined, typeof body !== "string", m.wait, false, false)
    )
  }

  // ---------------------------------------------------------------------------
  // membership state (synchronous; the hooks keep the server index in step)
  // ---------------------------------------------------------------------------

  addNamespace(ns: NSConnImpl): void {
    this.nsMap.set(ns.namespace, ns)
    this.config.hooks.namespaceChanged(ns, true)
    const waiters = this.namespaceWaiters_?.get(ns.namespace)
    if (waiters !== undefined) {
      this.namespaceWaiters.delete(ns.namespace)
      for (const waiter of waiters) waiter(ns)
    }
  }

  /** Completes once the namespace is connected (now, or when the peer connects it). */
  waitServerConnect(namespace: string): Effect.Effect<NSConnImpl, Errors.ConnectionClosed> {
    return Effect.async<NSConnImpl, Errors.ConnectionClosed>((resume) => {
      const ns = this.nsMap.get(namespace)
      if (ns !== undefined) return resume(Effect.succeed(ns))
      if (this.phase === CLOSED) return resume(Effect.fail(this.closedError))
      const waiter = (ns: NSConnImpl) => resume(Effect.succeed(ns))
      const waiters = this.namespaceWaiters.get(namespace) ?? []
      waiters.push(waiter)
      this.namespaceWaiters.set(namespace, waiters)
      return Effect.sync(() => {
        const list = this.namespaceWaiters.get(namespace)
        if (list !== undefined) list.splice(list.indexOf(waiter), 1)
      })
    }).pipe(Effect.raceFirst(Effect.zipRight(this.awaitClose, Effect.fail(this.closedError))))
  }

  get state(): Stream.Stream<ConnectionState> {
    return this.clientState!.changes
  }

  get currentState(): Effect.Effect<ConnectionState> {
    return SubscriptionRef.get(this.clientState!)
  }

  removeNamespace(ns: NSConnImpl): void {
    if (this.nsMap.get(ns.namespace) !== ns) return
    for (const room of ns.roomMap.values()) this.removeRoom(room)
    ns.removed = true
    this.nsMap.delete(ns.namespace)
    this.config.hooks.namespaceChanged(ns, false)
  }

  addRoom(room: RoomImpl): void {
    room.ns.roomMap.set(room.name, room)
    this.roomCount++
    this.config.hooks.roomChanged(room, true)
  }

  removeRoom(room: RoomImpl): void {
    if (room.ns.roomMap.get(room.name) !== room) return
    room.removed = true
    room.ns.roomMap.delete(room.name)
    this.roomCount--
    this.config.hooks.roomChanged(room, false)
  }

  /** Leaves every room of `ns` locally, firing the forced leave events. */
  private leaveAllForced(ns: NSConnImpl): Effect.Effect<void> {
    return Effect.forEach(
      Array.from(ns.roomMap.values()),
      (room) =>
        Effect.zipRight(
          this.fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeave, true, true)),
          Effect.suspend(() => {
            this.removeRoom(room)
            return this.fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeft, true, true))
          })
        ),
      { discard: true }
    )
  }

  // ---------------------------------------------------------------------------
  // outgoing requests
  // ---------------------------------------------------------------------------

  newToken(): string {
    return this.config.side === "server" ? msg.serverToken() : msg.clientToken()
  }

  /** A system request (connect, disconnect, join, leave) with a fresh token. */
  private requestMessage(namespace: string, room: string, event: string): Message.Message {
    return msg.unsafeMake(namespace, room, event, "", undefined, false, this.newToken(), false, false)
  }

  /**
   * Sends `request` and waits for the reply carrying its token. `commit` runs
   * synchronously in the reader when a successful reply arrives, before any later
   * frame is handled.
   */
  sendRequest(
    request: Message.Message,
    timeout: Duration.DurationInput | undefined,
    commit?: (reply: Message.Message) => void
  ): Effect.Effect<
    Message.Message,
    Errors.AskTimeout | Errors.RemoteError | Errors.ConnectionClosed | Errors.Reconnecting | Errors.BadNamespace
  > {
    const duration = timeout === undefined ? this.config.askTimeout : Duration.decode(timeout)
    const wait = request.wait
    type Outcome = Effect.Effect<
      Message.Message,
      Errors.RemoteError | Errors.ConnectionClosed | Errors.Reconnecting | Errors.BadNamespace
    >
    // written by the fiber that asks, before it waits: requests leave in the order they are made
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        if (this.phase === CLOSED || this.phase === DOWN) return Effect.fail(this.unavailableError)
        if (this.phase === ACCEPTING) this.accept()
        let outcome: Outcome | undefined
        let resume: ((outcome: Outcome) => void) | undefined
        this.pending.set(wait, (reply) => {
          let result: Outcome
          if (reply === undefined) {
            result = Effect.fail(this.unavailableError)
          } else if (reply.error === "bad namespace") {
            // neffos's own text for a namespace the peer does not declare or has not connected
            result = Effect.fail(new Errors.BadNamespace({ namespace: request.namespace, reason: "RefusedByPeer" }))
          } else if (reply.error !== undefined && reply.error.length > 0) {
            result = Effect.fail(
              new Errors.RemoteError({
                text: reply.error,
                namespace: request.namespace,
                room: request.room,
                event: request.event
              })
            )
          } else {
            if (commit !== undefined) commit(reply)
            result = Effect.succeed(reply)
          }
          if (resume === undefined) outcome = result
          else resume(result)
        })
        if (!this.write(msg.encode(request))) {
          this.pending.delete(wait)
          return Effect.fail(this.unavailableError)
        }
        const reply = Effect.async<
          Message.Message,
          Errors.RemoteError | Errors.ConnectionClosed | Errors.Reconnecting | Errors.BadNamespace
        >(
          (resumeWith) => {
            if (outcome !== undefined) return resumeWith(outcome)
            resume = resumeWith
            return Effect.sync(() => {
              resume = undefined
            })
          }
        )
        return restore(Effect.timeoutFail(reply, {
          duration,
          onTimeout: () =>
            new Errors.AskTimeout({ namespace: request.namespace, event: request.event, timeout: duration })
        })).pipe(Effect.ensuring(Effect.sync(() => this.pending.delete(wait))))
      })
    )
  }

  connect(
    namespace: string,
    options?: RequestOptions,
    gated = true
  ): Effect.Effect<NSConnImpl, Errors.RequestError | Errors.Offline> {
    const timeout = options?.timeout
    return Effect.suspend((): Effect.Effect<NSConnImpl, Errors.RequestError | Errors.Offline> => {
      if (this.phase === CLOSED) return Effect.fail(this.closedError)
      if (gated && this.gate !== undefined) {
        return this.held(this.gate, this.connect(namespace, options, false), namespace, OnNamespaceConnect, timeout)
      }
      if (!this.config.events.has(namespace)) {
        return Effect.fail(new Errors.BadNamespace({ namespace, reason: "NotDeclared" }))
      }
      const existing = this.nsMap.get(namespace)
      if (existing !== undefined) return Effect.succeed(existing)
      const inflight = this.connecting.get(namespace)
      if (inflight !== undefined) return Deferred.await(inflight)
      const done = Deferred.unsafeMake<NSConnImpl, Errors.RequestError | Errors.Reconnecting>(undefined as any)
      this.connecting.set(namespace, done)
      return this.doConnect(namespace, timeout).pipe(
        Effect.onExit((exit) =>
          Effect.suspend(() => {
            this.connecting.delete(namespace)
            return Deferred.done(done, exit)
          })
        )
      )
    })
  }

  private doConnect(
    namespace: string,
    timeout: Duration.DurationInput | undefined
  ): Effect.Effect<NSConnImpl, Errors.RequestError | Errors.Reconnecting> {
    const ns = new NSConnImpl(this, namespace)
    return Effect.gen(this, function*() {
      const veto = yield* this.fire(ns, lifecycle(namespace, "", OnNamespaceConnect, true, false))
      if (veto !== undefined) {
        return yield* Effect.fail(new Errors.Vetoed({ event: OnNamespaceConnect, namespace, room: "", text: veto }))
      }
      yield* this.sendRequest(
        this.requestMessage(namespace, "", OnNamespaceConnect),
        timeout,
        () => {
          if (this.phase !== CLOSED && !this.nsMap.has(namespace)) this.addNamespace(ns)
        }
      )
      // the ...ed event of a request this side made runs on the requesting fiber, once committed
      yield* this.fire(ns, lifecycle(namespace, "", OnNamespaceConnected, true, false))
      return this.nsMap.get(namespace) ?? ns
    })
  }

  disconnectNamespace(
    ns: NSConnImpl,
    timeout?: Duration.DurationInput | undefined,
    gated = true
  ): Effect.Effect<void, Errors.RequestError | Errors.Offline> {
    return Effect.gen(this, function*() {
      if (this.phase === CLOSED) return yield* Effect.fail(this.closedError)
      if (gated && this.gate !== undefined) {
        const again = this.disconnectNamespace(ns, timeout, false)
        return yield* this.held(this.gate, again, ns.namespace, OnNamespaceDisconnect, timeout)
      }
      if (ns.removed) return
      yield* this.sendRequest(
        this.requestMessage(ns.namespace, "", OnNamespaceDisconnect),
        timeout
      )
      yield* this.leaveAllForced(ns)
      this.removeNamespace(ns)
      yield* this.fire(ns, lifecycle(ns.namespace, "", OnNamespaceDisconnect, true, false))
    })
  }

  joinRoom(
    ns: NSConnImpl,
    name: string,
    timeout?: Duration.DurationInput | undefined,
    gated = true
  ): Effect.Effect<RoomImpl, Errors.RequestError | Errors.Offline> {
    return Effect.gen(this, function*() {
      if (this.phase === CLOSED) return yield* Effect.fail(this.closedError)
      if (gated && this.gate !== undefined) {
        return yield* this.held(this.gate, this.joinRoom(ns, name, timeout, false), ns.namespace, OnRoomJoin, timeout)
      }
      if (ns.removed) {
        return yield* Effect.fail(new Errors.BadNamespace({ namespace: ns.namespace, reason: "NotConnected" }))
      }
      const existing = ns.roomMap.get(name)
      if (existing !== undefined) return existing
      const room = new RoomImpl(ns, name)
      const veto = yield* this.fire(ns, lifecycle(ns.namespace, name, OnRoomJoin, true, false))
      if (veto !== undefined) {
        return yield* Effect.fail(
          new Errors.Vetoed({ event: OnRoomJoin, namespace: ns.namespace, room: name, text: veto })
        )
      }
      yield* this.sendRequest(
        this.requestMessage(ns.namespace, name, OnRoomJoin),
        timeout,
        () => {
          if (this.phase !== CLOSED && !ns.removed && !ns.roomMap.has(name)) this.addRoom(room)
        }
      )
      yield* this.fire(ns, lifecycle(ns.namespace, name, OnRoomJoined, true, false))
      return ns.roomMap.get(name) ?? room
    })
  }

  leaveRoom(
    room: RoomImpl,
    timeout?: Duration.DurationInput | undefined,
    gated = true
  ): Effect.Effect<void, Errors.RequestError | Errors.Offline> {
    return Effect.gen(this, function*() {
      if (this.phase === CLOSED) return yield* Effect.fail(this.closedError)
      if (gated && this.gate !== undefined) {
        return yield* this.held(
          this.gate,
          this.leaveRoom(room, timeout, false),
          room.ns.namespace,
          OnRoomLeave,
          timeout
        )
      }
      const ns = room.ns
      if (room.removed) return yield* Effect.fail(new Errors.BadRoom({ namespace: ns.namespace, room: room.name }))
      const veto = yield* this.fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeave, true, false))
      if (veto !== undefined) {
        return yield* Effect.fail(
          new Errors.Vetoed({ event: OnRoomLeave, namespace: ns.namespace, room: room.name, text: veto })
        )
      }
      yield* this.sendRequest(
        this.requestMessage(ns.namespace, room.name, OnRoomLeave),
        timeout,
        () => this.removeRoom(room)
      )
      yield* this.fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeft, true, false))
    })
  }

  // ---------------------------------------------------------------------------
  // closing
  // ---------------------------------------------------------------------------

  /**
   * Closes the connection with `code`. With `drain`, frames already in the outbox
   * are written first.
   */
  unsafeClose(code: number, reason: string, drain = true): void {
    if (this.phase === CLOSED) return
    if (drain) this.outbox.flushNow()
    // a peer that stopped reading would never see the close frame: do not wait for it
    if (!drain && this.socket.bufferedAmount() > this.outbox.highWaterMark) this.socket.terminate()
    else this.socket.close(code, reason)
    this.terminated(code, reason)
  }

  /** Drops the socket without a close frame (a dead peer would never read one). */
  unsafeTerminate(code: number, reason: string): void {
    if (this.phase === CLOSED) return
    this.socket.terminate()
    this.terminated(code, reason)
  }

  /** The socket is gone (or we closed it): run the close sequence once. */
  private terminated(code: number, reason: string): void {
    if (this.phase === CLOSED) return
    const waiter = this.ackWaiter
    this.ackWaiter = undefined
    waiter?.({ _tag: "Closed", code, reason })
    if (this.phase !== DOWN && !this.closedByUser && this.config.hooks.lost?.(this, code, reason) === true) {
      this.phase = DOWN
      this.closeCode = code
      this.closeReason = reason
      this.dropSocketState()
      return
    }
    this.phase = CLOSED
    this.closeCode = code
    this.closeReason = reason
    this.cancelTimers()
    const dispatcher = this.dropSocketState()
    this.config.fork(this.closeSequence(dispatcher))
  }

  private cancelTimers(): void {
    if (this.handshakeTimer !== undefined) this.handshakeTimer.value = undefined
    if (this.pingTimer !== undefined) this.pingTimer.value = undefined
    if (this.pongTimer !== undefined) this.pongTimer.value = undefined
    this.handshakeTimer = this.pingTimer = this.pongTimer = undefined
  }

  /** What dies with a socket: the outbox, pending asks, queued messages, the running handler. */
  private dropSocketState(): Fiber.RuntimeFiber<void> | undefined {
    this.outbox.close()
    const pending = this.pending_ === undefined ? [] : Array.from(this.pending_.values())
    this.pending_?.clear()
    for (const reply of pending) reply(undefined)
    this.inbound = []
    this.inboundHead = 0
    this.paused = false
    const dispatcher = this.dispatcher
    this.dispatcher = undefined
    this.dispatching = false
    if (this.phase === DOWN && dispatcher !== undefined) this.config.fork(Fiber.interrupt(dispatcher))
    return dispatcher
  }

  private closeSequence(dispatcher: Fiber.RuntimeFiber<void> | undefined): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      if (dispatcher !== undefined) yield* Fiber.interrupt(dispatcher)
      for (const ns of Array.from(this.nsMap.values())) {
        yield* this.leaveAllForced(ns)
        this.removeNamespace(ns)
        yield* this.fire(ns, lifecycle(ns.namespace, "", OnNamespaceDisconnect, true, true))
      }
      yield* this.config.hooks.closed(this)
      this.closeSequenceDone = true
      if (this.scope_ !== undefined) yield* Scope.close(this.scope_, Exit.void)
    }).pipe(Effect.ensuring(Deferred.done(this.closedLatch, Exit.void)))
  }
}

class CurrentSocketOnly implements SocketHandlers {
  constructor(private readonly conn: ConnImpl, private readonly socket: RawSocket) {}
  onFrame(frame: Frame): void {
    if (this.socket === this.conn.socket) this.conn.onFrame(frame)
  }
  onPong(): void {
    this.conn.onPong()
  }
  onClose(code: number, reason: string): void {
    if (this.socket === this.conn.socket) this.conn.onClose(code, reason)
  }
}

type EmitError = Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom | Errors.Offline

/** @internal */
export class NSConnImpl {
  private roomMap_: Map<string, RoomImpl> | undefined
  removed = false
  constructor(readonly conn: ConnImpl, readonly namespace: string) {}

  get roomMap(): Map<string, RoomImpl> {
    return this.roomMap_ ??= new Map()
  }

  private check(room: string): Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom | undefined {
    if (this.conn.closed) return this.conn.closedError
    if (this.removed) return new Errors.BadNamespace({ namespace: this.namespace, reason: "NotConnected" })
    if (room.length > 0) {
      const r = this.roomMap.get(room)
      if (r === undefined) return new Errors.BadRoom({ namespace: this.namespace, room })
    }
    return undefined
  }

  emitIn(
    room: string,
    event: string,
    body: string | Uint8Array,
    binary: boolean,
    gated = true
  ): Effect.Effect<void, EmitError> {
    return Effect.suspend((): Effect.Effect<void, EmitError> => {
      const error = this.check(room)
      if (error !== undefined) return Effect.fail(error)
      const gate = this.conn.gate
      if (gated && gate !== undefined) return gate.hold(this.emitIn(room, event, body, binary, false))
      const frame = msg.encode(
        msg.unsafeMake(
          this.namespace,
          room,
          event,
          binary && typeof body === "string" ? new TextEncoder().encode(body) : body,
          undefined,
          binary || typeof body !== "string",
          "",
          false,
          false
        )
      )
      return this.conn.write(frame) ? Effect.void : Effect.fail(this.conn.unavailableError)
    })
  }

  askIn(
    room: string,
    event: string,
    body: string | Uint8Array,
    timeout: Duration.DurationInput | undefined,
    gated = true
  ): Effect.Effect<Message.Message, Errors.AskError | Errors.Offline> {
    return Effect.suspend((): Effect.Effect<Message.Message, Errors.AskError | Errors.Offline> => {
      const error = this.check(room)
      if (error !== undefined) return Effect.fail(error)
      const gate = this.conn.gate
      if (gated && gate !== undefined) {
        return this.conn.held(gate, this.askIn(room, event, body, timeout, false), this.namespace, event, timeout)
      }
      return this.conn.sendRequest(
        msg.unsafeMake(
          this.namespace,
          room,
          event,
          body,
          undefined,
          typeof body !== "string",
          this.conn.newToken(),
          false,
          false
        ),
        timeout
      )
    })
  }

  emit(event: string, body: string | Uint8Array = ""): Effect.Effect<void, Exclude<EmitError, Errors.BadRoom>> {
    // without a room there is no BadRoom
    return this.emitIn("", event, body, false) as Effect.Effect<void, Exclude<EmitError, Errors.BadRoom>>
  }

  emitBinary(event: string, body: string | Uint8Array): Effect.Effect<void, Exclude<EmitError, Errors.BadRoom>> {
    return this.emitIn("", event, body, true) as Effect.Effect<void, Exclude<EmitError, Errors.BadRoom>>
  }

  ask(event: string, body: string | Uint8Array = "", options?: RequestOptions) {
    return this.askIn("", event, body, options?.timeout)
  }

  joinRoom(room: string, options?: RequestOptions) {
    return this.conn.joinRoom(this, room, options?.timeout)
  }

  room(name: string): Effect.Effect<RoomImpl, Errors.BadRoom> {
    return Effect.suspend(() => {
      const room = this.roomMap.get(name)
      return room === undefined
        ? Effect.fail(new Errors.BadRoom({ namespace: this.namespace, room: name }))
        : Effect.succeed(room)
    })
  }

  get rooms(): Effect.Effect<ReadonlyArray<RoomImpl>> {
    return Effect.sync(() => Array.from(this.roomMap.values()))
  }

  leaveAll(options?: RequestOptions) {
    return Effect.forEach(
      Array.from(this.roomMap.values()),
      (room) => this.conn.leaveRoom(room, options?.timeout),
      { discard: true }
    )
  }

  disconnect(options?: RequestOptions) {
    return this.conn.disconnectNamespace(this, options?.timeout)
  }

  broadcastMessage(message: Conn.Outgoing, except: ConnImpl | undefined): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.conn.config.hooks.broadcast(
        msg.make({ ...message, namespace: message.namespace ?? this.namespace, wait: "", isNoOp: false }),
        message.to,
        except
      )
    )
  }

  broadcast(event: string | Conn.Outgoing, body?: string | Uint8Array): Effect.Effect<void> {
    return this.broadcastMessage(typeof event === "string" ? { event, body } : event, undefined)
  }

  broadcastOthers(event: string | Conn.Outgoing, body?: string | Uint8Array): Effect.Effect<void> {
    return this.broadcastMessage(typeof event === "string" ? { event, body } : event, this.conn)
  }
}

/** @internal */
export class RoomImpl {
  removed = false
  constructor(readonly ns: NSConnImpl, readonly name: string) {}

  get nsConn(): NSConnImpl {
    return this.ns
  }

  broadcast(event: string | Conn.Outgoing, body?: string | Uint8Array): Effect.Effect<void> {
    return this.ns.broadcastMessage(this.inRoom(event, body), undefined)
  }

  broadcastOthers(event: string | Conn.Outgoing, body?: string | Uint8Array): Effect.Effect<void> {
    return this.ns.broadcastMessage(this.inRoom(event, body), this.ns.conn)
  }

  private inRoom(event: string | Conn.Outgoing, body: string | Uint8Array | undefined): Conn.Outgoing {
    return typeof event === "string"
      ? { room: this.name, event, body }
      : { ...event, namespace: this.ns.namespace, room: this.name }
  }

  emit(event: string, body: string | Uint8Array = "") {
    return this.ns.emitIn(this.name, event, body, false)
  }

  emitBinary(event: string, body: string | Uint8Array) {
    return this.ns.emitIn(this.name, event, body, true)
  }

  ask(event: string, body: string | Uint8Array = "", options?: RequestOptions) {
    return this.ns.askIn(this.name, event, body, options?.timeout)
  }

  leave(options?: RequestOptions) {
    return this.ns.conn.leaveRoom(this, options?.timeout)
  }
}

Object.defineProperty(ConnImpl.prototype, ConnTypeId, { value: ConnTypeId })
