/**
 * Scale-out across server instances. A `StackExchange` is an optional service:
 * when it is in the context of `Server.layer`, the server attaches to it and every
 * broadcast, targeted send and server-side ask also reaches the connections of the
 * other instances.
 *
 * The server hands the exchange a {@link LocalServer} (what this instance can do
 * locally) and calls the returned {@link Bridge} for what must cross instances.
 * Local delivery never waits for the broker, and neither does a broadcast's
 * publish: what one event-loop turn publishes leaves as one batch, and a bounded
 * number of publishes may wait for the broker's confirmation (beyond it they are
 * dropped and counted). A broker that stops answering for `brokerTimeout` is
 * reported down.
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
    options: {
      readonly to?: string | undefined
      readonly except: Exclusion
      /** the message's place in its room's shared history (a recoverable room's broadcast) */
      readonly stored?: Stored | undefined
    }
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
  /** a cluster message (heartbeat, presence, remote control) from another instance */
  readonly cluster?: ((origin: string, payload: Uint8Array) => void) | undefined
  /** another instance's summary for the admin dashboard (`Bridge.info`) */
  readonly info?: ((origin: string, payload: Uint8Array) => void) | undefined
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
  /**
   * Publishes a broadcast that was already delivered locally to the other
   * instances. It is queued and the effect completes at once: beyond the bound on
   * pending publishes it is dropped and counted in {@link droppedPublishes}; while
   * the broker is down it fails with `StackExchangeError` (`Down`). With `confirm`
   * it waits (at most `brokerTimeout`) for the broker to take it, and fails with
   * `Overloaded`, `Down` or `Timeout` instead of dropping.
   */
  readonly publish: (
    message: Message.Message,
    options: {
      readonly to?: string | undefined
      readonly except: Exclusion
      readonly confirm?: boolean | undefined
      /**
       * Keep it in the room's shared history (see {@link Bridge.history}): the store
       * gives it its position, and every instance, the publishing one included,
       * delivers it when it comes back from the broker with it.
       */
      readonly history?: HistorySettings | undefined
    }
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
  /**
   * Publishes a cluster message of the server's own (heartbeats, presence,
   * remote control) to every other instance, or to the instance `to`. Without
   * `confirm` it is queued and completes at once (dropped and counted beyond the
   * bound, failing while the broker is down); with `confirm` it waits that long at
   * most for the broker to take it.
   */
  readonly cluster: (
    payload: Uint8Array,
    options: { readonly to?: string | undefined; readonly confirm?: Duration.DurationInput | undefined }
  ) => Effect.Effect<void, Errors.StackExchangeError>
  /** connections of every instance */
  readonly connectionCount: Effect.Effect<number, Errors.StackExchangeError>
  /** closes the connections with this id on the other instances; returns how many */
  readonly close: (id: string, code: number, reason: string) => Effect.Effect<number, Errors.StackExchangeError>
  /**
   * Publishes this instance's summary to the other instances' `LocalServer.info`
   * (the admin dashboard's heartbeat): queued like a broadcast, dropped when it
   * cannot be.
   */
  readonly info?: ((payload: Uint8Array) => void) | undefined
  /** the rooms' shared history, when the transport keeps one (Redis Streams, JetStream) */
  readonly history?: BridgeHistory | undefined
  /** completes once the subscriptions asked for so far are live (see {@link StackExchange.settled}) */
  readonly settled?: Effect.Effect<void> | undefined
}

/**
 * A stored message's place in its room's history: its epoch (changes when the
 * history is lost), its offset (grows with every message of the room), the offset
 * of the room's message before it (`offset - 1` where offsets are contiguous) and
 * when it was stored, in ms.
 * @since 0.1.0
 * @category history
 */
export interface Stored {
  readonly epoch: string
  readonly offset: number
  readonly prev: number
  readonly time: number
}

/**
 * What a room's history keeps: `size` messages, each at most `ttl` ms.
 * @since 0.1.0
 * @category history
 */
export interface HistorySettings {
  readonly size: number
  readonly ttl: number
}

/**
 * A read of a room's history: its position now and, when `since` has the room's
 * epoch, the messages after it, oldest first (at most `limit + 1`); without
 * `since`, its latest `limit` messages. `covered` says
 * that nothing between `since` and them was trimmed or lost; `count` is how many
 * messages follow `since`, when the store knows it.
 * @since 0.1.0
 * @category history
 */
export interface HistoryRead<A> {
  readonly position: { readonly epoch: string; readonly offset: number }
  readonly entries: ReadonlyArray<A>
  readonly covered: boolean
  readonly count: number | undefined
}

/**
 * The history a transport keeps; a publication with `history` is appended to it
 * (and published with its position, which the receiving transports hand to
 * `onMessage`).
 * @since 0.1.0
 * @category history
 */
export interface TransportHistory {
  readonly read: (
    namespace: string,
    room: string,
    settings: HistorySettings,
    since: { readonly epoch: string; readonly offset: number } | undefined,
    limit: number
  ) => Effect.Effect<
    HistoryRead<{ readonly stored: Stored; readonly payload: Uint8Array }>,
    Errors.StackExchangeError
  >
}

/**
 * The shared history as a server reads it.
 * @since 0.1.0
 * @category history
 */
export interface BridgeHistory {
  readonly read: (
    namespace: string,
    room: string,
    settings: HistorySettings,
    since: { readonly epoch: string; readonly offset: number } | undefined,
    limit: number
  ) => Effect.Effect<
    HistoryRead<{ readonly stored: Stored; readonly message: Message.Message; readonly exceptId: string | undefined }>,
    Errors.StackExchangeError
  >
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
 * One message for a broker channel.
 *
 * @since 0.1.0
 * @category models
 */
export interface Publication {
  readonly channel: string
  readonly payload: Uint8Array
  /** append it to this room's history first (a transport with `history` only) */
  readonly history?: (HistorySettings & { readonly namespace: string; readonly room: string }) | undefined
}

/**
 * What a broker client must offer to carry an exchange: publish batches of bytes
 * to channels, keep a set of channel subscriptions, and answer a ping. Channel
 * names are plain ASCII (`[A-Za-z0-9_~.-]`), valid as Redis channels and as NATS
 * subjects.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transport {
  /**
   * Publishes a batch in order, as one write where the broker allows it (the
   * exchange hands over everything one event-loop turn published), after every
   * batch handed over before (per-publisher order is what the exchange promises).
   * Completes once the broker confirmed the whole batch: with, per message, the
   * number of subscribers that received it when the broker reports it (Redis
   * `PUBLISH`), `undefined` otherwise. Fails as a whole when the broker did not
   * take it. The exchange bounds how many publishes wait for this.
   */
  readonly publish: (batch: ReadonlyArray<Publication>) => Effect.Effect<
    ReadonlyArray<number | undefined>,
    Errors.StackExchangeError
  >
  /**
   * Completes when the broker answers, on every connection the transport uses
   * (Redis `PING`, a NATS flush). The exchange times it out itself.
   */
  readonly ping: Effect.Effect<void, Errors.StackExchangeError>
  /** idempotent; completes once the broker confirmed */
  readonly subscribe: (channels: ReadonlyArray<string>) => Effect.Effect<void, Errors.StackExchangeError>
  /** idempotent; completes once the broker confirmed */
  readonly unsubscribe: (channels: ReadonlyArray<string>) => Effect.Effect<void, Errors.StackExchangeError>
  /** the rooms' history, for transports that keep one */
  readonly history?: TransportHistory | undefined
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
  /** `stored`: the message was appended to its room's history, at this place */
  readonly onMessage: (channel: string, payload: Uint8Array, stored?: Stored) => void
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
   * an ask) waits for the broker to take it, and then for the other instances'
   * answers; default 500 ms.
   */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /**
   * A broker that leaves a ping unanswered this long is reported down
   * (`StackExchangeDown`; operations that need it fail at once) even though its
   * connection is open, and up again once it answers and the subscriptions are
   * restored. The exchange pings every quarter of it, so a broker that stops
   * answering is reported down after between 1 and 1.25 times this. Also the
   * longest a broadcast with `confirm` waits. Default 5 s; `Duration.infinity`
   * turns the pings off.
   */
  readonly brokerTimeout?: Duration.DurationInput | undefined
  /**
   * How many publishes (broadcasts, requests and their answers) may be queued or
   * wait for the broker's confirmation at once; beyond it a publish is dropped and
   * counted in {@link droppedPublishes}. Default 8,192.
   */
  readonly maxPendingPublishes?: number | undefined
  /** the same bound in envelope bytes (a single publish always fits); default 16 MiB */
  readonly maxPendingBytes?: number | undefined
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

/**
 * Counts the publishes dropped because `maxPendingPublishes` or
 * `maxPendingBytes` were already waiting for the broker
 * (`effect_neffos_stack_exchange_dropped_publishes`). A caller that asked for
 * confirmation got a `StackExchangeError` with reason `Overloaded` instead.
 *
 * @since 0.1.0
 * @category metrics
 */
export const droppedPublishes: Metric.Metric.Counter<number> = internal.droppedPublishes
