/**
 * Typed contracts: one declaration, shared by server and client code, of every
 * event the two sides exchange, with an Effect `Schema` for each payload, each
 * answer and each declared error.
 *
 * A contract has namespaces; each namespace has events of three kinds:
 *
 * - `Contract.push(payload)`: server → client, fire and forget;
 * - `Contract.emit(payload)`: client → server, fire and forget;
 * - `Contract.ask({ payload, success, error })`: a request and its answer, from the
 *   client to the server (or, with `direction: "toClient"`, from the server to the
 *   client); `error` is a `Schema.TaggedError` class (or a union of them).
 *
 * and, optionally, a schema for its room names (`Contract.namespace(events, { room })`).
 *
 * From the contract, `Contract.handlers` builds the server's `Events` (exhaustive:
 * a missing or misspelt handler does not compile; payloads are decoded before the
 * handler runs), `Contract.server` gives typed broadcast / send / ask, and
 * `Contract.dial` (or `Contract.clientEvents` + `Contract.client` on a connection
 * you dial yourself) gives a typed client: emit, ask, pushes as a `Stream`, and
 * handlers for the server's asks.
 *
 * **Wire.** Still the neffos protocol, so neffos.js and Go neffos peers take part by
 * sending and reading JSON: a body is `JSON.stringify` of the schema's *encoded*
 * form (an empty body stands for `undefined`, so `Schema.Void` payloads are empty);
 * a payload whose encoded form is a `Uint8Array` (`Schema.Uint8ArrayFromSelf`) goes
 * as a binary body, raw. Error replies are text:
 *
 * - a declared error: its readable text (its `message`, or its `_tag`), then a line
 *   `effect-neffos-error:` followed by the JSON of the encoded error —
 *   `"not a date: someday\neffect-neffos-error:{\"_tag\":\"InvalidDate\",\"input\":\"someday\"}"`.
 *   A neffos.js peer reads the first line (or parses the second); this package's
 *   client decodes the second back into the same class. A `_tag` the ask does not
 *   declare (or JSON that does not decode) becomes `Errors.RemoteError` with the
 *   readable text — never a crash.
 * - a payload that does not decode: `bad request: <path>: expected <type>`, at
 *   most about 200 characters, without the values that were received; the handler
 *   does not run.
 * - a handler that dies: `internal error` (the defect is logged, not sent).
 *
 * **Encoding** a value of the schema's type is expected to succeed: a failure (a
 * refinement the value does not meet, a `BigInt` in JSON) is a defect of the
 * sender. Decode untrusted input yourself first (`Schema.decodeUnknown`).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Contract } from "effect-neffos"
 *
 * class InvalidDate extends Schema.TaggedError<InvalidDate>()("InvalidDate", { input: Schema.String }) {
 *   override get message() {
 *     return `not a date: ${this.input}`
 *   }
 * }
 *
 * export const Chat = Contract.make({
 *   default: Contract.namespace({
 *     chat: Contract.emit({ text: Schema.String }),
 *     message: Contract.push({ from: Schema.String, text: Schema.String }),
 *     workday: Contract.ask({ payload: Schema.String, success: Schema.Boolean, error: InvalidDate })
 *   }, { room: Schema.String.pipe(Schema.pattern(/^[a-z]{1,16}$/)) })
 * })
 *
 * const events = Contract.handlers(Chat, {
 *   default: {
 *     chat: (ns, { text }, { room }) => ns.broadcastOthers(Chat.default.message, { from: ns.conn.id, text }, { room }),
 *     workday: (_ns, input) => {
 *       const date = new Date(`${input}T12:00:00Z`)
 *       return Number.isNaN(date.getTime())
 *         ? Effect.fail(new InvalidDate({ input }))
 *         : Effect.succeed(date.getUTCDay() % 6 !== 0)
 *     }
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import type * as ParseResult from "effect/ParseResult"
import type * as Queue from "effect/Queue"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Client from "./Client.js"
import type * as Conn from "./Conn.js"
import type * as Errors from "./Errors.js"
import type * as Events from "./Events.js"
import * as internal from "./internal/contract.js"
import * as internalClient from "./internal/contractClient.js"
import type * as Message from "./Message.js"
import type * as Server from "./Server.js"

// Over 450 lines on purpose: this is the public surface of contracts, about half of it
// documentation and most of the rest type-level (what a handler, a view and a client of a
// given contract look like); the code is in internal/contract*.ts.

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * The key under which a contract's namespace keeps its room schema.
 *
 * @since 0.1.0
 * @category type ids
 */
export const RoomTypeId: unique symbol = internal.RoomTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type RoomTypeId = typeof RoomTypeId

/**
 * A payload, success or error schema: no requirements.
 *
 * @since 0.1.0
 * @category models
 */
export type AnySchema = Schema.Schema.All

/**
 * A room-name schema: its encoded form is the room's name on the wire.
 *
 * @since 0.1.0
 * @category models
 */
export type RoomSchema = Schema.Schema.Any & { readonly Encoded: string }

/**
 * The room schema of a namespace declared without one.
 *
 * @since 0.1.0
 * @category models
 */
export type DefaultRoom = typeof Schema.String

/**
 * What a payload may be given as: a schema, or the fields of a `Schema.Struct`.
 *
 * @since 0.1.0
 * @category models
 */
export type PayloadInput = AnySchema | Schema.Struct.Fields

/**
 * The schema a {@link PayloadInput} stands for.
 *
 * @since 0.1.0
 * @category type level
 */
export type PayloadSchema<P extends PayloadInput> = P extends AnySchema ? P
  : P extends Schema.Struct.Fields ? Schema.Struct<P>
  : never

/**
 * Which side asks: `toServer` (the client asks, the server answers; the default)
 * or `toClient` (the server asks, the client answers).
 *
 * @since 0.1.0
 * @category models
 */
export type Direction = "toServer" | "toClient"

/**
 * A push before it is placed in a contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface PushDefinition<P extends AnySchema> {
  readonly _tag: "Push"
  readonly payload: P
}

/**
 * An emit before it is placed in a contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmitDefinition<P extends AnySchema> {
  readonly _tag: "Emit"
  readonly payload: P
}

/**
 * An ask before it is placed in a contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface AskDefinition<P extends AnySchema, S extends AnySchema, E extends AnySchema, D extends Direction> {
  readonly _tag: "Ask"
  readonly direction: D
  readonly payload: P
  readonly success: S
  readonly error: E
}

/**
 * Any event definition.
 *
 * @since 0.1.0
 * @category models
 */
export type Definition =
  | PushDefinition<AnySchema>
  | EmitDefinition<AnySchema>
  | AskDefinition<AnySchema, AnySchema, AnySchema, Direction>

/**
 * Where an event of a contract lives: its namespace, its name and the room schema
 * of its namespace.
 *
 * @since 0.1.0
 * @category models
 */
export interface Placement<NS extends string, Name extends string, Room extends RoomSchema> {
  readonly namespace: NS
  readonly name: Name
  readonly room: Room
}

/**
 * A server → client message of a contract (`contract.default.notice`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Push<
  P extends AnySchema = AnySchema,
  NS extends string = string,
  Name extends string = string,
  Room extends RoomSchema = RoomSchema
> extends PushDefinition<P>, Placement<NS, Name, Room> {}

/**
 * A client → server message of a contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface Emit<
  P extends AnySchema = AnySchema,
  NS extends string = string,
  Name extends string = string,
  Room extends RoomSchema = RoomSchema
> extends EmitDefinition<P>, Placement<NS, Name, Room> {}

/**
 * A request and its answer, of a contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ask<
  P extends AnySchema = AnySchema,
  S extends AnySchema = AnySchema,
  E extends AnySchema = AnySchema,
  D extends Direction = Direction,
  NS extends string = string,
  Name extends string = string,
  Room extends RoomSchema = RoomSchema
> extends AskDefinition<P, S, E, D>, Placement<NS, Name, Room> {}

/**
 * Any event of a contract.
 *
 * @since 0.1.0
 * @category models
 */
export type Event = Push | Emit | Ask

/**
 * A namespace declared with options (see {@link namespace}).
 *
 * @since 0.1.0
 * @category models
 */
export interface NamespaceDefinition<Events extends Record<string, Definition>, Room extends RoomSchema> {
  readonly _tag: "NamespaceDefinition"
  readonly events: Events
  readonly room: Room
}

/**
 * What {@link make} takes: namespaces by name, each a record of event definitions
 * or a {@link NamespaceDefinition}.
 *
 * @since 0.1.0
 * @category models
 */
export type Declaration = {
  readonly [namespace: string]: Record<string, Definition> | NamespaceDefinition<Record<string, Definition>, RoomSchema>
}

/**
 * An event definition placed in namespace `NS` under `Name`.
 *
 * @since 0.1.0
 * @category type level
 */
export type Place<D, NS extends string, Name extends string, Room extends RoomSchema> = D extends
  PushDefinition<infer P> ? Push<P, NS, Name, Room>
  : D extends EmitDefinition<infer P> ? Emit<P, NS, Name, Room>
  : D extends AskDefinition<infer P, infer S, infer E, infer Dir> ? Ask<P, S, E, Dir, NS, Name, Room>
  : never

/**
 * A namespace of a contract: its events by name, and its room schema.
 *
 * @since 0.1.0
 * @category type level
 */
export type Namespace<Events extends Record<string, Definition>, NS extends string, Room extends RoomSchema> =
  & { readonly [Name in keyof Events & string]: Place<Events[Name], NS, Name, Room> }
  & { readonly [RoomTypeId]: Room }

/**
 * The namespaces of a contract built from a {@link Declaration}.
 *
 * @since 0.1.0
 * @category type level
 */
export type Namespaces<D extends Declaration> = {
  readonly [NS in keyof D & string]: D[NS] extends NamespaceDefinition<infer Events, infer Room>
    ? Namespace<Events, NS, Room>
    : D[NS] extends Record<string, Definition> ? Namespace<D[NS], NS, DefaultRoom>
    : never
}

/**
 * A contract: its namespaces by name, each holding its events by name
 * (`contract.default.chat`). A plain value, shared by server and client code.
 *
 * @since 0.1.0
 * @category models
 */
export type Contract<N extends Record<string, any> = Record<string, any>> = N & { readonly [TypeId]: TypeId }

/**
 * @since 0.1.0
 * @category models
 */
export type Any = Contract<any>

// -----------------------------------------------------------------------------
// type level
// -----------------------------------------------------------------------------

/**
 * The namespace names of a contract.
 *
 * @since 0.1.0
 * @category type level
 */
export type NamespaceName<C> = Extract<keyof C, string>

/**
 * The events of a namespace of a contract (every namespace by default).
 *
 * @since 0.1.0
 * @category type level
 */
export type EventOf<C, NS extends NamespaceName<C> = NamespaceName<C>> = {
  [N in NS]: C[N][Extract<keyof C[N], string>]
}[NS]

/**
 * The type of an event's payload.
 *
 * @since 0.1.0
 * @category type level
 */
export type Payload<Ev> = Ev extends { readonly payload: infer P extends AnySchema } ? Schema.Schema.Type<P> : never

/**
 * The type of an ask's answer.
 *
 * @since 0.1.0
 * @category type level
 */
export type Success<Ev> = Ev extends { readonly success: infer S extends AnySchema } ? Schema.Schema.Type<S> : never

/**
 * The declared errors of an ask.
 *
 * @since 0.1.0
 * @category type level
 */
export type Failure<Ev> = Ev extends { readonly error: infer E extends AnySchema } ? Schema.Schema.Type<E> : never

/**
 * The room type of a namespace of a contract (`string` when it declares no room schema).
 *
 * @since 0.1.0
 * @category type level
 */
export type RoomOf<C, NS extends NamespaceName<C>> = C[NS] extends { readonly [RoomTypeId]: infer R extends RoomSchema }
  ? Schema.Schema.Type<R>
  : string

/**
 * What the server may push in namespace `NS`.
 *
 * @since 0.1.0
 * @category type level
 */
export type PushOf<C, NS extends NamespaceName<C> = NamespaceName<C>> = Extract<EventOf<C, NS>, Push>

/**
 * What a client may emit in namespace `NS`.
 *
 * @since 0.1.0
 * @category type level
 */
export type EmitOf<C, NS extends NamespaceName<C> = NamespaceName<C>> = Extract<EventOf<C, NS>, Emit>

/**
 * The asks of namespace `NS` in direction `D`.
 *
 * @since 0.1.0
 * @category type level
 */
export type AskOf<C, D extends Direction, NS extends NamespaceName<C> = NamespaceName<C>> = Extract<
  EventOf<C, NS>,
  Ask<AnySchema, AnySchema, AnySchema, D>
>

// -----------------------------------------------------------------------------
// errors
// -----------------------------------------------------------------------------

/**
 * The answer to an ask did not decode with the ask's `success` schema. `summary`
 * says where and what was expected, without the received values; `cause` has it all.
 *
 * @since 0.1.0
 * @category errors
 */
export interface ReplyDecodeError extends Cause.YieldableError {
  readonly _tag: "ReplyDecodeError"
  readonly namespace: string
  readonly event: string
  readonly summary: string
  readonly cause: ParseResult.ParseError
}

/**
 * @since 0.1.0
 * @category errors
 */
export const ReplyDecodeError: new(args: {
  readonly namespace: string
  readonly event: string
  readonly summary: string
  readonly cause: ParseResult.ParseError
}) => ReplyDecodeError = internal.ReplyDecodeError

/**
 * The errors of a typed ask, beyond its declared ones.
 *
 * @since 0.1.0
 * @category errors
 */
export type AskError = Errors.AskError | ReplyDecodeError

// -----------------------------------------------------------------------------
// constructors
// -----------------------------------------------------------------------------

/**
 * A server → client message. `payload` is a schema or the fields of a struct;
 * omitted, the push carries nothing (`Schema.Void`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const push: {
  (): PushDefinition<typeof Schema.Void>
  <const P extends PayloadInput>(payload: P): PushDefinition<PayloadSchema<P>>
} = internal.push

/**
 * A client → server message. `payload` is a schema or the fields of a struct;
 * omitted, the emit carries nothing (`Schema.Void`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const emit: {
  (): EmitDefinition<typeof Schema.Void>
  <const P extends PayloadInput>(payload: P): EmitDefinition<PayloadSchema<P>>
} = internal.emit

/**
 * A request and its answer: `payload` (default `Schema.Void`), `success` (default
 * `Schema.Void`) and `error` (default `Schema.Never`: no declared error), best a
 * `Schema.TaggedError` class or a `Schema.Union` of them. The client asks the
 * server, or, with `direction: "toClient"`, the server asks the client.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ask: <
  const P extends PayloadInput = typeof Schema.Void,
  S extends AnySchema = typeof Schema.Void,
  E extends AnySchema = typeof Schema.Never,
  D extends Direction = "toServer"
>(options: {
  readonly payload?: P | undefined
  readonly success?: S | undefined
  readonly error?: E | undefined
  readonly direction?: D | undefined
}) => AskDefinition<PayloadSchema<NoInfer<P>>, NoInfer<S>, NoInfer<E>, NoInfer<D>> = internal.ask

/**
 * A namespace with options: `room`, the schema of its room names (the client joins
 * with values of its type; the server refuses a join whose name does not decode,
 * with `bad request: room: …`, and hands decoded rooms to handlers).
 *
 * @since 0.1.0
 * @category constructors
 */
export const namespace: <const Events extends Record<string, Definition>, Room extends RoomSchema = DefaultRoom>(
  events: Events,
  options?: { readonly room?: Room | undefined }
) => NamespaceDefinition<Events, Room> = internal.namespace

/**
 * A contract from its namespaces. Event names must not be neffos system events
 * (`_On…`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <const D extends Declaration>(declaration: D) => Contract<Namespaces<D>> = internal.make

/**
 * @since 0.1.0
 * @category guards
 */
export const isContract: (u: unknown) => u is Any = internal.isContract

// -----------------------------------------------------------------------------
// server
// -----------------------------------------------------------------------------

/**
 * What a handler learns about the message besides its payload: the room it was
 * sent in (decoded with the namespace's room schema; `undefined` outside rooms) and
 * the message itself.
 *
 * @since 0.1.0
 * @category models
 */
export interface Received<Room> {
  readonly room: Room | undefined
  readonly message: Message.Message
}

/**
 * Options of a typed ask.
 *
 * @since 0.1.0
 * @category models
 */
export interface AskOptions<Room> extends Conn.RequestOptions {
  readonly room?: Room | undefined
}

/**
 * A connection's namespace on the server, typed by the contract: what a handler
 * receives.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerNamespace<C, NS extends NamespaceName<C>> {
  /** the untyped handle */
  readonly nsConn: Conn.NSConn
  readonly conn: Conn.Conn
  readonly namespace: NS
  /** to this connection (in `room`, which it must have joined) */
  readonly emit: <Ev extends PushOf<C, NS>>(
    event: Ev,
    payload: Payload<Ev>,
    options?: { readonly room?: RoomOf<C, NS> | undefined }
  ) => Effect.Effect<void, Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom>
  /** asks this connection's client; its declared errors come back as themselves */
  readonly ask: <Ev extends AskOf<C, "toClient", NS>>(
    event: Ev,
    payload: Payload<Ev>,
    options?: AskOptions<RoomOf<C, NS>>
  ) => Effect.Effect<Success<Ev>, Failure<Ev> | AskError>
  /** to every connection of the namespace (or `room`; `to`: with that id), this one included */
  readonly broadcast: <Ev extends PushOf<C, NS>>(
    event: Ev,
    payload: Payload<Ev>,
    options?: { readonly room?: RoomOf<C, NS> | undefined; readonly to?: string | undefined }
  ) => Effect.Effect<void>
  /** to every connection of the namespace (or `room`) but this one */
  readonly broadcastOthers: <Ev extends PushOf<C, NS>>(
    event: Ev,
    payload: Payload<Ev>,
    options?: { readonly room?: RoomOf<C, NS> | undefined; readonly to?: string | undefined }
  ) => Effect.Effect<void>
  /** joins the client to a room (server-initiated) */
  readonly joinRoom: (
    room: RoomOf<C, NS>,
    options?: Conn.RequestOptions
  ) => Effect.Effect<ServerRoom<C, NS>, Errors.RequestError>
  readonly room: (room: RoomOf<C, NS>) => Effect.Effect<ServerRoom<C, NS>, Errors.BadRoom>
  readonly rooms: Effect.Effect<ReadonlyArray<ServerRoom<C, NS>>>
  readonly leaveAll: (options?: Conn.RequestOptions) => Effect.Effect<void, Errors.RequestError>
  readonly disconnect: (options?: Conn.RequestOptions) => Effect.Effect<void, Errors.RequestError>
}

/**
 * A connection's room on the server, typed by the contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerRoom<C, NS extends NamespaceName<C>> {
  /** the untyped handle */
  readonly handle: Conn.Room
  readonly name: RoomOf<C, NS>
  readonly nsConn: ServerNamespace<C, NS>
  readonly emit: <Ev extends PushOf<C, NS>>(
    event: Ev,
    payload: Payload<Ev>
  ) => Effect.Effect<void, Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom>
  readonly ask: <Ev extends AskOf<C, "toClient", NS>>(
    event: Ev,
    payload: Payload<Ev>,
    options?: Conn.RequestOptions
  ) => Effect.Effect<Success<Ev>, Failure<Ev> | AskError>
  readonly broadcast: <Ev extends PushOf<C, NS>>(event: Ev, payload: Payload<Ev>) => Effect.Effect<void>
  readonly broadcastOthers: <Ev extends PushOf<C, NS>>(event: Ev, payload: Payload<Ev>) => Effect.Effect<void>
  readonly leave: (options?: Conn.RequestOptions) => Effect.Effect<void, Errors.RequestError>
}

/**
 * The lifecycle events a contract's handlers may add, as in `Events.namespaces`,
 * with the typed namespace handle and, third, the message's room decoded.
 *
 * @since 0.1.0
 * @category models
 */
export type LifecycleEvent =
  | "_OnNamespaceConnect"
  | "_OnNamespaceConnected"
  | "_OnNamespaceDisconnect"
  | "_OnRoomJoin"
  | "_OnRoomJoined"
  | "_OnRoomLeave"
  | "_OnRoomLeft"

type LifecycleHandlers<NSHandle, Room> = {
  readonly [K in LifecycleEvent]?: (
    ns: NSHandle,
    message: Message.Message,
    received: Received<Room>
  ) => Effect.Effect<void, any, any>
}

type HandlerOf<Ev, NSHandle, Room> = Ev extends Emit ?
  (ns: NSHandle, payload: Payload<Ev>, received: Received<Room>) => Effect.Effect<void, never, any>
  : Ev extends Ask ? (
      ns: NSHandle,
      payload: Payload<Ev>,
      received: Received<Room>
    ) => Effect.Effect<Success<Ev>, Failure<Ev>, any>
  : never

type ServerHandled<C, NS extends NamespaceName<C>> = EmitOf<C, NS> | AskOf<C, "toServer", NS>

type NamespaceHandlers<C, NS extends NamespaceName<C>> =
  & {
    readonly [Name in ServerHandled<C, NS>["name"]]: HandlerOf<
      Extract<ServerHandled<C, NS>, { readonly name: Name }>,
      ServerNamespace<C, NS>,
      RoomOf<C, NS>
    >
  }
  & LifecycleHandlers<ServerNamespace<C, NS>, RoomOf<C, NS>>

type RequiredServerNamespaces<C> = {
  [NS in NamespaceName<C>]: [ServerHandled<C, NS>] extends [never] ? never : NS
}[NamespaceName<C>]

/**
 * The server's handlers of a contract: for every namespace, one handler for every
 * emit and every client → server ask (no more, no fewer), and any lifecycle
 * events. An emit's handler returns `Effect<void>`; an ask's returns its
 * success and fails only with its declared errors.
 *
 * @since 0.1.0
 * @category models
 */
export type Handlers<C> =
  & { readonly [NS in RequiredServerNamespaces<C>]: NamespaceHandlers<C, NS> }
  & { readonly [NS in Exclude<NamespaceName<C>, RequiredServerNamespaces<C>>]?: NamespaceHandlers<C, NS> }

/**
 * Rejects handlers for events a contract does not have (a misspelt name).
 *
 * @since 0.1.0
 * @category type level
 */
export type Exact<H, Allowed> = {
  readonly [NS in keyof H]: NS extends keyof Allowed ? {
      readonly [K in keyof H[NS]]: K extends keyof NonNullable<Allowed[NS]> ? H[NS][K] : never
    }
    : never
}

/**
 * The requirements of a map of handlers.
 *
 * @since 0.1.0
 * @category type level
 */
export type HandlersContext<H> = {
  [NS in keyof H]: {
    [K in keyof H[NS]]: H[NS][K] extends (...args: ReadonlyArray<any>) => Effect.Effect<any, any, infer R> ? R
      : never
  }[keyof H[NS]]
}[keyof H]

/**
 * The server's `Events` from a contract and its handlers, for `Server.layer`.
 *
 * - Exhaustive: a missing or misspelt handler does not compile.
 * - A payload is decoded before its handler runs; one that does not decode is
 *   answered `bad request: <path>: expected <type>` (an error message of the same
 *   event for an emit), counted in {@link metrics}, and the handler does not run.
 * - An ask's success is encoded with its schema; a declared error is sent so that
 *   the client gets the same class back (see the module's wire notes); a defect is
 *   logged and answered `internal error`.
 * - Namespaces with a room schema refuse joins whose room name does not decode.
 *
 * Combine with other handlers through `Events.merge`.
 *
 * @since 0.1.0
 * @category server
 */
export const handlers: <C extends Any, const H extends Handlers<C>>(
  contract: C,
  handlers: H & Exact<H, Handlers<C>>
) => Events.ServerEvents<never, HandlersContext<H>> = internal.handlers as any

/**
 * Typed broadcast, send and ask on a `Server`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerView<C> {
  /** the untyped server */
  readonly server: Server.Server
  /**
   * Sends `event` to every connection of its namespace (or `room`; `to`: with that
   * id), but `except`. The payload is encoded once.
   */
  readonly broadcast: <Ev extends PushOf<C>>(
    event: Ev,
    payload: Payload<Ev>,
    options?: Server.BroadcastOptions & {
      readonly room?: Schema.Schema.Type<Ev["room"]> | undefined
      readonly to?: string | undefined
    }
  ) => Effect.Effect<void, Errors.StackExchangeError>
  /** sends `event` to the connection(s) with this id */
  readonly send: <Ev extends PushOf<C>>(
    id: string,
    event: Ev,
    payload: Payload<Ev>,
    options?: { readonly room?: Schema.Schema.Type<Ev["room"]> | undefined }
  ) => Effect.Effect<void, Errors.ConnectionNotFound | Errors.StackExchangeError>
  /** asks the connection with this id */
  readonly ask: <Ev extends AskOf<C, "toClient">>(
    id: string,
    event: Ev,
    payload: Payload<Ev>,
    options?: AskOptions<Schema.Schema.Type<Ev["room"]>>
  ) => Effect.Effect<
    Success<Ev>,
    Failure<Ev> | AskError | Errors.ConnectionNotFound | Errors.StackExchangeError
  >
}

/**
 * The typed view of a `Server` for a contract.
 *
 * @since 0.1.0
 * @category server
 */
export const fromServer: {
  <C extends Any>(contract: C): (server: Server.Server) => ServerView<C>
  <C extends Any>(server: Server.Server, contract: C): ServerView<C>
} = internal.fromServer

/**
 * The typed view of the `Server` in the context.
 *
 * @example
 * ```ts
 * const chat = yield* Contract.server(Chat)
 * yield* chat.broadcast(Chat.default.notice, "server notice", { room: "lobby" })
 * ```
 *
 * @since 0.1.0
 * @category server
 */
export const server: <C extends Any>(contract: C) => Effect.Effect<ServerView<C>, never, Server.Server> =
  internal.server

// -----------------------------------------------------------------------------
// client
// -----------------------------------------------------------------------------

/**
 * A client's namespace, typed by the contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientNamespace<C, NS extends NamespaceName<C>> {
  /** the untyped handle */
  readonly nsConn: Client.ClientNSConn
  readonly conn: Client.ClientConn
  readonly namespace: NS
  /** sends to the server (in `room`, which this client must have joined) */
  readonly emit: <Ev extends EmitOf<C, NS>>(
    event: Ev,
    payload: Payload<Ev>,
    options?: { readonly room?: RoomOf<C, NS> | undefined }
  ) => Effect.Effect<void, Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom | Errors.Offline>
  /** asks the server; its declared errors come back as themselves */
  readonly ask: <Ev extends AskOf<C, "toServer", NS>>(
    event: Ev,
    payload: Payload<Ev>,
    options?: AskOptions<RoomOf<C, NS>>
  ) => Effect.Effect<Success<Ev>, Failure<Ev> | AskError | Errors.Offline>
  readonly joinRoom: (
    room: RoomOf<C, NS>,
    options?: Conn.RequestOptions
  ) => Effect.Effect<ClientRoom<C, NS>, Errors.RequestError | Errors.Offline>
  readonly room: (room: RoomOf<C, NS>) => Effect.Effect<ClientRoom<C, NS>, Errors.BadRoom>
  readonly rooms: Effect.Effect<ReadonlyArray<ClientRoom<C, NS>>>
  readonly leaveAll: (options?: Conn.RequestOptions) => Effect.Effect<void, Errors.RequestError | Errors.Offline>
  readonly disconnect: (options?: Conn.RequestOptions) => Effect.Effect<void, Errors.RequestError | Errors.Offline>
}

/**
 * A client's room, typed by the contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientRoom<C, NS extends NamespaceName<C>> {
  /** the untyped handle */
  readonly handle: Client.ClientRoom
  readonly name: RoomOf<C, NS>
  readonly nsConn: ClientNamespace<C, NS>
  readonly emit: <Ev extends EmitOf<C, NS>>(
    event: Ev,
    payload: Payload<Ev>
  ) => Effect.Effect<void, Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom | Errors.Offline>
  readonly ask: <Ev extends AskOf<C, "toServer", NS>>(
    event: Ev,
    payload: Payload<Ev>,
    options?: Conn.RequestOptions
  ) => Effect.Effect<Success<Ev>, Failure<Ev> | AskError | Errors.Offline>
  readonly leave: (options?: Conn.RequestOptions) => Effect.Effect<void, Errors.RequestError | Errors.Offline>
}

/**
 * Options of a subscription to pushes.
 *
 * @since 0.1.0
 * @category models
 */
export interface SubscribeOptions<Room> {
  /** only the pushes sent in this room */
  readonly room?: Room | undefined
  /**
   * How many decoded pushes wait for the subscriber; default 1,024. When it is
   * full, the connection's handlers wait for room (so the socket stops being read
   * and the server's outbox policy applies) — nothing is dropped.
   */
  readonly capacity?: number | undefined
}

/**
 * A client connection typed by a contract.
 *
 * Pushes whose payload does not decode are logged (a warning with the namespace,
 * event and a summary without values), counted in {@link metrics}, and skipped:
 * they never end a stream nor reach a handler.
 *
 * @since 0.1.0
 * @category models
 */
export interface ContractClient<C> {
  /** the untyped connection */
  readonly conn: Client.ClientConn
  readonly contract: C
  /** connects a namespace of the contract */
  readonly connect: <NS extends NamespaceName<C>>(
    namespace: NS,
    options?: Conn.RequestOptions
  ) => Effect.Effect<ClientNamespace<C, NS>, Errors.RequestError | Errors.Offline>
  readonly namespace: <NS extends NamespaceName<C>>(
    namespace: NS
  ) => Effect.Effect<ClientNamespace<C, NS>, Errors.BadNamespace>
  /** waits until the server connected this client to the namespace */
  readonly waitServerConnect: <NS extends NamespaceName<C>>(
    namespace: NS
  ) => Effect.Effect<ClientNamespace<C, NS>, Errors.ConnectionClosed>
  /**
   * Subscribes to the pushes of `event` (in `room`) for as long as the scope lives:
   * nothing is missed from the moment this returns (subscribe before you connect to
   * see what the server sends on connect).
   */
  readonly subscribe: <Ev extends PushOf<C>>(
    event: Ev,
    options?: SubscribeOptions<Schema.Schema.Type<Ev["room"]>>
  ) => Effect.Effect<Queue.Dequeue<Payload<Ev>>, never, Scope.Scope>
  /** the pushes of `event` (in `room`) from when the stream starts; ends when the connection closes */
  readonly pushes: <Ev extends PushOf<C>>(
    event: Ev,
    options?: SubscribeOptions<Schema.Schema.Type<Ev["room"]>>
  ) => Stream.Stream<Payload<Ev>>
}

type ClientPushHandler<Ev, C, NS extends NamespaceName<C>> = (
  ns: ClientNamespace<C, NS>,
  payload: Payload<Ev>,
  received: Received<RoomOf<C, NS>>
) => Effect.Effect<void, never, any>

type ClientAskHandler<Ev, C, NS extends NamespaceName<C>> = (
  ns: ClientNamespace<C, NS>,
  payload: Payload<Ev>,
  received: Received<RoomOf<C, NS>>
) => Effect.Effect<Success<Ev>, Failure<Ev>, any>

/**
 * The client's handlers of one namespace: one for every server → client ask, any
 * pushes and any lifecycle events.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientNamespaceHandlers<C, NS extends NamespaceName<C>> =
  & {
    readonly [Name in AskOf<C, "toClient", NS>["name"]]: ClientAskHandler<
      Extract<AskOf<C, "toClient", NS>, { readonly name: Name }>,
      C,
      NS
    >
  }
  & {
    readonly [Name in PushOf<C, NS>["name"]]?: ClientPushHandler<
      Extract<PushOf<C, NS>, { readonly name: Name }>,
      C,
      NS
    >
  }
  & LifecycleHandlers<ClientNamespace<C, NS>, RoomOf<C, NS>>

type RequiredClientNamespaces<C> = {
  [NS in NamespaceName<C>]: [AskOf<C, "toClient", NS>] extends [never] ? never : NS
}[NamespaceName<C>]

/**
 * The client's handlers of a contract: one for every server → client ask (required),
 * any pushes (optional: pushes also arrive through `subscribe` / `pushes`), and any
 * lifecycle events.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientHandlers<C> =
  & { readonly [NS in RequiredClientNamespaces<C>]: ClientNamespaceHandlers<C, NS> }
  & { readonly [NS in Exclude<NamespaceName<C>, RequiredClientNamespaces<C>>]?: ClientNamespaceHandlers<C, NS> }

/**
 * Whether a contract has server → client asks (and so requires client handlers).
 *
 * @since 0.1.0
 * @category type level
 */
export type HasServerAsks<C> = [RequiredClientNamespaces<C>] extends [never] ? false : true

/**
 * The client's `Events` from a contract and its handlers, for `Client.dial`; then
 * `Contract.client(contract, conn)` gives the typed view of the connection.
 *
 * @since 0.1.0
 * @category client
 */
export const clientEvents: <C extends Any, const H extends ClientHandlers<C>>(
  contract: C,
  handlers: H & Exact<H, ClientHandlers<C>>
) => Client.ClientEvents<never, HandlersContext<H>> = internalClient.clientEvents as any

/**
 * The typed view of a connection dialed with `Contract.clientEvents` of the same
 * contract.
 *
 * @since 0.1.0
 * @category client
 */
export const client: {
  <C extends Any>(contract: C): (conn: Client.ClientConn) => ContractClient<C>
  <C extends Any>(conn: Client.ClientConn, contract: C): ContractClient<C>
} = internalClient.client

/**
 * Options of {@link dial}: those of `Client.dial` but `events`.
 *
 * @since 0.1.0
 * @category models
 */
export type DialOptions = Omit<Client.DialOptions<never, never>, "events">

/**
 * A contract that has server → client asks, where handlers are required: the type
 * error says so.
 *
 * @since 0.1.0
 * @category type level
 */
export type WithoutServerAsks<C> = HasServerAsks<C> extends true
  ? { readonly "the contract has server → client asks: pass handlers for them": never }
  : unknown

/**
 * Dials a typed client: `Client.dial` with the contract's client events (`handlers`:
 * one for every server → client ask, required when there are any; any pushes and
 * lifecycle events), and the typed view of the connection.
 *
 * @example
 * ```ts
 * const chat = yield* Contract.dial(Chat, "ws://127.0.0.1:8080/echo")
 * const ns = yield* chat.connect("default")
 * const isWorkday = yield* ns.ask(Chat.default.workday, "2026-11-25") // Effect<boolean, InvalidDate | …>
 * ```
 *
 * @since 0.1.0
 * @category client
 */
export const dial: {
  <C extends Any, const H extends ClientHandlers<C>>(
    contract: C,
    url: string,
    options: DialOptions & { readonly handlers: H & Exact<H, ClientHandlers<C>> }
  ): Effect.Effect<
    ContractClient<C>,
    Errors.HandshakeRejected | Errors.HandshakeError,
    Client.ClientTransport | Scope.Scope | HandlersContext<H>
  >
  <C extends Any>(
    contract: C & WithoutServerAsks<C>,
    url: string,
    options?: DialOptions
  ): Effect.Effect<
    ContractClient<C>,
    Errors.HandshakeRejected | Errors.HandshakeError,
    Client.ClientTransport | Scope.Scope
  >
} = internalClient.dial as any

// -----------------------------------------------------------------------------
// metrics
// -----------------------------------------------------------------------------

/**
 * Payloads that did not decode, by `part`: `request` (an emit or ask the server or
 * client received), `reply` (an answer) and `push` (a push the client received).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics: {
  readonly decodeFailures: Metric.Metric.Counter<number>
} = internal.metrics
