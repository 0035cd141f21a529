/**
 * Scale-out through NATS core pub/sub, on `@nats-io/transport-node` (an optional
 * peer dependency).
 *
 * Each exchange opens one NATS connection, for however many websockets its
 * server holds, and subscribes to literal subjects (never wildcards) for every
 * namespace, room and connection id with local members, plus its inbox and a
 * cluster subject. NATS does not say how many subscribers received a message, so
 * cross-instance counts and disconnects wait `requestTimeout` for the answers,
 * and a send or ask to an id nobody holds fails after it. What an instance
 * publishes in one event-loop turn leaves as one write followed by a `PING`, whose
 * `PONG` confirms the batch; a flush every quarter of `brokerTimeout` tells a
 * frozen server from a live one.
 *
 * ```ts
 * const Live = NodeServer.layer({ port: 8080 }).pipe(
 *   Layer.provide(Server.layer({ events })),
 *   Layer.provide(NatsStackExchange.layer({ servers: "127.0.0.1:4222" }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import type { NodeConnectionOptions } from "@nats-io/transport-node"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as Errors from "./Errors.js"
import * as internal from "./internal/natsStackExchange.js"
import * as StackExchange from "./StackExchange.js"

/**
 * The options that can come from `Config`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions extends StackExchange.Options {
  /** one or more `host:port` or `nats://` URLs; default `127.0.0.1:4222` */
  readonly servers?: string | Redacted.Redacted<string> | ReadonlyArray<string | Redacted.Redacted<string>> | undefined
  /** how long building the layer waits for the connection; default 5 s */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * The rooms' shared history in JetStream (recoverable rooms, see
   * `Server.Options.history`); needs JetStream on the server and the optional
   * `@nats-io/jetstream` package. One stream keeps the last `size` messages of
   * every room (`max_msgs_per_subject`; a room's own `size` is at most this) for at
   * most `maxAge` (the stream's `max_age`; at least the longest room `ttl`).
   * Without it, recoverable rooms keep their history in each instance's memory.
   */
  readonly history?: {
    /** messages kept per room; default 1,000 */
    readonly size?: number | undefined
    /** how long a message is kept, for every room; default 1 day */
    readonly maxAge?: Duration.DurationInput | undefined
    /** `file` (default: survives a NATS restart) or `memory` */
    readonly storage?: "file" | "memory" | undefined
    readonly replicas?: number | undefined
    /** the stream's name; default `neffos-history-<prefix>` */
    readonly stream?: string | undefined
  } | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends ConfigOptions {
  /**
   * More NATS connection options (credentials, TLS, `reconnectTimeWait`, ...).
   * Reconnection is unlimited unless `maxReconnectAttempts` says otherwise.
   */
  readonly nats?: Omit<NodeConnectionOptions, "servers" | "timeout"> | undefined
}

/**
 * Connects (failing with `StackExchangeError` when NATS cannot be reached within
 * `connectTimeout`) and closes the connection when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<StackExchange.StackExchange, Errors.StackExchangeError, Scope.Scope> = internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<StackExchange.StackExchange, Errors.StackExchangeError> =>
  Layer.scoped(StackExchange.StackExchange, make(options))

/**
 * Like {@link layer}, with the options read from `Config`, e.g.
 * `layerConfig({ servers: Config.array(Config.redacted(), "NATS_SERVERS") })` (server URLs
 * may hold credentials: read them as `Redacted`, so they never show in logs).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<ConfigOptions>,
  options?: { readonly nats?: Options["nats"] }
): Layer.Layer<StackExchange.StackExchange, Errors.StackExchangeError | ConfigError.ConfigError> =>
  Layer.scoped(
    StackExchange.StackExchange,
    Effect.flatMap(Config.unwrap(config), (fromConfig) => make({ ...fromConfig, nats: options?.nats }))
  )
