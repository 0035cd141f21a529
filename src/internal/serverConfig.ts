/**
 * `Server.layerConfig`: the data options of the server, read from `Config`.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as Option from "effect/Option"
import type * as Conn from "../Conn.js"
import type * as Server from "../Server.js"

const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> =>
  Config.map(Config.option(config), Option.getOrUndefined)

/** Drops the keys whose value is undefined, so that they do not hide a value given in code. */
const defined = <A extends object>(a: A): Partial<A> =>
  Object.fromEntries(Object.entries(a).filter(([, value]) => value !== undefined)) as Partial<A>

/** @internal */
export const config: Config.Config<Server.ConfigOptions> = Config.all({
  askTimeout: optional(Config.duration("ASK_TIMEOUT")),
  handshakeTimeout: optional(Config.duration("HANDSHAKE_TIMEOUT")),
  pingInterval: optional(Config.duration("PING_INTERVAL")),
  pingTimeout: optional(Config.duration("PING_TIMEOUT")),
  shutdownTimeout: optional(Config.duration("SHUTDOWN_TIMEOUT")),
  maxMessageSize: optional(Config.integer("MAX_MESSAGE_SIZE")),
  inboundCapacity: optional(Config.integer("INBOUND_CAPACITY")),
  maxNameLength: optional(Config.integer("MAX_NAME_LENGTH")),
  maxRoomsPerConnection: optional(Config.integer("MAX_ROOMS_PER_CONNECTION")),
  answerUnrepliedAsks: optional(Config.boolean("ANSWER_UNREPLIED_ASKS")),
  outbox: Config.all({
    capacity: optional(Config.integer("OUTBOX_CAPACITY")),
    maxBytes: optional(Config.integer("OUTBOX_MAX_BYTES")),
    strategy: optional(Config.literal("sliding", "dropping", "disconnect")("OUTBOX_STRATEGY")),
    highWaterMark: optional(Config.integer("OUTBOX_HIGH_WATER_MARK")),
    flushInterval: optional(Config.duration("OUTBOX_FLUSH_INTERVAL"))
  }),
  strict: Config.map(
    Config.all({
      strict: optional(Config.boolean("STRICT")),
      writeTimeout: optional(Config.duration("STRICT_WRITE_TIMEOUT"))
    }),
    ({ strict, writeTimeout }) =>
      strict === undefined ? undefined : strict && writeTimeout !== undefined ? { writeTimeout } : strict
  )
}).pipe(Config.nested("NEFFOS"))

/** The options given in code, with what the configuration sets on top. @internal */
export const merge = <E, R>(options: Server.Options<E, R>, fromConfig: Server.ConfigOptions): Server.Options<E, R> => {
  const outbox = defined(fromConfig.outbox ?? {})
  const given = options.outbox
  return {
    ...options,
    ...defined({ ...fromConfig, outbox: undefined }),
    outbox: typeof given === "function"
      ? (request: Conn.Request) => ({ ...given(request), ...outbox })
      : { ...given, ...outbox }
  }
}
