/**
 * What a connection is made of: its configuration, the protocol that the modules
 * above the core (dispatch.ts, namespace.ts, room.ts) give it, the state it keeps of
 * its namespace and room handles, and its phases.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Conn from "../Conn.js"
import type * as Errors from "../Errors.js"
import type * as Events from "../Events.js"
import type * as Message from "../Message.js"
import type * as Reply from "../Reply.js"
import type { Observer } from "./observe.js"
import type { Outbox, OverflowStrategy } from "./outbox.js"
import type { DelayQueue } from "./timers.js"

/** @internal */
export type Side = "server" | "client"

/** @internal */
export type AnyHandler = (ns: any, message: Message.Message) => Effect.Effect<void | Reply.Reply, unknown, any>

/** @internal */
export type EventTable = ReadonlyMap<string, ReadonlyMap<string, AnyHandler>>

/** @internal */
export interface OutboxConfig {
  readonly capacity: number
  readonly strategy: OverflowStrategy
  readonly highWaterMark: number
  readonly maxBytes: number
  /** the flush window's delay queue (`flushInterval`); undefined: flushed at the end of each turn */
  readonly window?: DelayQueue<Outbox> | undefined
}

/** What the core keeps of a namespace handle (handles.ts). @internal */
export interface NamespaceState {
  readonly namespace: string
  removed: boolean
  readonly roomMap: Map<string, RoomState>
}

/** What the core keeps of a room handle. @internal */
export interface RoomState {
  readonly name: string
  readonly ns: NamespaceState
  removed: boolean
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

/**
 * What a connection does beyond its core, shared by both sides: dispatch.ts makes
 * one for all connections.
 *
 * @internal
 */
export interface Protocol {
  /** a message that is not a reply to this side, in arrival order */
  receive(conn: Connection, message: Message.Message): void
  /** after the close: the forced leave and disconnect events of every namespace */
  closeNamespaces(conn: Connection): Effect.Effect<void>
  /** `closeNamespaces` at once, when no forced event has a handler; false (and nothing done) otherwise */
  closeNamespacesNow(conn: Connection): boolean
  connect(
    conn: Connection,
    namespace: string,
    options: Conn.RequestOptions | undefined
  ): Effect.Effect<any, Errors.RequestError | Errors.Offline>
  disconnect(
    ns: any,
    options: Conn.RequestOptions | undefined
  ): Effect.Effect<void, Errors.RequestError | Errors.Offline>
  joinRoom(
    ns: any,
    room: string,
    options: Conn.RequestOptions | undefined
  ): Effect.Effect<any, Errors.RequestError | Errors.Offline>
  leaveRoom(
    room: any,
    options: Conn.RequestOptions | undefined
  ): Effect.Effect<void, Errors.RequestError | Errors.Offline>
}

/** A connection as the protocol's signatures name it (conn.ts's `ConnImpl`, which this module cannot import). @internal */
export interface Connection {
  readonly key: number
}

/** @internal */
export interface ConnConfig {
  readonly side: Side
  readonly protocol: Protocol
  readonly events: EventTable
  /** runs a fiber of the connection (dispatcher, close sequence, ...) under its owner's supervision */
  readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
  readonly askTimeout: Duration.Duration
  readonly inboundCapacity: number
  readonly answerUnrepliedAsks: boolean
  readonly native: "none" | "fallback" | "only"
  /** maps a failed handler to the error text its peer gets; default `failure.defaultErrorText` */
  readonly errorText: Events.ErrorText | undefined
  /** whether the runtime logs at debug level (expected handler failures are logged there) */
  readonly logsDebug: boolean
  /** longest namespace, room or event name a peer may send, in UTF-8 bytes */
  readonly maxNameLength: number
  /** rooms a peer may join per connection */
  readonly maxRooms: number
  /** counts, times and traces what the connection does; undefined when there is nothing to do */
  readonly observe?: Observer | undefined
}

/**
 * Server side, a join into a recoverable room by a connection that asked for
 * positions (recovery.ts): `begin` before the room is added (live messages for the
 * connection wait from then on), `answer` instead of the empty reply (the position,
 * or what was recovered and its replay, then what waited).
 *
 * @internal
 */
export interface JoinRecovery {
  readonly begin: () => void
  readonly answer: (wait: string) => Effect.Effect<void>
}

/** A handler's message, or an Effect the dispatcher runs in order with the messages. @internal */
export type Task = Message.Message | Effect.Effect<void>

/** @internal */
export type RequestFailure =
  | Errors.AskTimeout
  | Errors.RemoteError
  | Errors.ConnectionClosed
  | Errors.Reconnecting
  | Errors.BadNamespace

/** @internal */
export const Phase = {
  Handshake: 0,
  /** server side, between the client's M and our A<id> (onConnect runs) */
  Accepting: 1,
  Open: 2,
  Closed: 3,
  /** client side, between a lost socket and the next one */
  Down: 4
} as const
