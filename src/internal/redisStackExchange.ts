/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import * as Errors from "../Errors.js"
import type * as RedisStackExchange from "../RedisStackExchange.js"
import type * as StackExchange from "../StackExchange.js"
import * as core from "./stackExchange.js"

const defaults = {
  url: "redis://127.0.0.1:6379",
  connectTimeout: Duration.seconds(5),
  commandTimeout: Duration.seconds(5)
}

const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** @internal */
export const make = (
  options?: RedisStackExchange.Options
): Effect.Effect<StackExchange.StackExchange, Errors.StackExchangeError, Scope.Scope> =>
  core.make((handlers) => transport(options ?? {}, handlers), options)

const transport = (
  options: RedisStackExchange.Options,
  handlers: StackExchange.TransportHandlers
): Effect.Effect<StackExchange.Transport, Errors.StackExchangeError, Scope.Scope> =>
  Effect.gen(function*() {
    const url = options.url ?? defaults.url
    const connectTimeout = Duration.decode(options.connectTimeout ?? defaults.connectTimeout)
    let lastError: unknown
    let publisherUp = false
    let subscriberUp = false
    let up = false
    const update = () => {
      const now = publisherUp && subscriberUp
      if (now === up) return
      up = now
      handlers.onStatus(
        now ? { _tag: "Up" } : {
          _tag: "Down",
          error: new Errors.StackExchangeError({
            operation: "connection",
            cause: lastError ?? new Error("the connection to Redis was lost")
          })
        }
      )
    }

    const client = (role: "publisher" | "subscriber") =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const redis = new Redis(url, {
            commandTimeout: Duration.toMillis(defaults.commandTimeout),
            connectTimeout: Duration.toMillis(connectTimeout),
            connectionName: `effect-neffos-${role}`,
            ...options.redis,
            lazyConnect: true,
            // fail fast while the broker is away instead of queueing; the exchange resubscribes itself
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            autoResubscribe: false,
            autoResendUnfulfilledCommands: false
          })
          redis.on("error", (error) => {
            lastError = error
          })
          redis.on("ready", () => {
            lastError = undefined
            if (role === "publisher") publisherUp = true
            else subscriberUp = true
            update()
          })
          redis.on("close", () => {
            if (role === "publisher") publisherUp = false
            else subscriberUp = false
            update()
          })
          return redis
        }),
        (redis) => Effect.sync(() => redis.disconnect())
      )

    const connect = (redis: Redis) =>
      Effect.tryPromise({
        try: () => redis.connect(),
        catch: (cause) => new Errors.StackExchangeError({ operation: "connect", cause: lastError ?? cause })
      })

    const publisher = yield* client("publisher")
    const subscriber = yield* client("subscriber")
    subscriber.on("messageBuffer", (channel: Buffer, message: Buffer) => {
      handlers.onMessage(channel.toString("latin1"), message)
    })
    yield* Effect.all([connect(publisher), connect(subscriber)], { concurrency: 2, discard: true }).pipe(
      Effect.timeoutFail({
        duration: connectTimeout,
        onTimeout: () =>
          new Errors.StackExchangeError({
            operation: "connect",
            cause: lastError ?? new Error(`no connection to ${url} within ${Duration.format(connectTimeout)}`)
          })
      })
    )

    const command = <A>(operation: string, f: () => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: (cause) => new Errors.StackExchangeError({ operation, cause }) })

    // unconfirmed publishes are pipelined, at most `window` of them at a time
    let unconfirmed = 0
    const window = 1024
    return {
      publish: (channel, payload, options) =>
        Effect.suspend(() => {
          const sent = publisher.publish(channel, toBuffer(payload))
          if (options?.confirm === true) return command("publish", () => sent)
          unconfirmed++
          const settled = sent.then(() => {
            unconfirmed--
          }, (cause) => {
            unconfirmed--
            lastError = cause
            core.failures.unsafeUpdate(1, [])
          })
          return unconfirmed > window ? Effect.as(Effect.promise(() => settled), undefined) : Effect.succeed(undefined)
        }),
      subscribe: (channels) => Effect.asVoid(command("subscribe", () => subscriber.subscribe(...channels))),
      unsubscribe: (channels) => Effect.asVoid(command("unsubscribe", () => subscriber.unsubscribe(...channels)))
    } satisfies StackExchange.Transport
  })
