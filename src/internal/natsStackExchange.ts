/** @internal */
import { connect, type Msg, type Subscription } from "@nats-io/transport-node"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Errors from "../Errors.js"
import type * as NatsStackExchange from "../NatsStackExchange.js"
import type * as StackExchange from "../StackExchange.js"
import * as History from "./historyNats.js"
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

    const history = options.history === undefined
      ? undefined
      : yield* History.make(nc, options.prefix ?? "neffos", options.history)
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
    const checkStream = () => {
      history!.ensure().then(() => {
        release()
        setUp(true)
      }, (error) => {
        lastError = error
        if (!nc.isClosed()) setTimeout(checkStream, 250)
      })
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
            history?.lost()
            setUp(false)
            break
          case "reconnect":
            lastError = undefined
            if (history === undefined) {
              setUp(true)
              break
            }
            // the stream may be gone with a NATS that restarted: the epoch is known again once it is checked
            checkStream()
            break
        }
      }
    }
    watch().catch(() => setUp(false))

    /** what arrived while the history's epoch was not known yet (after a reconnect), in order */
    let held: Array<Msg> = []
    const deliver = (message: Msg) => {
      if (history === undefined) return handlers.onMessage(message.subject, message.data)
      if (!history.ready() || held.length > 0) {
        if (held.length < 65_536) held.push(message)
        return
      }
      handlers.onMessage(message.subject, message.data, history.storedOf(message))
    }
    const release = () => {
      const messages = held
      held = []
      for (const message of messages) handlers.onMessage(message.subject, message.data, history!.storedOf(message))
    }
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
          let acks: Array<Promise<unknown>> | undefined
          for (const publication of batch) {
            if (publication.history !== undefined && history !== undefined) {
              // JetStream stores it and republishes it to the room's channel: one request, in order with the rest
              ;(acks ??= []).push(history.publish(publication))
            } else {
              nc.publish(publication.channel, publication.payload)
            }
          }
          return acks
        }).pipe(
          Effect.flatMap((acks) =>
            acks === undefined ? flush("publish") : Effect.tryPromise({
              try: () => Promise.all(acks),
              catch: (cause) => new Errors.StackExchangeError({ operation: "publish", reason: "Broker", cause })
            })
          ),
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
                    if (error === null) deliver(message)
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
        ),
      history: history?.history
    } satisfies StackExchange.Transport
  })
