/** @internal */
import { connect, type Subscription } from "@nats-io/transport-node"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Errors from "../Errors.js"
import type * as NatsStackExchange from "../NatsStackExchange.js"
import type * as StackExchange from "../StackExchange.js"
import * as core from "./stackExchange.js"

const defaults = {
  servers: "127.0.0.1:4222",
  connectTimeout: Duration.seconds(5),
  flushTimeout: Duration.seconds(5)
}

/** @internal */
export const make = (
  options?: NatsStackExchange.Options
): Effect.Effect<StackExchange.StackExchange, Errors.StackExchangeError, Scope.Scope> =>
  core.make((handlers) => transport(options ?? {}, handlers), options)

const transport = (
  options: NatsStackExchange.Options,
  handlers: StackExchange.TransportHandlers
): Effect.Effect<StackExchange.Transport, Errors.StackExchangeError, Scope.Scope> =>
  Effect.gen(function*() {
    const connectTimeout = Duration.decode(options.connectTimeout ?? defaults.connectTimeout)
    const reveal = (server: string | Redacted.Redacted<string>) =>
      Redacted.isRedacted(server) ? Redacted.value(server) : server
    const servers = options.servers === undefined
      ? defaults.servers
      : typeof options.servers === "string" || Redacted.isRedacted(options.servers)
      ? reveal(options.servers)
      : Array.from(options.servers, reveal)
    const nc = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          connect({
            name: "effect-neffos",
            maxReconnectAttempts: -1,
            ...options.nats,
            servers,
            timeout: Duration.toMillis(connectTimeout)
          }),
        catch: (cause) => new Errors.StackExchangeError({ operation: "connect", reason: "Broker", cause })
      }),
      (nc) => Effect.ignore(Effect.timeout(Effect.promise(() => nc.close()), connectTimeout))
    )

    let up = true
    let lastError: unknown
    const setUp = (now: boolean) => {
      if (now === up) return
      up = now
      handlers.onStatus(
        now ? { _tag: "Up" } : {
          _tag: "Down",
          error: new Errors.StackExchangeError({
            operation: "connection",
            reason: "Broker",
            cause: lastError ?? new Error("the connection to NATS was lost")
          })
        }
      )
    }
    // a plain loop: it ends when the connection closes (Stream.fromAsyncIterable would wait for that on interruption)
    const watch = async () => {
      for await (const status of nc.status()) {
        switch (status.type) {
          case "error":
            lastError = status.error
            break
          case "disconnect":
          case "close":
            setUp(false)
            break
          case "reconnect":
            lastError = undefined
            setUp(true)
            break
        }
      }
    }
    watch().catch(() => setUp(false))

    // the client replays these subscriptions itself after a reconnect
    const subscriptions = new Map<string, Subscription>()
    const flush = (operation: string) =>
      Effect.tryPromise({
        try: () => nc.flush(),
        catch: (cause) => new Errors.StackExchangeError({ operation, reason: "Broker", cause })
      }).pipe(
        Effect.timeoutFail({
          duration: defaults.flushTimeout,
          onTimeout: () =>
            new Errors.StackExchangeError({ operation, reason: "Timeout", cause: new Error("NATS did not confirm") })
        })
      )
    const attempt = (operation: string, f: () => void) =>
      Effect.try({ try: f, catch: (cause) => new Errors.StackExchangeError({ operation, reason: "Broker", cause }) })

    return {
      // NATS acknowledges no publish and counts no receivers: the server's answer to the PING
      // that follows the batch (in the same write) confirms it processed everything before
      publish: (batch) =>
        attempt("publish", () => {
          for (const { channel, payload } of batch) nc.publish(channel, payload)
        }).pipe(
          Effect.zipRight(flush("publish")),
          Effect.map(() => batch.map(() => undefined))
        ),
      ping: flush("ping"),
      subscribe: (channels) =>
        Effect.zipRight(
          attempt("subscribe", () => {
            for (const channel of channels) {
              if (subscriptions.has(channel)) continue
              subscriptions.set(
                channel,
                nc.subscribe(channel, {
                  callback: (error, message) => {
                    if (error === null) handlers.onMessage(message.subject, message.data)
                  }
                })
              )
            }
          }),
          flush("subscribe")
        ),
      unsubscribe: (channels) =>
        Effect.zipRight(
          attempt("unsubscribe", () => {
            for (const channel of channels) {
              subscriptions.get(channel)?.unsubscribe()
              subscriptions.delete(channel)
            }
          }),
          flush("unsubscribe")
        )
    } satisfies StackExchange.Transport
  })
