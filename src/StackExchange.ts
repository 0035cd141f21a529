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
import type * as Scope from "effect/Scope"
import type * as Errors from "./Errors.js"
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
  readonly reportStatus: (
    status: { readonly _tag: "Down"; readonly error: Errors.StackExchangeError } | { readonly _tag: "Up" }
  ) => void
}

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
}

/**
 * @since 0.1.0
 * @category tags
 */
export const StackExchange: Context.Tag<StackExchange, StackExchange> = Context.GenericTag<StackExchange>(
  "effect-neffos/StackExchange"
)
