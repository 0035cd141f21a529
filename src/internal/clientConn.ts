/**
 * A client's connection: the handshake from its side (send `M`, wait for `A<id>`
 * or `H<reason>`), a new socket after a lost one, the gate while it reconnects, the
 * connection state, and waiting for a server-initiated connect.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type * as Conn from "../Conn.js"
import type * as Errors from "../Errors.js"
import type * as Message from "../Message.js"
import { ConnImpl } from "./conn.js"
import { type ConnConfig, type Gate, Phase, type RoomState } from "./connConfig.js"
import type { NSConnImpl } from "./handles.js"
import * as namespace from "./namespace.js"
import type { Frame } from "./outbox.js"
import type { ClientRecovery } from "./recoveryClient.js"
import type { RawSocket, SocketHandlers } from "./transport.js"

/** @internal */
export type ClientNSConnImpl = NSConnImpl<ClientConn, Errors.Offline>

/** @internal */
export type ConnectionState = Conn.ConnectionState

/** What a handshake got back. @internal */
export type Ack =
  | { readonly _tag: "Id"; readonly id: string }
  | { readonly _tag: "Rejected"; readonly reason: string }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string }
  | { readonly _tag: "Protocol"; readonly frame: string }

/** What the client does when its connection is lost or closed (client.ts). @internal */
export interface ClientConnConfig extends ConnConfig {
  /** the socket is gone without the application closing: true keeps the connection for a reconnect */
  readonly lost: (conn: ClientConn, code: number, reason: string) => boolean
  /** after the close sequence fired its forced events */
  readonly closed: (conn: ClientConn) => Effect.Effect<void>
  readonly state: SubscriptionRef.SubscriptionRef<ConnectionState>
  /** recoverable rooms (recoveryClient.ts), unless the application turned them off */
  readonly recovery: ClientRecovery | undefined
}

/** @internal */
export class ClientConn extends ConnImpl<ClientNSConnImpl> implements Conn.ClientConn {
  declare readonly config: ClientConnConfig
  /** set by `close`: a connection closed by its application does not reconnect */
  closedByUser = false
  private ackWaiter: ((ack: Ack) => void) | undefined
  private gate_: Gate | undefined
  private namespaceWaiters: Map<string, Array<(ns: ClientNSConnImpl) => void>> | undefined

  override get gate(): Gate | undefined {
    return this.gate_
  }

  override set gate(gate: Gate | undefined) {
    this.gate_ = gate
  }

  get down(): boolean {
    return this.phase === Phase.Down
  }

  get state(): Stream.Stream<ConnectionState> {
    return this.config.state.changes
  }

  get currentState(): Effect.Effect<ConnectionState> {
    return SubscriptionRef.get(this.config.state)
  }

  override close(options?: { readonly code?: number; readonly reason?: string }): Effect.Effect<void> {
    return Effect.sync(() => {
      this.closedByUser = true
      if (this.phase === Phase.Down) this.terminated(options?.code ?? 1000, options?.reason ?? "")
      else this.unsafeClose(options?.code ?? 1000, options?.reason ?? "")
    })
  }

  // ---------------------------------------------------------------------------
  // handshake
  // ---------------------------------------------------------------------------

  /** Sends `M` and waits for `A<id>` (the connection is then open) or `H<reason>`. */
  handshake(): Effect.Effect<Ack> {
    return Effect.async<Ack>((resume) => {
      // the socket may have closed between being listened to and now: nothing would wake the waiter
      if (this.phase === Phase.Closed || this.phase === Phase.Down) {
        return resume(Effect.succeed({ _tag: "Closed", code: this.closeCode, reason: this.closeReason }))
      }
      this.ackWaiter = (ack) => resume(Effect.succeed(ack))
      this.socket.write(["M"])
      return Effect.sync(() => {
        this.ackWaiter = undefined
      })
    })
  }

  protected handshakeFrame(frame: Frame): void {
    const waiter = this.ackWaiter
    this.ackWaiter = undefined
    const text = typeof frame === "string" ? frame : ""
    if (text.charCodeAt(0) === 65) {
      this.id = text.slice(1)
      this.phase = Phase.Open
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

  /** A new socket after a lost one; the handshake comes next. */
  attach(socket: RawSocket): void {
    this.resetSocket(socket)
    this.phase = Phase.Handshake
  }

  /** Socket callbacks that ignore a socket this connection no longer uses. */
  handlersFor(socket: RawSocket): SocketHandlers {
    return new CurrentSocketOnly(this, socket)
  }

  /** After a reconnect's handshake: every namespace and room the connection had, again. */
  restore(): Effect.Effect<void> {
    return namespace.restore(this)
  }

  // ---------------------------------------------------------------------------
  // losing the socket, closing
  // ---------------------------------------------------------------------------

  protected override terminated(code: number, reason: string): void {
    if (this.phase === Phase.Closed) return
    const waiter = this.ackWaiter
    this.ackWaiter = undefined
    waiter?.({ _tag: "Closed", code, reason })
    super.terminated(code, reason)
  }

  protected override lost(code: number, reason: string): boolean {
    return !this.closedByUser && this.config.lost(this, code, reason)
  }

  protected override onClosed(): Effect.Effect<void> {
    return this.config.closed(this)
  }

  // ---------------------------------------------------------------------------
  // recoverable rooms
  // ---------------------------------------------------------------------------

  override joinRequest(namespace: string, room: string): Message.Message {
    const recovery = this.config.recovery
    return recovery === undefined ? super.joinRequest(namespace, room) : recovery.joinRequest(this, namespace, room)
  }

  override joinAnswered(namespace: string, room: string, reply: Message.Message): void {
    this.config.recovery?.joinAnswered(this, namespace, room, reply)
  }

  protected override roomChanged(room: RoomState, added: boolean): void {
    if (!added) this.config.recovery?.left(room.ns.namespace, room.name)
  }

  // ---------------------------------------------------------------------------
  // a server-initiated connect
  // ---------------------------------------------------------------------------

  protected override namespaceChanged(ns: ClientNSConnImpl, added: boolean): void {
    if (!added) return
    const waiters = this.namespaceWaiters?.get(ns.namespace)
    if (waiters === undefined) return
    this.namespaceWaiters!.delete(ns.namespace)
    for (const waiter of waiters) waiter(ns)
  }

  /** Completes once the namespace is connected (now, or when the peer connects it). */
  waitServerConnect(name: string): Effect.Effect<ClientNSConnImpl, Errors.ConnectionClosed> {
    return Effect.async<ClientNSConnImpl, Errors.ConnectionClosed>((resume) => {
      const ns = this.nsMap.get(name)
      if (ns !== undefined) return resume(Effect.succeed(ns))
      if (this.phase === Phase.Closed) return resume(Effect.fail(this.closedError))
      const waiter = (ns: ClientNSConnImpl) => resume(Effect.succeed(ns))
      const all = this.namespaceWaiters ??= new Map()
      const waiters = all.get(name) ?? []
      waiters.push(waiter)
      all.set(name, waiters)
      return Effect.sync(() => {
        const list = all.get(name)
        if (list !== undefined) list.splice(list.indexOf(waiter), 1)
      })
    }).pipe(Effect.raceFirst(Effect.zipRight(this.awaitClose, Effect.fail(this.closedError))))
  }
}

class CurrentSocketOnly implements SocketHandlers {
  constructor(private readonly conn: ClientConn, private readonly socket: RawSocket) {}
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
