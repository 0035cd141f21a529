/**
 * A server's connection: the handshake from its side (only `M` acknowledges;
 * `A<id>` once onConnect allowed it, or `H<reason>`), keep-alive bookkeeping, the
 * ping behind a connect reply, and the hooks that keep the server's index, metrics
 * and lifecycle events in step.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Conn from "../Conn.js"
import type * as Errors from "../Errors.js"
import type * as Message from "../Message.js"
import { ConnImpl } from "./conn.js"
import { type ConnConfig, type JoinRecovery, type OutboxConfig, Phase, type RoomState } from "./connConfig.js"
import { startDispatcher } from "./dispatch.js"
import { NSConnImpl, type RoomImpl } from "./handles.js"
import { type Cursor, roomKey } from "./historyStore.js"
import type { Frame } from "./outbox.js"
import type { Entry } from "./timers.js"
import type { RawSocket } from "./transport.js"

/** What the server does when its connections change (server.ts). @internal */
export interface ServerHooks {
  /** after the client's M: decide (onConnect) and call `accept` or `reject` */
  readonly handshake: (conn: ServerConn) => void
  /** the handshake completed (`A<id>` written) */
  readonly accepted: (conn: ServerConn) => void
  /** after the close sequence fired its forced events: does what it can at once, returns the rest */
  readonly closed: (conn: ServerConn) => Effect.Effect<void>
  readonly namespaceChanged: (ns: ServerNSConn, added: boolean) => void
  readonly roomChanged: (room: ServerRoom, added: boolean) => void
  readonly broadcast: (
    message: Message.Message,
    to: string | undefined,
    except: ServerConn | undefined
  ) => Effect.Effect<void>
  readonly dropped: (conn: ServerConn) => void
  /** a join request that resumes a recoverable room (recovery.ts); absent without history rules */
  readonly joinRecovery: ((conn: ServerConn, request: Message.Message) => JoinRecovery | undefined) | undefined
}

/** @internal */
export interface ServerConnConfig extends ConnConfig {
  readonly hooks: ServerHooks
}

/** @internal */
export type ServerNSConn = NSConnImpl<ServerConn>

/** @internal */
export type ServerRoom = RoomImpl<ServerConn>

/** How long a connect reply's ping waits for its pong before `_OnNamespaceConnected` runs anyway. */
const PONG_WAIT = Duration.seconds(1)

/** @internal */
export class ServerConn extends ConnImpl<ServerNSConn> implements Conn.Conn {
  declare readonly config: ServerConnConfig
  /** keep-alive bookkeeping, driven by the server's timers */
  awaitingPong = false
  pingSeq = 0
  /** the server's pending deadlines for this connection, cancelled when it closes */
  handshakeTimer: Entry<unknown> | undefined
  pingTimer: Entry<unknown> | undefined
  pongTimer: Entry<unknown> | undefined
  /** `afterConnectReply`: pongs still to come, and who waits for the last */
  private pongsAwaited = 0
  private pongWaiter: (() => void) | undefined
  private accepted_ = false
  /** recovery.ts: set when the client asked for positions, its place in every recoverable room it is in */
  recovery: Map<string, Cursor> | undefined = undefined

  constructor(
    id: string,
    socket: RawSocket,
    config: ServerConnConfig,
    outboxConfig: OutboxConfig,
    request: Conn.Request,
    reconnectTries: number
  ) {
    super(id, socket, config, outboxConfig, request, reconnectTries)
    // nothing is written before A<id>
    if (this.phase === Phase.Handshake) this.outbox.hold()
  }

  override connect(
    namespace: string,
    options?: Conn.RequestOptions
  ): Effect.Effect<ServerNSConn, Errors.RequestError> {
    // a server's connection never reconnects: no Errors.Offline
    return super.connect(namespace, options) as Effect.Effect<ServerNSConn, Errors.RequestError>
  }

  override disconnectAll(options?: Conn.RequestOptions): Effect.Effect<void, Errors.RequestError> {
    return super.disconnectAll(options) as Effect.Effect<void, Errors.RequestError>
  }

  // ---------------------------------------------------------------------------
  // handshake
  // ---------------------------------------------------------------------------

  get isAccepted(): boolean {
    return this.accepted_
  }

  protected handshakeFrame(frame: Frame): void {
    if (typeof frame === "string" && frame.charCodeAt(0) === 77) {
      this.phase = Phase.Accepting
      this.config.hooks.handshake(this)
      return
    }
    // only M acknowledges: anything else, A<id> and H<reason> included, is a protocol error
    this.unsafeClose(1002, "expected the handshake frame M")
  }

  /** Native-only mode: no handshake; namespace "" is connected from the start. */
  openNative(): void {
    this.markAccepted()
    this.addNamespace(new NSConnImpl(this, ""))
  }

  private markAccepted(): void {
    this.accepted_ = true
    this.config.hooks.accepted(this)
  }

  /** Writes `A<id>` (once) and opens the connection. */
  accept(): void {
    if (this.phase !== Phase.Accepting) return
    this.phase = Phase.Open
    this.socket.write(["A" + this.id])
    this.outbox.release()
    this.markAccepted()
    startDispatcher(this)
  }

  /** Writes `H<reason>` and closes with 1008. */
  reject(reason: string): void {
    if (this.phase !== Phase.Accepting && this.phase !== Phase.Handshake) return
    this.socket.write(["H" + reason])
    // frames queued while onConnect ran must not follow the refusal
    this.unsafeClose(1008, reason, false)
  }

  /** onConnect may connect namespaces: its first request opens the connection. */
  protected override beforeRequest(): void {
    if (this.phase === Phase.Accepting) this.accept()
  }

  // ---------------------------------------------------------------------------
  // keep-alive and the connect reply's ping
  // ---------------------------------------------------------------------------

  override onPong(): void {
    this.awaitingPong = false
    if (this.pongWaiter !== undefined && --this.pongsAwaited === 0) {
      const resume = this.pongWaiter
      this.pongWaiter = undefined
      resume()
    }
  }

  /**
   * After a connect reply: completes once the client has read the reply and
   * finished what that read started, so that what `_OnNamespaceConnected` sends next
   * reaches neffos.js after it stored the namespace. neffos.js stores it a few
   * microtasks after the reply, and on Node `ws` hands it every frame of one TCP read
   * synchronously: a frame in the same read as the reply is dropped, however late the
   * server wrote it. So a ping follows the reply, and the wait ends at its pong: `ws`
   * answers a ping while it processes the read that carries it (browsers and Go peers
   * answer on their own), so whatever the server writes after the pong arrives can
   * only reach the client in a later read, after those microtasks. An outstanding
   * keep-alive ping's pong does not count; a peer that answers no ping holds the
   * output at most `PONG_WAIT`.
   */
  override get afterConnectReply(): Effect.Effect<void> {
    return Effect.zipRight(
      this.written,
      Effect.async<void>((resume) => {
        const pongs = this.awaitingPong ? 2 : 1
        if (this.phase === Phase.Closed || !this.socket.ping()) return resume(Effect.void)
        this.pongsAwaited = pongs
        this.pongWaiter = () => resume(Effect.void)
        return Effect.sync(() => {
          this.pongWaiter = undefined
        })
      }).pipe(Effect.timeoutTo({ duration: PONG_WAIT, onSuccess: () => undefined, onTimeout: () => undefined }))
    )
  }

  // ---------------------------------------------------------------------------
  // the server's hooks
  // ---------------------------------------------------------------------------

  protected override namespaceChanged(ns: ServerNSConn, added: boolean): void {
    this.config.hooks.namespaceChanged(ns, added)
  }

  protected override roomChanged(room: RoomState, added: boolean): void {
    if (!added) this.recovery?.delete(roomKey(room.ns.namespace, room.name))
    this.config.hooks.roomChanged(room as ServerRoom, added)
  }

  override joinRecovery(request: Message.Message): JoinRecovery | undefined {
    return this.recovery === undefined ? undefined : this.config.hooks.joinRecovery?.(this, request)
  }

  protected override dropped(): void {
    this.config.hooks.dropped(this)
  }

  override broadcastFrom(
    message: Message.Message,
    to: string | undefined,
    except: ConnImpl<any> | undefined
  ): Effect.Effect<void> {
    return this.config.hooks.broadcast(message, to, except as ServerConn | undefined)
  }

  protected override onClosed(): Effect.Effect<void> {
    return this.config.hooks.closed(this)
  }

  /** A closed connection is let go by the timers at once. */
  protected override dropSocketState() {
    if (this.handshakeTimer !== undefined) this.handshakeTimer.value = undefined
    if (this.pingTimer !== undefined) this.pingTimer.value = undefined
    if (this.pongTimer !== undefined) this.pongTimer.value = undefined
    this.handshakeTimer = this.pingTimer = this.pongTimer = undefined
    return super.dropSocketState()
  }
}
