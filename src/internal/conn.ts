/**
 * The core of one neffos connection, either side: its phases, the reader (decode,
 * replies to this side's requests, names over the limit), the reply table and
 * requests, writes, the per-connection store and scope, the membership state, and
 * the close. What it does with a message (dispatch.ts), with namespaces and rooms
 * (namespace.ts, room.ts) comes in through its `Protocol`; what only one side does
 * is in serverConn.ts and clientConn.ts.
 *
 * Over 450 lines on purpose: the phase, the outbox, the reply table and the inbound
 * queue are shared by the reader, the writers, the requests and the close, and one
 * class keeps them private to it and an idle connection at one object.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Scope from "effect/Scope"
import type * as Conn from "../Conn.js"
import * as Errors from "../Errors.js"
import type * as Events from "../Events.js"
import * as Message from "../Message.js"
import {
  type AnyHandler,
  type ConnConfig,
  type Gate,
  type JoinRecovery,
  type NamespaceState,
  type OutboxConfig,
  Phase,
  type RequestFailure,
  type RoomState,
  type Task
} from "./connConfig.js"
import { describe } from "./failure.js"
import type { Fifo } from "./fifo.js"
import * as msg from "./message.js"
import { frameLength } from "./observe.js"
import { type Frame, nextTurn, OfferResult, Outbox } from "./outbox.js"
import { isTracedEmit, untraceEmit } from "./trace.js"
import type { RawSocket, SocketHandlers } from "./transport.js"

type PendingReply = (reply: Message.Message | undefined) => void

const ConnTypeId: Conn.TypeId = Symbol.for("effect-neffos/Conn") as Conn.TypeId

let nextKey = 0

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

/** @internal */
export abstract class ConnImpl<NS extends NamespaceState> {
  declare readonly [ConnTypeId]: Conn.TypeId
  readonly key = nextKey++
  outbox: Outbox
  readonly nsMap = new Map<string, NS>()
  // what most connections never use is created on first use: an idle connection stays small
  private store_: Map<unknown, unknown> | undefined
  private pending_: Map<string, PendingReply> | undefined
  private closedLatch_: Deferred.Deferred<void> | undefined
  private scope_: Scope.CloseableScope | undefined
  private closeSequenceDone = false
  /** the close sequence ended: `awaitClose` completes at once (its latch is made only when awaited) */
  private closeDone = false
  private socketClosed = false
  private socketClosedWaiter: (() => void) | undefined
  /** namespace.ts: this side's connects under way, so that a second one waits for the first */
  connecting: Map<string, Deferred.Deferred<any, Errors.RequestError | Errors.Reconnecting>> | undefined
  /** dispatch.ts: messages and tasks waiting for the dispatcher, the fiber running them */
  inbound: Fifo<Task> | undefined
  dispatcher: Fiber.RuntimeFiber<void> | undefined
  dispatching = false
  /** the socket is not read while too many messages wait */
  paused = false
  phase: number
  closeCode = 0
  closeReason = ""
  invalidFrames = 0
  /** rooms joined, across namespaces */
  roomCount = 0

  constructor(
    public id: string,
    public socket: RawSocket,
    readonly config: ConnConfig,
    private readonly outboxConfig: OutboxConfig,
    readonly request: Conn.Request,
    public reconnectTries: number
  ) {
    this.outbox = this.makeOutbox(socket)
    this.phase = config.native === "only" ? Phase.Open : Phase.Handshake
  }

  protected makeOutbox(socket: RawSocket): Outbox {
    const { capacity, highWaterMark, maxBytes, strategy, window } = this.outboxConfig
    return new Outbox(capacity, strategy, highWaterMark, maxBytes, socket, this, window)
  }

  // ---------------------------------------------------------------------------
  // what each side does
  // ---------------------------------------------------------------------------

  /** A frame before the connection is open: the handshake. */
  protected abstract handshakeFrame(frame: Frame): void
  /** A namespace or room was added or removed (the server keeps its index in step). */
  protected namespaceChanged(_ns: NS, _added: boolean): void {}
  protected roomChanged(_room: RoomState, _added: boolean): void {}
  /** The socket is gone without this side closing: true keeps the connection for a reconnect. */
  protected lost(_code: number, _reason: string): boolean {
    return false
  }
  /**
   * After the forced events of the close. What it does at once is done when it is called; the Effect
   * is what is left (`Effect.void` when nothing is, so the close needs no fiber).
   */
  protected onClosed(): Effect.Effect<void> {
    return Effect.void
  }
  /** A frame was dropped by the outbox's policy. */
  protected dropped(): void {}
  /** Client side, while reconnecting. */
  get gate(): Gate | undefined {
    return undefined
  }
  /** Server side: a handler's broadcast (`ns.broadcast`, `room.broadcastOthers`, ...). */
  broadcastFrom(
    _message: Message.Message,
    _to: string | undefined,
    _except: ConnImpl<any> | undefined
  ): Effect.Effect<void> {
    return Effect.void
  }
  /** Server side: a join request of the peer that resumes a recoverable room (recovery.ts). */
  joinRecovery(_request: Message.Message): JoinRecovery | undefined {
    return undefined
  }
  /** The request by which this side joins a room (a client that recovers puts its position in it). */
  joinRequest(namespace: string, room: string): Message.Message {
    return this.requestMessage(namespace, room, Message.OnRoomJoin)
  }
  /** This side's join request was answered (with the room's position, for a client that recovers). */
  joinAnswered(_namespace: string, _room: string, _reply: Message.Message): void {}
  /** After a connect reply, before `_OnNamespaceConnected` may send anything. */
  get afterConnectReply(): Effect.Effect<void> {
    return this.written
  }

  // ---------------------------------------------------------------------------
  // state
  // ---------------------------------------------------------------------------

  get store(): Map<unknown, unknown> {
    return this.store_ ??= new Map()
  }

  private get pending(): Map<string, PendingReply> {
    return this.pending_ ??= new Map()
  }

  private get closedLatch(): Deferred.Deferred<void> {
    if (this.closedLatch_ === undefined) {
      this.closedLatch_ = Deferred.unsafeMake<void>(FiberId.none)
      if (this.closeDone) Deferred.unsafeDone(this.closedLatch_, Exit.void)
    }
    return this.closedLatch_
  }

  get isOpen(): boolean {
    return this.phase === Phase.Open || this.phase === Phase.Accepting
  }

  get closed(): boolean {
    return this.phase === Phase.Closed
  }

  get closedError(): Errors.ConnectionClosed {
    return new Errors.ConnectionClosed({ id: this.id })
  }

  /** Why nothing can be sent now: `Reconnecting` while a client is down, otherwise closed. */
  get unavailableError(): Errors.ConnectionClosed | Errors.Reconnecting {
    const gate = this.gate
    return this.phase === Phase.Down && gate !== undefined ? gate.error() : this.closedError
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

  handlerFor(namespace: string, event: string): AnyHandler | undefined {
    const events = this.config.events.get(namespace)
    if (events === undefined) return undefined
    return events.get(event) ?? events.get(Message.OnAnyEvent)
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

  // ---------------------------------------------------------------------------
  // what both public connection interfaces offer
  // ---------------------------------------------------------------------------

  get wasReconnected(): boolean {
    return this.reconnectTries > 0
  }

  get isClosed(): Effect.Effect<boolean> {
    return Effect.sync(() => this.phase === Phase.Closed)
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

  namespace(name: string): Effect.Effect<NS, Errors.BadNamespace> {
    return Effect.suspend(() => {
      const ns = this.nsMap.get(name)
      return ns === undefined
        ? Effect.fail(new Errors.BadNamespace({ namespace: name, reason: "NotConnected" }))
        : Effect.succeed(ns)
    })
  }

  get namespaces(): Effect.Effect<ReadonlyArray<NS>> {
    return Effect.sync(() => Array.from(this.nsMap.values()))
  }

  connect(namespace: string, options?: Conn.RequestOptions): Effect.Effect<NS, Errors.RequestError | Errors.Offline> {
    return this.config.protocol.connect(this, namespace, options)
  }

  disconnectAll(options?: Conn.RequestOptions): Effect.Effect<void, Errors.RequestError | Errors.Offline> {
    return Effect.suspend(() =>
      Effect.forEach(Array.from(this.nsMap.values()), (ns) => this.config.protocol.disconnect(ns, options), {
        discard: true
      })
    )
  }

  close(options?: { readonly code?: number; readonly reason?: string }): Effect.Effect<void> {
    return Effect.sync(() => this.unsafeClose(options?.code ?? 1000, options?.reason ?? ""))
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
  // the reader: the callbacks a transport calls (the connection itself, no closures)
  // ---------------------------------------------------------------------------

  get handlers(): SocketHandlers {
    return this
  }

  onPong(): void {}

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

  /** A new socket (a client's reconnect). */
  protected resetSocket(socket: RawSocket): void {
    this.socket = socket
    this.outbox = this.makeOutbox(socket)
    this.socketClosed = false
  }

  onFrame(frame: Frame): void {
    if (this.phase === Phase.Open || this.phase === Phase.Accepting) this.onMessageFrame(frame as string | Uint8Array)
    else if (this.phase === Phase.Handshake) this.handshakeFrame(frame)
  }

  private onMessageFrame(frame: string | Uint8Array): void {
    let decoded = msg.decode(frame, this.config.native === "none" ? undefined : { native: this.config.native })
    if (decoded._tag === "InvalidFrame") {
      this.invalidFrames++
      return
    }
    this.config.observe?.onReceived(decoded.namespace, frameLength(frame))
    let wait = decoded.wait
    if (wait.length > 0 && this.config.side === "server" && isTracedEmit(wait)) {
      decoded = untraceEmit(decoded)
      wait = ""
    }
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
    this.config.protocol.receive(this, decoded)
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
  // writing
  // ---------------------------------------------------------------------------

  /** Offers a frame to the outbox; false when the connection is closed. */
  write(frame: Frame): boolean {
    const result = this.outbox.put(frame)
    if (result === OfferResult.Dropped) this.dropped()
    return result !== OfferResult.Closed && result !== OfferResult.Overflow
  }

  /**
   * Offers a reply or a request: it does not wait for a flush window; it and what
   * the window held leave at the end of the turn.
   */
  writeExpedited(frame: Frame): boolean {
    const result = this.outbox.putExpedited(frame)
    if (result === OfferResult.Dropped) this.dropped()
    return result !== OfferResult.Closed && result !== OfferResult.Overflow
  }

  /** The outbox overflowed (strategy `disconnect`). */
  onOutboxOverflow(): void {
    this.dropped()
    this.unsafeClose(1008, "slow consumer", false)
  }

  /** Completes once everything queued so far was handed to the socket, one event-loop turn later. */
  get written(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      this.outbox.onEmpty(() => nextTurn(() => resume(Effect.void)))
    })
  }

  writeEmptyReply(wait: string): void {
    this.writeExpedited(msg.emptyReply(wait))
  }

  writeError(request: Message.Message, text: string): void {
    const frame = msg.encode(
      msg.unsafeMake(request.namespace, request.room, request.event, "", text, false, request.wait, false, false)
    )
    this.config.observe?.onSent(request.namespace, 1, frameLength(frame))
    this.writeExpedited(frame)
  }

  // ---------------------------------------------------------------------------
  // requests: a message with a token, and its reply
  // ---------------------------------------------------------------------------

  newToken(): string {
    return this.config.side === "server" ? msg.serverToken() : msg.clientToken()
  }

  /** A system request (connect, disconnect, join, leave) with a fresh token. */
  requestMessage(namespace: string, room: string, event: string): Message.Message {
    return msg.unsafeMake(namespace, room, event, "", undefined, false, this.newToken(), false, false)
  }

  /** Server side: a request opens a connection that is still accepting (onConnect connects it). */
  protected beforeRequest(): void {}

  /**
   * Sends `request` and waits for the reply carrying its token. `commit` runs
   * synchronously in the reader when a successful reply arrives, before any later
   * frame is handled. The request is written by the fiber that asks, before it
   * waits: requests leave in the order they are made.
   */
  sendRequest(
    request: Message.Message,
    timeout: Duration.DurationInput | undefined,
    commit?: (reply: Message.Message) => void
  ): Effect.Effect<Message.Message, RequestFailure> {
    const duration = timeout === undefined ? this.config.askTimeout : Duration.decode(timeout)
    const wait = request.wait
    type Outcome = Effect.Effect<Message.Message, Exclude<RequestFailure, Errors.AskTimeout>>
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        if (this.phase === Phase.Closed || this.phase === Phase.Down) return Effect.fail(this.unavailableError)
        this.beforeRequest()
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
        const frame = msg.encode(request)
        this.config.observe?.onSent(request.namespace, 1, frameLength(frame))
        if (!this.writeExpedited(frame)) {
          this.pending.delete(wait)
          return Effect.fail(this.unavailableError)
        }
        const reply = Effect.async<Message.Message, Exclude<RequestFailure, Errors.AskTimeout>>((resumeWith) => {
          if (outcome !== undefined) return resumeWith(outcome)
          resume = resumeWith
          return Effect.sync(() => {
            resume = undefined
          })
        })
        return restore(Effect.timeoutFail(reply, {
          duration,
          onTimeout: () =>
            new Errors.AskTimeout({ namespace: request.namespace, event: request.event, timeout: duration })
        })).pipe(Effect.ensuring(Effect.sync(() => this.pending.delete(wait))))
      })
    )
  }

  // ---------------------------------------------------------------------------
  // membership state (synchronous; the server keeps its index in step)
  // ---------------------------------------------------------------------------

  addNamespace(ns: NS): void {
    this.nsMap.set(ns.namespace, ns)
    this.namespaceChanged(ns, true)
  }

  removeNamespace(ns: NS): void {
    if (this.nsMap.get(ns.namespace) !== ns) return
    for (const room of ns.roomMap.values()) this.removeRoom(room)
    ns.removed = true
    this.nsMap.delete(ns.namespace)
    this.namespaceChanged(ns, false)
  }

  addRoom(room: RoomState): void {
    room.ns.roomMap.set(room.name, room)
    this.roomCount++
    this.roomChanged(room, true)
  }

  removeRoom(room: RoomState): void {
    if (room.ns.roomMap.get(room.name) !== room) return
    room.removed = true
    room.ns.roomMap.delete(room.name)
    this.roomCount--
    this.roomChanged(room, false)
  }

  // ---------------------------------------------------------------------------
  // closing
  // ---------------------------------------------------------------------------

  /**
   * Closes the connection with `code`. With `drain`, frames already in the outbox
   * are written first.
   */
  unsafeClose(code: number, reason: string, drain = true): void {
    if (this.phase === Phase.Closed) return
    if (drain) this.outbox.flushNow()
    // a peer that stopped reading would never see the close frame: do not wait for it
    if (!drain && this.socket.bufferedAmount() > this.outbox.highWaterMark) this.socket.terminate()
    else this.socket.close(code, reason)
    this.terminated(code, reason)
  }

  /** Drops the socket without a close frame (a dead peer would never read one). */
  unsafeTerminate(code: number, reason: string): void {
    if (this.phase === Phase.Closed) return
    this.socket.terminate()
    this.terminated(code, reason)
  }

  /** The socket is gone (or we closed it): run the close sequence once, unless a reconnect keeps it. */
  protected terminated(code: number, reason: string): void {
    if (this.phase === Phase.Closed) return
    this.closeCode = code
    this.closeReason = reason
    if (this.phase !== Phase.Down && this.lost(code, reason)) {
      this.phase = Phase.Down
      const dispatcher = this.dropSocketState()
      if (dispatcher !== undefined) this.config.fork(Fiber.interrupt(dispatcher))
      return
    }
    this.phase = Phase.Closed
    const dispatcher = this.dropSocketState()
    // the common close (no handler running, no scope, no forced event with a handler) needs no fiber:
    // the namespaces are let go here, and only what onClosed leaves to do (onDisconnect, say) is forked
    if (dispatcher === undefined && this.scope_ === undefined && this.config.protocol.closeNamespacesNow(this)) {
      const rest = this.onClosed()
      if (rest !== Effect.void) return void this.config.fork(this.closeSequence(undefined, rest))
      this.closeSequenceDone = true
      this.markCloseDone()
      return
    }
    this.config.fork(this.closeSequence(dispatcher, undefined))
  }

  /** What dies with a socket: the outbox, pending asks, queued messages, the running handler. */
  protected dropSocketState(): Fiber.RuntimeFiber<void> | undefined {
    this.outbox.close()
    const pending = this.pending_ === undefined ? [] : Array.from(this.pending_.values())
    this.pending_?.clear()
    for (const reply of pending) reply(undefined)
    this.inbound = undefined
    this.paused = false
    const dispatcher = this.dispatcher
    this.dispatcher = undefined
    this.dispatching = false
    return dispatcher
  }

  private markCloseDone(): void {
    this.closeDone = true
    if (this.closedLatch_ !== undefined) Deferred.unsafeDone(this.closedLatch_, Exit.void)
  }

  /** The close on a fiber; `closed`, when the namespaces were let go already, is what `onClosed` left to do. */
  private closeSequence(
    dispatcher: Fiber.RuntimeFiber<void> | undefined,
    closed: Effect.Effect<void> | undefined
  ): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      if (dispatcher !== undefined) yield* Fiber.interrupt(dispatcher)
      if (closed === undefined) {
        yield* this.config.protocol.closeNamespaces(this)
        yield* this.onClosed()
      } else {
        yield* closed
      }
      this.closeSequenceDone = true
      if (this.scope_ !== undefined) yield* Scope.close(this.scope_, Exit.void)
    }).pipe(Effect.ensuring(Effect.sync(() => this.markCloseDone())))
  }
}

Object.defineProperty(ConnImpl.prototype, ConnTypeId, { value: ConnTypeId })
