/**
 * Scale-out through Redis pub/sub, on `ioredis` (an optional peer dependency).
 *
 * Each exchange opens two connections, one to publish and one to subscribe, for
 * however many websockets its server holds. It subscribes with `SUBSCRIBE` (never
 * patterns) to one channel per namespace, room and connection id with local
 * members, plus its inbox and a cluster channel. `PUBLISH` reports how many
 * instances received a request, so cross-instance sends, counts and
 * disconnects complete as soon as every one of them answered. What an instance
 * publishes in one event-loop turn leaves as one pipeline, and a `PING` on both
 * connections every quarter of `brokerTimeout` tells a frozen Redis from a live one.
 *
 * ```ts
 * const Live = NodeServer.layer({ port: 8080 }).pipe(
 *   Layer.provide(Server.layer({ events })),
 *   Layer.provide(RedisStackExchange.layer({ url: "redis://127.0.0.1:6379" }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { RedisOptions } from "ioredis"
import type * as Errors from "./Errors.js"
import * as internal from "./internal/redisStackExchange.js"
import * as StackExchange from "./StackExchange.js"

/**
 * The options that can come from `Config`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions extends StackExchange.Options {
  /** default `redis://127.0.0.1:6379` (`rediss://` for TLS; user and password may be in the URL) */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /** how long building the layer waits for both connections; default 5 s */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * The rooms' shared history (recoverable rooms, see `Server.Options.history`):
   * a stream per room, trimmed to the room's `size` (`MAXLEN ~`) and expiring `ttl`
   * after its last message, and a small hash with the room's epoch and last offset,
   * which expires `metaTtl` (default 1 day) after the last message: a client that
   * comes back to an idle room within it recovers; later the room starts a new epoch.
   */
  readonly history?: {
    readonly metaTtl?: Duration.DurationInput | undefined
  } | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends ConfigOptions {
  /**
   * More `ioredis` options (TLS, `retryStrategy`, `commandTimeout`, ...). The
   * exchange always turns off the offline queue, command retries and automatic
   * resubscription: while Redis is away operations fail fast, and the exchange
   * restores its subscriptions itself.
   */
  readonly redis?: RedisOptions | undefined
}

/**
 * Connects (failing with `StackExchangeError` when Redis cannot be reached
 * within `connectTimeout`) and disconnects when the scope closes.
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
 * `layerConfig({ url: Config.redacted("REDIS_URL") })` (a URL may hold a password: read it
 * as `Redacted`, so it never shows in logs).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<ConfigOptions>,
  options?: { readonly redis?: RedisOptions | undefined }
): Layer.Layer<StackExchange.StackExchange, Errors.StackExchangeError | ConfigError.ConfigError> =>
  Layer.scoped(
    StackExchange.StackExchange,
    Effect.flatMap(Config.unwrap(config), (fromConfig) => make({ ...fromConfig, redis: options?.redis }))
  )
