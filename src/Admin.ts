/**
 * A live dashboard of a server — and, through its stack exchange, of every
 * instance — as an @effect/platform `HttpApp` to mount on your own `HttpRouter`,
 * behind your own authentication. Nothing runs unless {@link layer} is provided;
 * nothing is served unless {@link dashboard} is mounted.
 *
 * The page is one self-contained HTML document (no external asset) that shows
 * the instances, connections over time, namespaces and their rooms with member
 * counts, message rates in and out, server ask latency percentiles, outbox drops,
 * the fullest outboxes (slow consumers) and the broker's status, updated live
 * over server-sent events. It shows counts only, never a payload, and offers no
 * operation that changes anything.
 *
 * @example
 * ```ts
 * const app = HttpRouter.empty.pipe(
 *   HttpRouter.all("/ws", NodeServer.endpoint),
 *   HttpRouter.mountApp("/admin", Effect.zipRight(requireOperator, Admin.dashboard)), // your auth
 *   HttpRouter.get("/metrics", Admin.metrics)
 * )
 * const Main = app.pipe(
 *   HttpServer.serve(),
 *   Layer.provide(Admin.layer()),
 *   Layer.provideMerge(NodeServer.layerHttpServer({ port: 8080 })),
 *   Layer.provide(Server.layer({ events }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/admin.js"
import * as http from "./internal/adminHttp.js"
import * as Server from "./Server.js"

/**
 * Latency percentiles in milliseconds over the last sample interval (null when
 * nothing was measured), from the histogram buckets of `Metrics`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Latency {
  readonly count: number
  readonly p50: number | null
  readonly p90: number | null
  readonly p99: number | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface NamespaceSummary {
  readonly name: string
  readonly connections: number
  readonly rooms: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RoomSummary {
  readonly namespace: string
  readonly room: string
  readonly members: number
}

/**
 * One instance, as its last sample saw it. Totals count since the server started.
 *
 * @since 0.1.0
 * @category models
 */
export interface InstanceSummary {
  readonly instance: string
  /** when sampled (epoch milliseconds) */
  readonly at: number
  readonly startedAt: number
  /** false: the server runs with `metrics: false`, so messages are not counted */
  readonly metrics: boolean
  readonly connections: number
  readonly namespaces: ReadonlyArray<NamespaceSummary>
  /** the largest rooms (`topRooms`) */
  readonly rooms: ReadonlyArray<RoomSummary>
  readonly received: number
  readonly sent: number
  readonly receivedBytes: number
  readonly sentBytes: number
  /** messages per second over the last interval */
  readonly receivedRate: number
  readonly sentRate: number
  /** the server's asks to its clients */
  readonly asks: Latency
  /** handler runs */
  readonly handlers: Latency
  readonly accepted: number
  readonly dropped: number
  readonly slowConsumers: number
  readonly strictWaits: number
  /** the largest outbox now, in frames */
  readonly outboxHighWater: number
  /** the fullest outboxes now (at most 5) */
  readonly fullestOutboxes: ReadonlyArray<{ readonly id: string; readonly frames: number; readonly bytes: number }>
  readonly broker: "none" | "up" | "down"
}

/**
 * One point of the history: the cluster's totals (every instance seen) and this
 * instance's ask latency.
 *
 * @since 0.1.0
 * @category models
 */
export interface Point {
  readonly at: number
  readonly connections: number
  readonly receivedRate: number
  readonly sentRate: number
  readonly askP50: number | null
  readonly askP99: number | null
  readonly byInstance: Readonly<Record<string, number>>
}

/**
 * What the dashboard shows: every instance seen (this one first), and the history
 * this instance kept since it started (at most `history` points).
 *
 * @since 0.1.0
 * @category models
 */
export interface State {
  readonly self: string
  /** the sample interval in milliseconds */
  readonly interval: number
  readonly instances: ReadonlyArray<InstanceSummary>
  readonly history: ReadonlyArray<Point>
}

/**
 * A sample: the new point and the instances now.
 *
 * @since 0.1.0
 * @category models
 */
export interface Update {
  readonly point: Point
  readonly instances: ReadonlyArray<InstanceSummary>
}

/**
 * @since 0.1.0
 * @category models
 */
export type Event = { readonly _tag: "State"; readonly state: State } | {
  readonly _tag: "Update"
  readonly update: Update
}

/**
 * The sampler of a server: what the dashboard reads.
 *
 * @since 0.1.0
 * @category models
 */
export interface Admin {
  readonly state: Effect.Effect<State>
  /** the state now, then every update (what the page's `events` stream sends) */
  readonly events: Stream.Stream<Event>
}

/**
 * @since 0.1.0
 * @category tags
 */
export const Admin: Context.Tag<Admin, Admin> = internal.AdminTag

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** how often this instance is sampled; default 1 s */
  readonly interval?: Duration.DurationInput | undefined
  /** how many points are kept, so that a page opened now has history; default 600 */
  readonly history?: number | undefined
  /** how often this instance's summary is published to the others (with a stack exchange); default 3 s */
  readonly heartbeat?: Duration.DurationInput | undefined
  /** an instance whose summary is older than this is no longer shown; default 7 s */
  readonly expiry?: Duration.DurationInput | undefined
  /** how many of the largest rooms each instance reports; default 10 */
  readonly topRooms?: number | undefined
}

/**
 * Starts sampling `server` in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (server: Server.Server, options?: Options) => Effect.Effect<Admin, never, Scope.Scope> =
  internal.make

/**
 * Samples the `Server` for the lifetime of the layer (one sample per `interval`:
 * O(connections + rooms), counts only), and publishes its summary to the other
 * instances every `heartbeat` when there is a stack exchange.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<Admin, never, Server.Server> =>
  Layer.scoped(internal.AdminTag, Effect.flatMap(Server.Server, (server) => internal.make(server, options)))

/**
 * The dashboard: the page (any path but these), `state` (the {@link State} as
 * JSON), `events` (server-sent events: `state`, then an `update` every sample) and
 * `metrics` (like {@link metrics}), found by the last segment of the path. Mount it
 * behind your own authentication; it never changes anything.
 *
 * @since 0.1.0
 * @category http
 */
export const dashboard: Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  never,
  Admin | HttpServerRequest.HttpServerRequest
> = http.dashboard

/**
 * `/metrics`: the Prometheus text (format 0.0.4) of every Effect metric of the
 * process — this package's (see `Metrics`) and the application's. Needs no
 * OpenTelemetry and no {@link layer}.
 *
 * @since 0.1.0
 * @category http
 */
export const metrics: Effect.Effect<HttpServerResponse.HttpServerResponse> = http.metrics
