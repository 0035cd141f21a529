/**
 * Event handlers, grouped by namespace. A handler is an Effect program that
 * receives the namespace handle and the message; its error type becomes the
 * peer's error reply and its requirements become requirements of the Layer that
 * runs it.
 *
 * Lookup is by exact event name, then `_OnAnyEvent`. The lifecycle events of
 * neffos are ordinary entries: `_OnNamespaceConnect` (fail to refuse),
 * `_OnNamespaceConnected`, `_OnNamespaceDisconnect` (fail to refuse a client's
 * request), `_OnRoomJoin` (fail to refuse), `_OnRoomJoined`, `_OnRoomLeave` (fail to
 * refuse), `_OnRoomLeft`, and `_OnNativeMessage` on namespace `""` for raw frames.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import type { Inspectable } from "effect/Inspectable"
import type { Pipeable } from "effect/Pipeable"
import type * as Conn from "./Conn.js"
import { pipeableInspectable } from "./internal/data.js"
import * as failure from "./internal/failure.js"
import type * as Message from "./Message.js"
import type * as Reply from "./Reply.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-neffos/Events")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * A handler: return a `Reply` to answer, nothing to stay silent, fail to send an
 * error back.
 *
 * @since 0.1.0
 * @category models
 */
export type Handler<NS, E = never, R = never> = (ns: NS, message: Message.Message) => Effect.Effect<
  void | Reply.Reply,
  E,
  R
>

/**
 * The handlers of one namespace, by event name.
 *
 * @since 0.1.0
 * @category models
 */
export type EventMap<NS> = { readonly [event: string]: Handler<NS, any, any> }

/**
 * Handlers by namespace, then by event name.
 *
 * @since 0.1.0
 * @category models
 */
export type NamespaceMap<NS> = { readonly [namespace: string]: EventMap<NS> }

/**
 * A set of handlers for the connections of one side (`NS` is the namespace
 * handle they receive), failing with `E` and requiring `R`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Events<NS, out E, out R> extends Pipeable, Inspectable {
  readonly [TypeId]: {
    readonly NS: (_: NS) => void
    readonly E: (_: never) => E
    readonly R: (_: never) => R
  }
  readonly table: ReadonlyMap<string, ReadonlyMap<string, Handler<NS, E, R>>>
}

/**
 * Server-side handlers.
 *
 * @since 0.1.0
 * @category models
 */
export type ServerEvents<E = never, R = never> = Events<Conn.NSConn, E, R>

/**
 * The error type of a map of handlers.
 *
 * @since 0.1.0
 * @category type level
 */
export type ErrorOf<M> = {
  [N in keyof M]: { [K in keyof M[N]]: M[N][K] extends Handler<any, infer E, any> ? E : never }[keyof M[N]]
}[keyof M]

/**
 * The requirements of a map of handlers.
 *
 * @since 0.1.0
 * @category type level
 */
export type ContextOf<M> = {
  [N in keyof M]: { [K in keyof M[N]]: M[N][K] extends Handler<any, any, infer R> ? R : never }[keyof M[N]]
}[keyof M]

/**
 * How a handler failed: with an error of its error channel (`Fail`), or with a
 * defect (`Die`). An interrupted handler sends nothing.
 *
 * @since 0.1.0
 * @category failures
 */
export type HandlerFailure =
  | { readonly _tag: "Fail"; readonly error: unknown }
  | { readonly _tag: "Die"; readonly defect: unknown }

/**
 * Where a handler failed. `event` is `onConnect` for the server's `onConnect`.
 *
 * @since 0.1.0
 * @category failures
 */
export interface FailureContext {
  readonly connectionId: string
  readonly namespace: string
  readonly room: string
  readonly event: string
}

/**
 * Maps a failed handler to the error text its peer gets (the body of the error
 * reply, a lifecycle veto, or the `H<reason>` of a refused handshake). The default,
 * {@link defaultErrorText}, never sends a stack, a parse tree or a cause.
 *
 * @since 0.1.0
 * @category failures
 */
export type ErrorText = (failure: HandlerFailure, context: FailureContext) => string

/**
 * The default error text: a defect is `internal error`; a Schema `ParseError` is
 * `bad request`; a tagged error is its `message`, or its `_tag` when the message
 * is empty; a string is itself; anything else is `error`. The defect is logged at
 * error level and every other failure at debug level, with the connection id,
 * namespace, room and event.
 *
 * @since 0.1.0
 * @category failures
 */
export const defaultErrorText: (failure: HandlerFailure) => string = failure.defaultErrorText

const variance = { NS: (_: unknown) => {}, E: (_: never) => _, R: (_: never) => _ }

const proto = { [TypeId]: variance }
pipeableInspectable(proto, (self: Events<unknown, unknown, unknown>) => ({
  _id: "Events",
  namespaces: Object.fromEntries(
    Array.from(self.table, ([namespace, events]) => [namespace, Array.from(events.keys())])
  )
}))

const fromTable = <NS, E, R>(table: ReadonlyMap<string, ReadonlyMap<string, Handler<NS, E, R>>>): Events<NS, E, R> => {
  const self = Object.create(proto)
  self.table = table
  return self
}

/**
 * Builds events of any side from a map of handlers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <NS, M extends NamespaceMap<NS>>(map: M): Events<NS, ErrorOf<M>, ContextOf<M>> => {
  const table = new Map<string, ReadonlyMap<string, Handler<NS, any, any>>>()
  for (const namespace of Object.keys(map)) {
    table.set(namespace, new Map(Object.entries(map[namespace])))
  }
  return fromTable(table) as Events<NS, ErrorOf<M>, ContextOf<M>>
}

/**
 * Server-side handlers by namespace, then by event name.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Events, Reply } from "effect-neffos"
 *
 * const events = Events.namespaces({
 *   default: {
 *     chat: (ns, msg) => ns.broadcastOthers(msg),
 *     echo: (_ns, msg) => Effect.succeed(Reply.text(String(msg.body)))
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const namespaces = <const M extends NamespaceMap<Conn.NSConn>>(
  map: M
): Events<Conn.NSConn, ErrorOf<M>, ContextOf<M>> => make<Conn.NSConn, M>(map)

/**
 * Client-side handlers by namespace, then by event name (for `Client.dial`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const client = <const M extends NamespaceMap<Conn.ClientNSConn>>(
  map: M
): Events<Conn.ClientNSConn, ErrorOf<M>, ContextOf<M>> => make<Conn.ClientNSConn, M>(map)

/**
 * Combines handler sets; for the same namespace and event the later one wins.
 *
 * @example
 * ```ts
 * const all = Events.merge(chat, admin)
 * const same = chat.pipe(Events.merge(admin))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const merge: {
  <NS, E2, R2>(that: Events<NS, E2, R2>): <E1, R1>(self: Events<NS, E1, R1>) => Events<NS, E1 | E2, R1 | R2>
  <NS, E1, R1, E2, R2>(self: Events<NS, E1, R1>, that: Events<NS, E2, R2>): Events<NS, E1 | E2, R1 | R2>
} = dual(2, <NS, E1, R1, E2, R2>(
  self: Events<NS, E1, R1>,
  that: Events<NS, E2, R2>
): Events<NS, E1 | E2, R1 | R2> => {
  const table = new Map<string, ReadonlyMap<string, Handler<NS, any, any>>>(self.table)
  for (const [namespace, events] of that.table) {
    const existing = table.get(namespace)
    table.set(namespace, existing === undefined ? events : new Map([...existing, ...events]))
  }
  return fromTable(table) as Events<NS, E1 | E2, R1 | R2>
})
