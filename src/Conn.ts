/**
 * Server-side connection handles: a `Conn` per WebSocket, an `NSConn` per
 * namespace it is connected to, a `Room` per room it joined. Handlers receive the
 * `NSConn` of the namespace their event arrived on.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Errors from "./Errors.js"
import * as internalRequest from "./internal/request.js"
import type * as Message from "./Message.js"
import type * as Transport from "./Transport.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-neffos/Conn")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * The HTTP request that opened the connection. Header names are lower case;
 * `X-Websocket-Header-<Name>` query parameters are already turned into headers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Request {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly remoteAddress: string | undefined
}

/**
 * Delivery counters of one connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** frames waiting in the outbox now */
  readonly outboxSize: number
  /** what they weigh: bytes, text frames counted by their length */
  readonly outboxBytes: number
  readonly outboxCapacity: number
  /** frames dropped by the outbox's overflow policy so far */
  readonly dropped: number
  /** frames handed to the socket so far */
  readonly written: number
}

/**
 * Options of operations that wait for the peer's answer.
 *
 * @since 0.1.0
 * @category models
 */
export interface RequestOptions {
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A typed key of the per-connection store. Its `initial` value is what `get`
 * returns before anything was set.
 *
 * @since 0.1.0
 * @category store
 */
export interface StoreKey<A> {
  readonly name: string
  readonly initial: () => A
}

/**
 * @since 0.1.0
 * @category store
 */
export const storeKey = <A>(name: string, initial: () => A): StoreKey<A> => ({ name, initial })

/**
 * A message to broadcast: a namespace (defaults to the handle's own), an optional
 * room, an event and a body; `to` narrows the receivers to the connections with
 * that id.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outgoing extends Message.MessageInit {
  readonly to?: string | undefined
}

/**
 * A server-side connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface Conn {
  readonly [TypeId]: TypeId
  /** the id from the server's `idGenerator`; not necessarily unique */
  readonly id: string
  readonly request: Request
  /** `X-Websocket-Reconnect` of the request: how often the client had tried to reconnect */
  readonly reconnectTries: number
  readonly wasReconnected: boolean
  readonly isClosed: Effect.Effect<boolean>
  readonly stats: Effect.Effect<Stats>
  /**
   * The connection's bounded outbox, a `Queue.Enqueue` of WebSocket frames with the
   * connection's overflow strategy: its size, capacity and state can be inspected
   * with `Queue`'s functions. Offering to it writes a raw frame (`Message.encode`
   * makes one), after what is already queued.
   */
  readonly outbox: Queue.Enqueue<Transport.Frame>
  /** the namespace handle, when connected */
  readonly namespace: (name: string) => Effect.Effect<NSConn, Errors.BadNamespace>
  readonly namespaces: Effect.Effect<ReadonlyArray<NSConn>>
  /** connects the client to a namespace declared on the server (server-initiated) */
  readonly connect: (namespace: string, options?: RequestOptions) => Effect.Effect<NSConn, Errors.RequestError>
  readonly disconnectAll: (options?: RequestOptions) => Effect.Effect<void, Errors.RequestError>
  /** closes the socket (default code 1000) after writing what is already queued */
  readonly close: (options?: { readonly code?: number; readonly reason?: string }) => Effect.Effect<void>
  /** waits until the connection is closed and its close sequence has run */
  readonly awaitClose: Effect.Effect<void>
  /** a scope closed with the connection: resources and fibers that live as long as it does */
  readonly scope: Scope.Scope
  readonly get: <A>(key: StoreKey<A>) => Effect.Effect<A>
  readonly set: <A>(key: StoreKey<A>, value: A) => Effect.Effect<void>
  readonly modify: <A>(key: StoreKey<A>, f: (a: A) => A) => Effect.Effect<A>
}

/**
 * What a namespace handle offers on either side (`C`: its connection, `R`: its
 * rooms, `E`: what sending adds to the errors — the client's `Errors.Offline`
 * while it reconnects, nothing on the server).
 *
 * @since 0.1.0
 * @category models
 */
export interface NamespaceHandle<C, R, E = never> {
  readonly conn: C
  readonly namespace: string
  readonly emit: (
    event: string,
    body?: string | Uint8Array
  ) => Effect.Effect<void, Errors.ConnectionClosed | Errors.BadNamespace | E>
  readonly emitBinary: (
    event: string,
    body: string | Uint8Array
  ) => Effect.Effect<void, Errors.ConnectionClosed | Errors.BadNamespace | E>
  /** asks the peer and waits for its reply (the `askTimeout` default of the server or client) */
  readonly ask: (
    event: string,
    body?: string | Uint8Array,
    options?: RequestOptions
  ) => Effect.Effect<Message.Message, Errors.AskError | E>
  readonly joinRoom: (room: string, options?: RequestOptions) => Effect.Effect<R, Errors.RequestError | E>
  readonly room: (name: string) => Effect.Effect<R, Errors.BadRoom>
  readonly rooms: Effect.Effect<ReadonlyArray<R>>
  /** leaves every room, one `_OnRoomLeave` request each */
  readonly leaveAll: (options?: RequestOptions) => Effect.Effect<void, Errors.RequestError | E>
  readonly disconnect: (options?: RequestOptions) => Effect.Effect<void, Errors.RequestError | E>
}

/**
 * What a room handle offers on either side (`N`: its namespace handle, `E` as in
 * `NamespaceHandle`).
 *
 * @since 0.1.0
 * @category models
 */
export interface RoomHandle<N, E = never> {
  readonly nsConn: N
  readonly name: string
  readonly emit: (
    event: string,
    body?: string | Uint8Array
  ) => Effect.Effect<void, Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom | E>
  readonly emitBinary: (
    event: string,
    body: string | Uint8Array
  ) => Effect.Effect<void, Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom | E>
  readonly ask: (
    event: string,
    body?: string | Uint8Array,
    options?: RequestOptions
  ) => Effect.Effect<Message.Message, Errors.AskError | E>
  readonly leave: (options?: RequestOptions) => Effect.Effect<void, Errors.RequestError | E>
}

/**
 * A broadcast from a handle: an event and a body, or a message (whose namespace and
 * room default to the handle's own; a message received by a handler can be passed
 * on as it is).
 *
 * @since 0.1.0
 * @category models
 */
export interface Broadcast<M> {
  (event: string, body?: string | Uint8Array): Effect.Effect<void>
  (message: M): Effect.Effect<void>
}

/**
 * A connection's membership of a namespace, on the server: it can also broadcast,
 * as `broadcast("event", body)` or `broadcast({ room, event, body, to })`.
 *
 * @since 0.1.0
 * @category models
 */
export interface NSConn extends NamespaceHandle<Conn, Room> {
  /** to every connection of the namespace (or of the message's room), this one included */
  readonly broadcast: Broadcast<Outgoing>
  /** to every connection of the namespace (or of the message's room) but this one */
  readonly broadcastOthers: Broadcast<Outgoing>
}

/**
 * A connection's membership of a room, on the server: it can also broadcast to
 * the room, as `broadcast("event", body)` or `broadcast({ event, body, to })`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Room extends RoomHandle<NSConn> {
  /** to every member of this room, this connection included */
  readonly broadcast: Broadcast<Omit<Outgoing, "namespace" | "room">>
  /** to every member of this room but this connection */
  readonly broadcastOthers: Broadcast<Omit<Outgoing, "namespace" | "room">>
}

/**
 * What a client connection goes through. `Reconnecting` counts attempts from 1
 * (0 right after the loss).
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectionState =
  | { readonly _tag: "Connecting" }
  | { readonly _tag: "Open"; readonly id: string }
  | { readonly _tag: "Reconnecting"; readonly attempt: number; readonly code: number; readonly reason: string }
  | { readonly _tag: "Closed"; readonly code: number; readonly reason: string }

/**
 * A client connection. The same object keeps working across reconnects: its
 * namespace and room handles are restored, `id` is the current connection id.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientConn {
  readonly [TypeId]: TypeId
  /** the id the server gave (changes after a reconnect) */
  readonly id: string
  /** how many attempts the last reconnect took (0 before any) */
  readonly reconnectTries: number
  readonly wasReconnected: boolean
  /** the current state, then every change */
  readonly state: Stream.Stream<ConnectionState>
  readonly currentState: Effect.Effect<ConnectionState>
  readonly isClosed: Effect.Effect<boolean>
  readonly stats: Effect.Effect<Stats>
  /** connects a namespace declared in the client's events; the server may refuse it */
  readonly connect: (
    namespace: string,
    options?: RequestOptions
  ) => Effect.Effect<ClientNSConn, Errors.RequestError | Errors.Offline>
  /** the namespace handle, once the server connected this client to it (no race, no polling) */
  readonly waitServerConnect: (namespace: string) => Effect.Effect<ClientNSConn, Errors.ConnectionClosed>
  readonly namespace: (name: string) => Effect.Effect<ClientNSConn, Errors.BadNamespace>
  readonly namespaces: Effect.Effect<ReadonlyArray<ClientNSConn>>
  readonly disconnectAll: (options?: RequestOptions) => Effect.Effect<void, Errors.RequestError | Errors.Offline>
  /** fires the forced local leave/disconnect events and closes with 1000 (no reconnect) */
  readonly close: (options?: { readonly code?: number; readonly reason?: string }) => Effect.Effect<void>
  readonly awaitClose: Effect.Effect<void>
  readonly get: <A>(key: StoreKey<A>) => Effect.Effect<A>
  readonly set: <A>(key: StoreKey<A>, value: A) => Effect.Effect<void>
  readonly modify: <A>(key: StoreKey<A>, f: (a: A) => A) => Effect.Effect<A>
}

/**
 * A client's membership of a namespace (no broadcast: that is the server's).
 * While the connection reconnects, what it sends fails with `Reconnecting`, or
 * waits in the offline queue (see `DialOptions.offline`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientNSConn extends NamespaceHandle<ClientConn, ClientRoom, Errors.Offline> {}

/**
 * A client's membership of a room.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientRoom extends RoomHandle<ClientNSConn, Errors.Offline> {}

/**
 * The request as the server sees it: `X-Websocket-Header-<Name>` query parameters
 * (how neffos.js sends headers from browsers, which cannot set them) become
 * lower-case headers, joined with ", " to a real header of the same name. The id
 * generator and `onConnect` get requests this way; use it (or
 * `NodeServer.requestHeaders`) to authenticate an upgrade before it happens.
 *
 * @since 0.1.0
 * @category constructors
 */
export const withQueryHeaders: (request: Request) => Request = internalRequest.withQueryHeaders

/**
 * @since 0.1.0
 * @category guards
 */
export const isConn = (u: unknown): u is Conn => typeof u === "object" && u !== null && TypeId in u
