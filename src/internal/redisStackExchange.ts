/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import * as Errors from "../Errors.js"
import type * as RedisStackExchange from "../RedisStackExchange.js"
import type * as StackExchange from "../StackExchange.js"
import * as History from "./historyRedis.js"
import * as core from "./stackExchange.js"

const defaults = {
  url: "redis://127.0.0.1:6379",
  connectTimeout: Duration.seconds(5),
  commandTimeout: Duration.seconds(5),
  prefix: "neffos",
  metaTtl: Duration.days(1)
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
    const url = options.url === undefined
      ? defaults.url
      : Redacted.isRedacted(options.url)
      ? Redacted.value(options.url)
      : options.url
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
            reason: "Broker",
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
        catch: (cause) =>
          new Errors.StackExchangeError({ operation: "connect", reason: "Broker", cause: lastError ?? cause })
      })

    const publisher = yield* client("publisher")
    const subscriber = yield* client("subscriber")
    subscriber.on("messageBuffer", (channel: Buffer, message: Buffer) => {
      const stored = History.parseStored(message)
      if (stored === undefined) handlers.onMessage(channel.toString("latin1"), message)
      else handlers.onMessage(channel.toString("latin1"), stored.payload, stored.stored)
    })
    History.define(publisher)
    const prefix = options.prefix ?? defaults.prefix
    const metaTtl = Duration.decode(options.history?.metaTtl ?? defaults.metaTtl)
    /** a publication kept in its room's history goes through the append script (which publishes it) */
    const appendArgs = (publication: StackExchange.Publication) =>
      publication.history === undefined
        ? undefined
        : History.appendArgs(
          prefix,
          metaTtl,
          { ...publication, history: publication.history },
          toBuffer(publication.payload)
        )
    yield* Effect.all([connect(publisher), connect(subscriber)], { concurrency: 2, discard: true }).pipe(
      Effect.timeoutFail({
        duration: connectTimeout,
        onTimeout: () =>
          new Errors.StackExchangeError({
            operation: "connect",
            reason: "Timeout",
            cause: lastError ?? new Error(`no connection to ${url} within ${Duration.format(connectTimeout)}`)
          })
      })
    )

    const command = <A>(operation: string, f: () => Promise<A>) =>
      Effect.tryPromise({
        try: f,
        catch: (cause) => new Errors.StackExchangeError({ operation, reason: "Broker", cause })
      })

    return {
      // one pipeline per batch: one write, and the replies come back in order
      publish: (batch) => {
        if (batch.length === 1) {
          const args = appendArgs(batch[0])
          return Effect.map(
            command("publish", () =>
              args === undefined
                ? publisher.publish(batch[0].channel, toBuffer(batch[0].payload))
                : History.append(publisher, args)),
            (receivers) => [receivers]
          )
        }
        return Effect.flatMap(
          command("publish", () => {
            const pipeline = publisher.pipeline()
            for (const publication of batch) {
              const args = appendArgs(publication)
              if (args === undefined) pipeline.publish(publication.channel, toBuffer(publication.payload))
              else void History.append(pipeline, args)
            }
            return pipeline.exec()
          }),
          (results) => {
            const receivers: Array<number> = []
            for (const [error, count] of results ?? []) {
              if (error !== null) {
                return Effect.fail(
                  new Errors.StackExchangeError({ operation: "publish", reason: "Broker", cause: error })
                )
              }
              receivers.push(count as number)
            }
            return receivers.length === batch.length ? Effect.succeed(receivers) : Effect.fail(
              new Errors.StackExchangeError({
                operation: "publish",
                reason: "Broker",
                cause: new Error("Redis did not answer every publish of the pipeline")
              })
            )
          }
        )
      },
      // the subscribing connection answers PING too (as ["pong", ""]) while it is subscribed
      ping: Effect.all([command("ping", () => publisher.ping()), command("ping", () => subscriber.ping())], {
        concurrency: 2,
        discard: true
      }),
      subscribe: (channels) => Effect.asVoid(command("subscribe", () => subscriber.subscribe(...channels))),
      unsubscribe: (channels) => Effect.asVoid(command("unsubscribe", () => subscriber.unsubscribe(...channels))),
      history: History.history(publisher, prefix, metaTtl)
    } satisfies StackExchange.Transport
  })
