/**
 * Contracts on the server and shared: declarations, typed handles over untyped
 * connections, the handler table built from a contract, and the server view. The
 * codecs are in contractCodec.ts, the client in contractClient.ts.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Client from "../Client.js"
import type * as Conn from "../Conn.js"
import type * as Contract from "../Contract.js"
import * as Errors from "../Errors.js"
import * as Events from "../Events.js"
import * as Message from "../Message.js"
import * as Reply from "../Reply.js"
import * as Server from "../Server.js"

/** @internal */
export const TypeId: Contract.TypeId = Symbol.for("effect-neffos/Contract") as Contract.TypeId

/** @internal */
export const RoomTypeId: Contract.RoomTypeId = Symbol.for("effect-neffos/Contract/Room") as Contract.RoomTypeId

// -----------------------------------------------------------------------------
// declarations
// -----------------------------------------------------------------------------

const payloadSchema = (payload: unknown): Contract.AnySchema =>
  payload === undefined
    ? Schema.Void
    : Schema.isSchema(payload)
    ? payload as Contract.AnySchema
    : Schema.Struct(payload as Schema.Struct.Fields) as unknown as Contract.AnySchema

/** @internal */
export const push = (payload?: Contract.PayloadInput): any => ({ _tag: "Push", payload: payloadSchema(payload) })

/** @internal */
export const emit = (payload?: Contract.PayloadInput): any => ({ _tag: "Emit", payload: payloadSchema(payload) })

/** @internal */
export const ask = (options: {
  readonly payload?: Contract.PayloadInput | undefined
  readonly success?: Contract.AnySchema | undefined
  readonly error?: Contract.AnySchema | undefined
  readonly direction?: Contract.Direction | undefined
}): any => ({
  _tag: "Ask",
  direction: options.direction ?? "toServer",
  payload: payloadSchema(options.payload),
  success: options.success ?? Schema.Void,
  error: options.error ?? Schema.Never
})

/** @internal */
export const namespace = (
  events: Record<string, Contract.Definition>,
  options?: { readonly room?: Contract.RoomSchema | undefined }
): any => ({ _tag: "NamespaceDefinition", events, room: options?.room ?? Schema.String })

const isNamespaceDefinition = (u: unknown): u is Contract.NamespaceDefinition<any, any> =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "NamespaceDefinition"

/** @internal */
export const make = (declaration: Contract.Declaration): any => {
  const contract: Record<string | symbol, unknown> = { [TypeId]: TypeId }
  for (const ns of Object.keys(declaration)) {
    const entry = declaration[ns]
    const definitions = isNamespaceDefinition(entry) ? entry.events : entry as Record<string, Contract.Definition>
    const room = isNamespaceDefinition(entry) ? entry.room : Schema.String
    const events: Record<string | symbol, unknown> = { [RoomTypeId]: room }
    for (const name of Object.keys(definitions)) {
      if (Message.isSystemEvent(name) || name === Message.OnAnyEvent || name === Message.OnNativeMessage) {
        throw new Error(`effect-neffos/Contract: ${ns}.${name} is a neffos system event, not a contract event`)
      }
      events[name] = { ...definitions[name], namespace: ns, name, room }
    }
    contract[ns] = events
  }
  return contract
}

/** @internal */
export const isContract = (u: unknown): u is Contract.Any => typeof u === "object" && u !== null && TypeId in u

const namespacesOf = (contract: Contract.Any): ReadonlyArray<string> => Object.keys(contract)

const eventsOf = (contract: Contract.Any, ns: string): ReadonlyArray<Contract.Event> =>
  Object.keys(contract[ns]).map((name) => contract[ns][name] as Contract.Event)

/** @internal */
export const roomSchemaOf = (contract: Contract.Any, ns: string): Contract.RoomSchema =>
  (contract[ns]?.[RoomTypeId] as Contract.RoomSchema | undefined) ?? Schema.String

import {
  badRequest,
  codecOf,
  countDecodeFailure,
  declaredErrorText,
  decodeBody,
  decodeRoom,
  encodeBody,
  EncodeFailure,
  encodeRoom,
  ErrorReply,
  fromRemoteError,
  ReplyDecodeError
} from "./contractCodec.js"

/** @internal */
export { errorMarker, metrics, ReplyDecodeError, summarize } from "./contractCodec.js"
// -----------------------------------------------------------------------------
// typed handles
// -----------------------------------------------------------------------------

type AnyNSConn = Conn.NSConn | Client.ClientNSConn
type AnyRoom = Conn.Room | Client.ClientRoom

const attempt = <A, E, R>(f: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  try {
    return f()
  } catch (defect) {
    return Effect.die(defect)
  }
}

const payloadBody = (event: Contract.Event, payload: unknown): string | Uint8Array =>
  encodeBody(codecOf(event.payload), payload, `the payload of ${event.namespace}/${event.name}`)

/** The answer to a typed ask: the success decoded, a declared error back as itself. */
const answerOf = <E, R>(
  event: Contract.Ask,
  asked: Effect.Effect<Message.Message, E, R>
): Effect.Effect<unknown, unknown, R> =>
  Effect.matchEffect(asked, {
    onFailure: (error) =>
      Effect.fail(
        (error as { _tag?: unknown })._tag === "RemoteError"
          ? fromRemoteError(event, error as Errors.RemoteError)
          : error
      ),
    onSuccess: (reply) => {
      const decoded = decodeBody(codecOf(event.success), reply)
      if (Either.isRight(decoded)) return Effect.succeed(decoded.right)
      countDecodeFailure("reply")
      return Effect.fail(
        new ReplyDecodeError({
          namespace: event.namespace,
          event: event.name,
          summary: decoded.left.summary,
          cause: decoded.left.cause
        })
      )
    }
  })

/** @internal */
export class Views {
  private readonly namespaces = new WeakMap<AnyNSConn, any>()
  constructor(readonly contract: Contract.Any, readonly side: "server" | "client") {}

  ns(nsConn: AnyNSConn): any {
    let view = this.namespaces.get(nsConn)
    if (view === undefined) {
      view = this.makeNamespace(nsConn)
      this.namespaces.set(nsConn, view)
    }
    return view
  }

  private makeNamespace(nsConn: AnyNSConn): any {
    const self = this
    const roomSchema = roomSchemaOf(this.contract, nsConn.namespace)
    const roomView = (handle: AnyRoom) => self.room(view, handle, roomSchema)
    const inRoom = <A, E>(
      room: unknown,
      f: (target: AnyNSConn | AnyRoom) => Effect.Effect<A, E>
    ): Effect.Effect<A, E | Errors.BadRoom> =>
      room === undefined
        ? f(nsConn)
        : Effect.flatMap(
          (nsConn.room as (name: string) => Effect.Effect<AnyRoom, Errors.BadRoom>)(encodeRoom(roomSchema, room)),
          f
        )
    const view: Record<string, unknown> = {
      nsConn,
      conn: nsConn.conn,
      namespace: nsConn.namespace,
      emit: (event: Contract.Event, payload: unknown, options?: { readonly room?: unknown }) =>
        attempt(() => {
          const body = payloadBody(event, payload)
          return inRoom(options?.room, (target) => target.emit(event.name, body))
        }),
      ask: (event: Contract.Ask, payload: unknown, options?: Contract.AskOptions<unknown>) =>
        attempt(() => {
          const body = payloadBody(event, payload)
          return answerOf(
            event,
            inRoom(options?.room, (target) => target.ask(event.name, body, { timeout: options?.timeout }))
          )
        }),
      joinRoom: (room: unknown, options?: Conn.RequestOptions) =>
        attempt(() =>
          Effect.map(
            (nsConn.joinRoom as (room: string, options?: Conn.RequestOptions) => Effect.Effect<AnyRoom, any>)(
              encodeRoom(roomSchema, room),
              options
            ),
            roomView
          )
        ),
      room: (room: unknown) =>
        attempt(() =>
          Effect.map(
            (nsConn.room as (name: string) => Effect.Effect<AnyRoom, Errors.BadRoom>)(encodeRoom(roomSchema, room)),
            roomView
          )
        ),
      rooms: Effect.map(nsConn.rooms as Effect.Effect<ReadonlyArray<AnyRoom>>, (rooms) => rooms.map(roomView)),
      leaveAll: (options?: Conn.RequestOptions) => nsConn.leaveAll(options),
      disconnect: (options?: Conn.RequestOptions) => nsConn.disconnect(options)
    }
    if (this.side === "server") {
      const server = nsConn as Conn.NSConn
      const broadcast = (others: boolean) =>
      (
        event: Contract.Push,
        payload: unknown,
        options?: { readonly room?: unknown; readonly to?: string | undefined }
      ) =>
        attempt(() => {
          const message: Conn.Outgoing = {
            namespace: event.namespace,
            room: options?.room === undefined ? "" : encodeRoom(roomSchema, options.room),
            event: event.name,
            body: payloadBody(event, payload),
            to: options?.to
          }
          return others ? server.broadcastOthers(message) : server.broadcast(message)
        })
      view.broadcast = broadcast(false)
      view.broadcastOthers = broadcast(true)
    }
    return view
  }

  private room(ns: any, handle: AnyRoom, roomSchema: Contract.RoomSchema): any {
    const decoded = decodeRoom(roomSchema, handle.name)
    const view: Record<string, unknown> = {
      handle,
      name: Either.getOrElse(decoded, () => handle.name),
      nsConn: ns,
      emit: (event: Contract.Event, payload: unknown) =>
        attempt(() => handle.emit(event.name, payloadBody(event, payload))),
      ask: (event: Contract.Ask, payload: unknown, options?: Conn.RequestOptions) =>
        attempt(() => answerOf(event, handle.ask(event.name, payloadBody(event, payload), options))),
      leave: (options?: Conn.RequestOptions) => handle.leave(options)
    }
    if (this.side === "server") {
      const room = handle as Conn.Room
      view.broadcast = (event: Contract.Push, payload: unknown) =>
        attempt(() => room.broadcast(event.name, payloadBody(event, payload)))
      view.broadcastOthers = (event: Contract.Push, payload: unknown) =>
        attempt(() => room.broadcastOthers(event.name, payloadBody(event, payload)))
    }
    return view
  }
}

// -----------------------------------------------------------------------------
// handlers
// -----------------------------------------------------------------------------

/** @internal */
export type UntypedHandler = (ns: any, message: Message.Message) => Effect.Effect<void | Reply.Reply, any, any>
/** @internal */
export type TypedHandler = (
  ns: any,
  payload: unknown,
  received: Contract.Received<unknown>
) => Effect.Effect<any, any, any>

/** @internal */
export const receivedOf = (
  roomSchema: Contract.RoomSchema,
  message: Message.Message
): Either.Either<Contract.Received<unknown>, string> => {
  if (message.room.length === 0) return Either.right({ room: undefined, message })
  const room = decodeRoom(roomSchema, message.room)
  return Either.isRight(room) ? Either.right({ room: room.right, message }) : Either.left(room.left)
}

/** Turns the outcome of an ask's handler into the reply the core sends. */
const answerExit = (event: Contract.Ask, exit: Exit.Exit<unknown, unknown>): Exit.Exit<Reply.Reply, unknown> => {
  if (Exit.isSuccess(exit)) {
    try {
      return Exit.succeed(
        Reply.make(encodeBody(codecOf(event.success), exit.value, `the answer to ${event.namespace}/${event.name}`))
      )
    } catch (defect) {
      return Exit.die(defect)
    }
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return exit as Exit.Exit<never, never>
  const text = declaredErrorText(event, failure.value)
  return text === undefined
    ? Exit.die(new EncodeFailure({ what: `an error of ${event.namespace}/${event.name}`, cause: failure.value }))
    : Exit.fail(new ErrorReply({ text }))
}

const askHandler = (
  event: Contract.Ask,
  handler: TypedHandler,
  views: Views,
  roomSchema: Contract.RoomSchema
): UntypedHandler =>
(nsConn, message) => {
  const payload = decodeBody(codecOf(event.payload), message)
  if (Either.isLeft(payload)) return badRequest(message, payload.left.summary)
  const received = receivedOf(roomSchema, message)
  if (Either.isLeft(received)) return badRequest(message, received.left)
  let effect: Effect.Effect<unknown, unknown, unknown>
  try {
    effect = handler(views.ns(nsConn), payload.right, received.right)
  } catch (defect) {
    return Exit.die(defect)
  }
  if (Exit.isExit(effect)) return answerExit(event, effect as Exit.Exit<unknown, unknown>)
  return Effect.flatMap(Effect.exit(effect), (exit) => answerExit(event, exit))
}

const emitHandler = (
  event: Contract.Event,
  handler: TypedHandler,
  views: Views,
  roomSchema: Contract.RoomSchema
): UntypedHandler =>
(nsConn, message) => {
  const payload = decodeBody(codecOf(event.payload), message)
  if (Either.isLeft(payload)) return badRequest(message, payload.left.summary)
  const received = receivedOf(roomSchema, message)
  if (Either.isLeft(received)) return badRequest(message, received.left)
  try {
    // typed `Effect<void>`: returned as it is, so that a completed one is handled without a fiber
    return handler(views.ns(nsConn), payload.right, received.right) as Effect.Effect<void>
  } catch (defect) {
    return Exit.die(defect)
  }
}

const lifecycleHandler =
  (handler: TypedHandler, views: Views, roomSchema: Contract.RoomSchema): UntypedHandler => (nsConn, message) => {
    const received = receivedOf(roomSchema, message)
    return handler(views.ns(nsConn), message, Either.getOrElse(received, () => ({ room: undefined, message })))
  }

/** Refuses a join whose room name does not decode, then runs the application's own `_OnRoomJoin`. */
const roomJoinHandler = (
  roomSchema: Contract.RoomSchema,
  handler: UntypedHandler | undefined
): UntypedHandler =>
(nsConn, message) => {
  const room = decodeRoom(roomSchema, message.room)
  if (Either.isLeft(room)) return badRequest(message, room.left)
  return handler === undefined ? Exit.void : handler(nsConn, message)
}

const isLifecycle = (name: string) => Message.isSystemEvent(name)

/** @internal */
export const buildTable = (
  contract: Contract.Any,
  handlers: Record<string, Record<string, TypedHandler> | undefined>,
  side: "server" | "client",
  pushHandler: (event: Contract.Push, handler: TypedHandler | undefined, views: Views) => UntypedHandler | undefined
): Record<string, Record<string, UntypedHandler>> => {
  const views = new Views(contract, side)
  const table: Record<string, Record<string, UntypedHandler>> = {}
  for (const ns of namespacesOf(contract)) {
    const roomSchema = roomSchemaOf(contract, ns)
    const own = handlers[ns] ?? {}
    const entries: Record<string, UntypedHandler> = {}
    for (const event of eventsOf(contract, ns)) {
      const handler = own[event.name]
      const handled = side === "server" ? "toServer" : "toClient"
      if (event._tag === "Ask") {
        if (event.direction === handled && handler !== undefined) {
          entries[event.name] = askHandler(event, handler, views, roomSchema)
        }
      } else if (event._tag === "Emit") {
        if (side === "server" && handler !== undefined) {
          entries[event.name] = emitHandler(event, handler, views, roomSchema)
        }
      } else if (side === "client") {
        const untyped = pushHandler(event, handler, views)
        if (untyped !== undefined) entries[event.name] = untyped
      }
    }
    for (const name of Object.keys(own)) {
      if (isLifecycle(name)) entries[name] = lifecycleHandler(own[name], views, roomSchema)
    }
    if (side === "server" && roomSchema !== Schema.String) {
      entries[Message.OnRoomJoin] = roomJoinHandler(roomSchema, entries[Message.OnRoomJoin])
    }
    table[ns] = entries
  }
  return table
}

/** @internal */
export const handlers = (
  contract: Contract.Any,
  handlers: Record<string, Record<string, TypedHandler> | undefined>
): Events.ServerEvents<never, unknown> =>
  Events.namespaces(buildTable(contract, handlers, "server", () => undefined)) as any

// -----------------------------------------------------------------------------
// server view
// -----------------------------------------------------------------------------

const makeServerView = (server: Server.Server, _contract: Contract.Any): Contract.ServerView<any> => ({
  server,
  broadcast: (event, payload, options) =>
    attempt(() =>
      server.broadcast({
        namespace: event.namespace,
        room: options?.room === undefined ? "" : encodeRoom(event.room, options.room),
        event: event.name,
        body: payloadBody(event, payload),
        to: options?.to
      }, options)
    ),
  send: (id, event, payload, options) =>
    attempt(() =>
      server.send(id, {
        namespace: event.namespace,
        room: options?.room === undefined ? "" : encodeRoom(event.room, options.room),
        event: event.name,
        body: payloadBody(event, payload)
      })
    ),
  ask: (id, event, payload, options) =>
    attempt(() =>
      answerOf(
        event,
        server.ask({
          to: id,
          namespace: event.namespace,
          room: options?.room === undefined ? "" : encodeRoom(event.room, options.room),
          event: event.name,
          body: payloadBody(event, payload)
        }, options)
      )
    ) as any
})

/** @internal */
export const fromServer = dual(2, makeServerView)

/** @internal */
export const server = (contract: Contract.Any): Effect.Effect<Contract.ServerView<any>, never, Server.Server> =>
  Effect.map(Server.Server, (server) => makeServerView(server, contract))
