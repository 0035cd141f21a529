/**
 * Scale-out across server instances. A `StackExchange` is an optional service:
 * when it is in the context of `Server.layer`, the server attaches to it and every
 * broadcast, targeted send and server-side ask also reaches the connections of the
 * other instances.
 *
 * The server hands the exchange a {@link LocalServer} (what this instance can do
 * locally) and calls the returned {@link Bridge} for what must cross instances.
 * Local delivery never waits for the broker.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import type * as Errors from "./Errors.js"
import * as internal from "./internal/stackExchange.js"
import type * as Message from "./Message.js"

/**
 * What an instance subscribes to while it has local members: a namespace, a room
 * of a namespace, or a connection id.
 *
 * @since 0.1.0
 * @category models
 */
export type Topic =
  | { readonly _tag: "Namespace"; readonly namespace: string }
  | { readonly _tag: "Room"; readonly namespace: string; readonly room: string }
  | { readonly _tag: "Connection"; readonly id: string }

/**
 * Who a broadcast must skip: one exact connection (of some instance, by its
 * instance-local key) and/or every connection with an id.
 *
 * @since 0.1.0
 * @category models
 */
export interface Exclusion {
  readonly connection?: { readonly instance: string; readonly key: number } | undefined
  readonly id?: string | undefined
}

/**
 * What one instance offers its exchange.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalServer {
  /** unique per server instance (a random UUID) */
  readonly instanceId: string
  /** the topics with local members now (to resubscribe after a broker reconnect) */
  readonly topics: () => ReadonlyArray<Topic>
  /**
   * Delivers a message that arrived from another instance to the local members of
   * its namespace (and room, and `to` id), minus the exclusion. Returns how many
   * local connections it was offered to.
   */
  readonly deliver: (
    message: Message.Message,
    options: { readonly to?: string | undefined; readonly except: Exclusion }
  ) => number
  /** asks a local connection with this id (the first reply wins) */
  readonly ask: (
    request: {
      readonly to: string
      readonly namespace: string
      readonly room?: string | undefined
      readonly event: string
      readonly body?: string | Uint8Array | undefined
    },
    timeout: Duration.DurationInput
  ) => Effect.Effect<Message.Message, Errors.AskError | Errors.ConnectionNotFound>
  /** how many local connections have this id and are connected to the namespace (any, without one) */
  readonly count: (id: string, namespace?: string) => number
  readonly connectionCount: () => number
  /** closes the local connections with this id; returns how many */
  readonly close: (id: string, code: number, reason: string) => number
  /** reports a broker loss or recovery as a server lifecycle event */
  readonly reportStatus: (status: Status) => void
}

/**
 * The broker connection was lost, or is back (and, for an exchange, every
 * subscription is restored).
 *
 * @since 0.1.0
 * @category models
 */
export type Status = { readonly _tag: "Down"; readonly error: Errors.StackExchangeError } | { readonly _tag: "Up" }

/**
 * What a server calls on its exchange.
 *
 * @since 0.1.0
 * @category models
 */
export interface Bridge {
  /** a topic gained its first local member (`active`) or lost its last one */
  readonly topicChanged: (topic: Topic, active: boolean) => void
  /** publishes a broadcast that was already delivered locally to the other instances */
  readonly publish: (
    message: Message.Message,
    options: { readonly to?: string | undefined; readonly except: Exclusion }
  ) => Effect.Effect<void, Errors.StackExchangeError>
  /**
   * Delivers to the connections with `id` on other instances; fails with
   * `ConnectionNotFound` when no other instance has one.
   */
  readonly send: (
    id: string,
    message: Message.Message
  ) => Effect.Effect<void, Errors.ConnectionNotFound | Errors.StackExchangeError>
  /** asks a connection of another instance */
  readonly ask: (
    request: {
      readonly to: string
      readonly namespace: string
      readonly room?: string | undefined
      readonly event: string
      readonly body?: string | Uint8Array | undefined
    },
    timeout: Duration.DurationInput
  ) => Effect.Effect<Message.Message, Errors.AskError | Errors.ConnectionNotFound | Errors.StackExchangeError>
  /** connections of every instance */
  readonly connectionCount: Effect.Effect<number, Errors.StackExchangeError>
  /** closes the connections with this id on the other instances; returns how many */
  readonly close: (id: string, code: number, reason: string) => Effect.Effect<number, Errors.StackExchangeError>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface StackExchange {
  /** attaches one server instance for the lifetime of the scope */
  readonly attach: (local: LocalServer) => Effect.Effect<Bridge, never, Scope.Scope>
  /** the broker channels this exchange is subscribed to, as confirmed by the broker */
  readonly subscriptions: Effect.Effect<ReadonlyArray<string>>
  /**
   * Completes once every subscription change asked for so far is confirmed by the
   * broker (while the broker is down, once it is back and everything is restored).
   */
  readonly settled: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category tags
 */
export const StackExchange: Context.Tag<StackExchange, StackExchange> = Context.GenericTag<StackExchange>(
  "effect-neffos/StackExchange"
)

/**
 * What a broker client must offer to carry an exchange: publish bytes to a
 * channel and keep a set of channel subscriptions. Channel names are plain ASCII
 * (`[A-Za-z0-9_~.-]`), valid as Redis channels and as NATS subjects.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transport {
  /**
   * Publishes in call order (per-publisher order is what the exchange promises).
   * Without `confirm` it may succeed once the message is handed to the client in
   * order; with `confirm` it waits for the broker's acknowledgement and succeeds
   * with the number of subscribers that received the message when the broker
   * reports it (Redis `PUBLISH`), `undefined` otherwise.
   */
  readonly publish: (
    channel: string,
    payload: Uint8Array,
    options?: { readonly confirm?: boolean | undefined }
  ) => Effect.Effect<number | undefined, Errors.StackExchangeError>
  /** idempotent; completes once the broker confirmed */
  readonly subscribe: (channels: ReadonlyArray<string>) => Effect.Effect<void, Errors.StackExchangeError>
  /** idempotent; completes once the broker confirmed */
  readonly unsubscribe: (channels: ReadonlyArray<string>) => Effect.Effect<void, Errors.StackExchangeError>
}

/**
 * The callbacks a {@link Transport} calls: every message of a subscribed channel,
 * and every loss (`Down`) and recovery (`Up`) of the broker connection. After an
 * `Up` the exchange subscribes again to everything it needs.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransportHandlers {
  readonly onMessage: (channel: string, payload: Uint8Array) => void
  readonly onStatus: (status: Status) => void
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** the first token(s) of every channel; `[A-Za-z0-9_-]` tokens joined by `.`; default `neffos` */
  readonly prefix?: string | undefined
  /**
   * How long a cross-instance request (send, count, close, and finding the owner of
   * an ask) waits for the other instances' answers; default 500 ms.
   */
  readonly requestTimeout?: Duration.DurationInput | undefined
}

/**
 * Builds a broker-neutral exchange on a transport, acquired in the current scope.
 * The transport must be connected when `acquire` succeeds.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  acquire: (handlers: TransportHandlers) => Effect.Effect<Transport, Errors.StackExchangeError, Scope.Scope>,
  options?: Options
) => Effect.Effect<StackExchange, Errors.StackExchangeError, Scope.Scope> = internal.make

/**
 * Counts the operations that failed because of the broker: publishes, requests
 * and subscription changes that did not go through, and every loss of the
 * connection (`effect_neffos_stack_exchange_failures`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const failures: Metric.Metric.Counter<number> = internal.failures
