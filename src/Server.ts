/**
 * The neffos server as an Effect service: connections, namespaces, rooms,
 * broadcasts, targeted sends and server-side asks. A transport (`NodeServer`, or
 * the in-memory `TestServer`) feeds it sockets.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Cluster from "./Cluster.js"
import type * as Conn from "./Conn.js"
import type * as Errors from "./Errors.js"
import type * as Events from "./Events.js"
import type * as History from "./History.js"
import * as internal from "./internal/server.js"
import * as internalConfig from "./internal/serverConfig.js"
import type * as Message from "./Message.js"
import type * as Presence from "./Presence.js"
import type { RawSocket, SocketHandlers } from "./Transport.js"

/**
 * A message to broadcast. `namespace` is required on the wire (it defaults to `""`);
 * `room` narrows the receivers to the room's members, `to` to the connections with
 * that id.
 *
 * @since 0.1.0
 * @category models
 */
export type Outgoing = Conn.Outgoing

/**
 * @since 0.1.0
 * @category models
 */
export interface BroadcastOptions {
  /** a connection (excludes exactly that one) or an id (excludes every connection with it) */
  readonly except?: Conn.Conn | string | undefined
  /** lossless delivery in the same order at every receiver (see {@link Options.strict}) */
  readonly strict?: boolean | undefined
  /**
   * With a `StackExchange`: wait until the broker took the message for the other
   * instances (at most its `brokerTimeout`), and fail with `StackExchangeError`
   * (reason `Overloaded`, `Down` or `Timeout`) when it did not, instead of
   * returning once delivered locally.
   */
  readonly confirm?: boolean | undefined
}

/**
 * A server-side ask addressed to a connection id.
 *
 * @since 0.1.0
 * @category models
 */
export interface AskRequest {
  readonly to: string
  readonly namespace: string
  readonly room?: string | undefined
  readonly event: string
  readonly body?: string | Uint8Array | undefined
}

/**
 * What happened to the server's connections, in order.
 *
 * @since 0.1.0
 * @category models
 */
export type ServerEvent =
  | { readonly _tag: "Connected"; readonly conn: Conn.Conn }
  | { readonly _tag: "Disconnected"; readonly conn: Conn.Conn; readonly code: number; readonly reason: string }
  | { readonly _tag: "NamespaceConnected"; readonly conn: Conn.Conn; readonly namespace: string }
  | { readonly _tag: "NamespaceDisconnected"; readonly conn: Conn.Conn; readonly namespace: string }
  | { readonly _tag: "RoomJoined"; readonly conn: Conn.Conn; readonly namespace: string; readonly room: string }
  | { readonly _tag: "RoomLeft"; readonly conn: Conn.Conn; readonly namespace: string; readonly room: string }
  | { readonly _tag: "StackExchangeDown"; readonly error: Errors.StackExchangeError }
  | { readonly _tag: "StackExchangeUp" }

/**
 * A connection's outbox: how many frames it holds and what happens when it is full.
 *
 * - `sliding` (default): the oldest queued frame is dropped;
 * - `dropping`: the new frame is dropped;
 * - `disconnect`: the connection is closed with 1008 "slow consumer".
 *
 * Drops are counted per connection (`conn.stats`) and in the
 * `effect_neffos_outbox_dropped_frames` metric.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutboxOptions {
  /** frames; default 1024 */
  readonly capacity?: number | undefined
  /**
   * bytes the queued frames may weigh (text counted by its length); default 4 MiB.
   * A single frame larger than this is still taken by an empty outbox.
   */
  readonly maxBytes?: number | undefined
  readonly strategy?: "sliding" | "dropping" | "disconnect" | undefined
  /** socket bytes buffered beyond which the writer waits for the socket to drain; default 64 KiB */
  readonly highWaterMark?: number | undefined
  /**
   * A write coalescing window; default 0, each turn's frames written at the end of
   * the turn. With a window, the frames queued within it (broadcasts, emits) leave
   * in one write when it elapses; replies and requests do not wait: they, and what
   * the window held before them, leave at the end of the turn. Whole milliseconds,
   * rounded up.
   */
  readonly flushInterval?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<E, R> {
  readonly events: Events.Events<Conn.NSConn, E, R>
  /** the connection id; default `crypto.randomUUID()`. Ids need not be unique. */
  readonly idGenerator?: ((request: Conn.Request) => string) | undefined
  /**
   * Runs once the client sent its handshake `M`. Failing rejects the client: it gets
   * `H<error text>` and a close with 1008. It may connect namespaces (`conn.connect`).
   */
  readonly onConnect?: ((conn: Conn.Conn) => Effect.Effect<void, unknown, R | Server>) | undefined
  /**
   * Maps a failed handler (or `onConnect`, or a lifecycle veto) to the error text
   * the client gets. Default: `Events.defaultErrorText` — `internal error` for a
   * defect, `bad request` for a Schema `ParseError`, a tagged error's `message` (or
   * `_tag`), never a stack, a parse tree or a cause.
   */
  readonly errorText?: Events.ErrorText | undefined
  /** runs after a connection closed and its forced leave/disconnect events fired */
  readonly onDisconnect?: ((conn: Conn.Conn) => Effect.Effect<void, never, R | Server>) | undefined
  /** the outbox of every connection, or a function choosing it per connection */
  readonly outbox?: OutboxOptions | ((request: Conn.Request) => OutboxOptions) | undefined
  /**
   * Strict delivery for every broadcast (or per call with `{ strict: true }`): a
   * broadcaster waits for room in a full outbox instead of dropping, so every
   * receiver gets every message in the same order; a receiver still full after
   * `writeTimeout` (default 5 s) is disconnected with 1008 "slow consumer".
   */
  readonly strict?: boolean | { readonly writeTimeout?: Duration.DurationInput | undefined } | undefined
  /**
   * Recoverable rooms (see the `History` module): the rooms the rules match keep
   * their last messages, and a client of this package that reconnects gets what it
   * missed in them, exactly once and in order, or a `NotRecovered` event. Without a
   * `StackExchange` that keeps a history, in this instance's memory.
   */
  readonly history?: History.Options | undefined
  /** default timeout of server-side asks and requests; default 30 s */
  readonly askTimeout?: Duration.DurationInput | undefined
  /** a client that has not completed the handshake by then is closed; default 10 s */
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  /** WebSocket ping period; default 25 s, 0 disables keep-alive */
  readonly pingInterval?: Duration.DurationInput | undefined
  /** a peer that does not answer a ping within this time is dropped; default 20 s */
  readonly pingTimeout?: Duration.DurationInput | undefined
  /** largest accepted frame in bytes (larger: close 1009); default 1 MiB */
  readonly maxMessageSize?: number | undefined
  /**
   * Lifecycle events kept for a subscriber (`subscribe`, `lifecycle`) that has not
   * taken them yet; beyond it the oldest are dropped. Default 1,024.
   */
  readonly lifecycleCapacity?: number | undefined
  /** inbound messages queued per connection before the socket stops being read; default 256 */
  readonly inboundCapacity?: number | undefined
  /**
   * The longest namespace, room or event name a client may send, in UTF-8 bytes;
   * default 256. Longer ones are refused: an ask gets `name too long` (without the
   * name echoed back), anything else is dropped.
   */
  readonly maxNameLength?: number | undefined
  /**
   * Rooms a client may join per connection, across namespaces; default 1,000.
   * A join beyond it is answered `too many rooms`. Joins the server makes
   * (`ns.joinRoom`) are not limited.
   */
  readonly maxRoomsPerConnection?: number | undefined
  /**
   * Answer asks that would otherwise stay silent: an empty reply when the handler
   * returned no `Reply`, `unknown event` when there is no handler. Default true.
   */
  readonly answerUnrepliedAsks?: boolean | undefined
  /**
   * How long shutdown waits for outboxes to drain; default 5 s. A connection still
   * not drained then is closed with 1001 if its socket takes the rest, or dropped
   * (1006, "shutdown timeout") if its socket is backed up; sockets whose close
   * handshake is not over half a second later are dropped too.
   */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /**
   * Cluster-wide presence (`server.presence`): `true`, or options (client pushes,
   * the diffs' gathering window, the changes' buffer). Off by default: with a
   * `StackExchange` it costs a broker message per `diffInterval` (10 ms) with
   * changes, and every instance holds the members of all.
   */
  readonly presence?: boolean | Presence.Options | undefined
  /** instance liveness (heartbeat, TTL) and the default timeout of remote operations */
  readonly cluster?: Cluster.Options | undefined
  /**
   * Count messages and bytes per namespace and time handler runs and asks in the
   * package's Effect metrics (see the `Metrics` module); default true. `false`
   * turns off these per-message metrics (the counters of rarer events — connections,
   * handshakes, closes, drops — stay). Spans do not depend on it: they are made when
   * the server is built with a tracer installed (e.g. `@effect/opentelemetry`).
   */
  readonly metrics?: boolean | undefined
}

/**
 * The server service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Server {
  /** unique per server instance */
  readonly instanceId: string
  /**
   * Sends a message to every connection of its namespace (and room, and id with
   * `to`), but `except`. The frame is encoded once; delivery never blocks on a slow
   * receiver unless `strict`. With a `StackExchange`, the message is then queued
   * for the other instances and the effect completes without waiting for the
   * broker (unless `confirm`); it fails with `StackExchangeError` (local delivery
   * done) when the exchange knows the broker is down. A publish beyond the
   * exchange's bound on pending publishes is dropped and counted.
   */
  readonly broadcast: (message: Outgoing, options?: BroadcastOptions) => Effect.Effect<void, Errors.StackExchangeError>
  /**
   * A recoverable room's position and messages: with `since`, those after it (and
   * whether that is all of them), otherwise the latest `limit`. Fails with
   * `HistoryUnavailable` for a room that keeps no history or a store that is down.
   */
  readonly history: (
    namespace: string,
    room: string,
    options?: History.ReadOptions
  ) => Effect.Effect<History.Page, Errors.HistoryUnavailable>
  /** sends to the connection(s) with this id, connected to the message's namespace, on any instance */
  readonly send: (
    id: string,
    message: Outgoing
  ) => Effect.Effect<void, Errors.ConnectionNotFound | Errors.StackExchangeError>
  /** asks the connection with this id, on any instance; with several, the first reply wins */
  readonly ask: (
    request: AskRequest,
    options?: Conn.RequestOptions
  ) => Effect.Effect<Message.Message, Errors.AskError | Errors.ConnectionNotFound | Errors.StackExchangeError>
  /** closes the connections with this id on every instance; returns how many were closed */
  readonly disconnect: (
    id: string,
    options?: { readonly code?: number | undefined; readonly reason?: string | undefined }
  ) => Effect.Effect<number, Errors.StackExchangeError>
  /** runs `f` for every connection, at most `concurrency` (default 16) at a time */
  readonly do: <E, R>(
    f: (conn: Conn.Conn) => Effect.Effect<unknown, E, R>,
    options?: { readonly concurrency?: number | "unbounded" | undefined }
  ) => Effect.Effect<void, E, R>
  /** connections of this instance */
  readonly connectionCount: Effect.Effect<number>
  /** connections of every instance (this one's without a `StackExchange`) */
  readonly clusterConnectionCount: Effect.Effect<number, Errors.StackExchangeError>
  /** a snapshot of the connections that completed the handshake */
  readonly connections: Effect.Effect<ReadonlyArray<Conn.Conn>>
  /** the (first) connection with this id */
  readonly connection: (id: string) => Effect.Effect<Conn.Conn, Errors.ConnectionNotFound>
  readonly connectionsById: (id: string) => Effect.Effect<ReadonlyArray<Conn.Conn>>
  /** the connections connected to a namespace, or joined to a room of it */
  readonly members: (namespace: string, room?: string) => Effect.Effect<ReadonlyArray<Conn.Conn>>
  readonly memberCount: (namespace: string, room?: string) => Effect.Effect<number>
  /**
   * Who is in a namespace or room on every instance, with counts and changes.
   * Needs `presence` in the options; without it, its operations die.
   */
  readonly presence: Presence.Presence
  /**
   * Joins the target connections, on every instance, to a room of the target's
   * namespace (server-initiated: each client answers, as with `ns.joinRoom`).
   * Completes once every instance answered (or the timeout passed) and the
   * instances' subscriptions are confirmed, so a broadcast made next reaches them.
   */
  readonly joinRoom: (
    target: Cluster.NamespaceTarget,
    room: string,
    options?: Cluster.RemoteOptions
  ) => Effect.Effect<Cluster.Result<Cluster.Applied>>
  /** makes the target connections that are in the room leave it, on every instance */
  readonly leaveRoom: (
    target: Cluster.NamespaceTarget,
    room: string,
    options?: Cluster.RemoteOptions
  ) => Effect.Effect<Cluster.Result<Cluster.Applied>>
  /** closes the target connections on every instance (default code 1000), with one outcome per instance */
  readonly disconnectConnections: (
    target: Cluster.Target,
    options?: Cluster.RemoteOptions & { readonly code?: number | undefined; readonly reason?: string | undefined }
  ) => Effect.Effect<Cluster.Result<Cluster.Applied>>
  /** describes the target connections of every instance: id, instance, namespaces, rooms, metadata */
  readonly connectionsInfo: (
    target: Cluster.Target,
    options?: Cluster.RemoteOptions
  ) => Effect.Effect<Cluster.Result<ReadonlyArray<Cluster.ConnectionInfo>>>
  /** lifecycle events from now on */
  readonly lifecycle: Stream.Stream<ServerEvent>
  /** a subscription to lifecycle events, for as long as the scope lives */
  readonly subscribe: Effect.Effect<Queue.Dequeue<ServerEvent>, never, Scope.Scope>
  readonly maxMessageSize: number
  /**
   * For transports: hands a freshly upgraded socket to the server and returns the
   * callbacks the transport must call.
   */
  readonly unsafeAccept: (
    socket: RawSocket,
    request: Conn.Request,
    options?: { readonly id?: string | undefined }
  ) => SocketHandlers
  /** For transports: false once shutdown started (refuse upgrades, e.g. with 503). */
  readonly unsafeIsAccepting: () => boolean
  /**
   * Stops accepting (handshakes in progress are closed with 1001), drains every
   * outbox and closes every connection with 1001, within `shutdownTimeout`.
   * Completes when every socket is closed; a second call waits for the first.
   */
  readonly shutdown: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category tags
 */
export const Server: Context.Tag<Server, Server> = internal.ServerTag

/**
 * Two of the server's Effect metrics: frames dropped by outbox policies (a counter,
 * labelled `policy`) and open connections (a gauge), across every server of the
 * process. The `Metrics` module has them all.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  droppedFrames: internal.droppedFrames,
  connections: internal.connectionsGauge
} as const

/**
 * Builds the server in the current scope; closing the scope shuts it down
 * gracefully. Handlers may use `Server` themselves. When a `StackExchange` is in
 * the context, the server attaches to it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <E, R>(options: Options<E, R>) => Effect.Effect<Server, never, Scope.Scope | Exclude<R, Server>> =
  internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R>(options: Options<E, R>): Layer.Layer<Server, never, Exclude<R, Server>> =>
  Layer.scoped(Server, make(options))

/**
 * The options of {@link Options} that are plain data, as {@link layerConfig} reads
 * them from `Config`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions {
  readonly askTimeout?: Duration.DurationInput | undefined
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  readonly pingInterval?: Duration.DurationInput | undefined
  readonly pingTimeout?: Duration.DurationInput | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  readonly maxMessageSize?: number | undefined
  readonly inboundCapacity?: number | undefined
  readonly maxNameLength?: number | undefined
  readonly maxRoomsPerConnection?: number | undefined
  readonly answerUnrepliedAsks?: boolean | undefined
  readonly outbox?: OutboxOptions | undefined
  readonly strict?: boolean | { readonly writeTimeout?: Duration.DurationInput | undefined } | undefined
}

/**
 * Every data option, each optional, under `NEFFOS_` (with `ConfigProvider.fromEnv`):
 * `NEFFOS_ASK_TIMEOUT`, `NEFFOS_HANDSHAKE_TIMEOUT`, `NEFFOS_PING_INTERVAL`,
 * `NEFFOS_PING_TIMEOUT`, `NEFFOS_SHUTDOWN_TIMEOUT` (durations such as `5 seconds`),
 * `NEFFOS_MAX_MESSAGE_SIZE`, `NEFFOS_INBOUND_CAPACITY`, `NEFFOS_MAX_NAME_LENGTH`,
 * `NEFFOS_MAX_ROOMS_PER_CONNECTION`, `NEFFOS_ANSWER_UNREPLIED_ASKS`,
 * `NEFFOS_OUTBOX_CAPACITY`, `NEFFOS_OUTBOX_MAX_BYTES`, `NEFFOS_OUTBOX_STRATEGY`
 * (`sliding`, `dropping` or `disconnect`), `NEFFOS_OUTBOX_HIGH_WATER_MARK`,
 * `NEFFOS_OUTBOX_FLUSH_INTERVAL` (a duration),
 * `NEFFOS_STRICT` and `NEFFOS_STRICT_WRITE_TIMEOUT`.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<ConfigOptions> = internalConfig.config

/**
 * Like {@link layer}, with the data options read from `Config` (by default
 * {@link config}, the `NEFFOS_*` variables) on top of those given in code: what the
 * configuration sets wins, what it leaves out keeps the code's value (or the
 * default). A malformed value fails the layer with a `ConfigError`.
 *
 * @example
 * ```ts
 * const ServerLive = Server.layerConfig({ events })  // NEFFOS_PING_INTERVAL="10 seconds" npm start
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <E, R>(
  options: Options<E, R>,
  config?: Config.Config<ConfigOptions>
): Layer.Layer<Server, ConfigError.ConfigError, Exclude<R, Server>> =>
  Layer.scoped(
    Server,
    Effect.flatMap(config ?? internalConfig.config, (fromConfig) => make(internalConfig.merge(options, fromConfig)))
  )
