/** @internal */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
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

const roomSchemaOf = (contract: Contract.Any, ns: string): Contract.RoomSchema =>
  (contract[ns]?.[RoomTypeId] as Contract.RoomSchema | undefined) ?? Schema.String

// -----------------------------------------------------------------------------
// codecs
// -----------------------------------------------------------------------------

const isUint8ArrayAST = (ast: AST.AST): boolean =>
  ast === Schema.Uint8ArrayFromSelf.ast ||
  (ast._tag === "Declaration" &&
    Option.getOrUndefined(AST.getIdentifierAnnotation(ast)) === "Uint8ArrayFromSelf")

interface Codec {
  readonly ast: AST.AST
  /** the encoded form is bytes: the body goes as a binary frame, raw */
  readonly binary: boolean
  /** the encoded form is the schema's type itself (no work to encode or decode) */
  readonly identity: boolean
  readonly decode: (u: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly encode: (a: unknown) => Either.Either<unknown, ParseResult.ParseError>
}

const codecs = new WeakMap<AST.AST, Codec>()

/** @internal */
export const codecOf = (schema: Contract.AnySchema): Codec => {
  let codec = codecs.get(schema.ast)
  if (codec === undefined) {
    codec = {
      ast: schema.ast,
      binary: isUint8ArrayAST(AST.encodedAST(schema.ast)),
      identity: schema.ast === Schema.String.ast,
      decode: Schema.decodeUnknownEither(schema as Schema.Schema<unknown, unknown>),
      encode: Schema.encodeEither(schema as Schema.Schema<unknown, unknown>)
    }
    codecs.set(schema.ast, codec)
  }
  return codec
}

/** Thrown (and turned into a defect) when the sender's own value does not encode. */
class EncodeFailure extends Data.TaggedError("EncodeFailure")<{
  readonly what: string
  readonly cause: unknown
}> {
  override get message() {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `effect-neffos/Contract: cannot encode ${this.what}: ${detail}`
  }
}

/** The body of a message carrying `value`: JSON of its encoded form, or raw bytes. */
const encodeBody = (codec: Codec, value: unknown, what: string): string | Uint8Array => {
  const encoded = codec.encode(value)
  if (Either.isLeft(encoded)) throw new EncodeFailure({ what, cause: encoded.left })
  const i = encoded.right
  if (codec.binary) return i as Uint8Array
  if (i === undefined) return ""
  try {
    return JSON.stringify(i)
  } catch (cause) {
    throw new EncodeFailure({ what, cause })
  }
}

const notJson = "the body is not JSON"

/** The value a body stands for, decoded; `Left` holds the bounded summary. */
/** @internal */
export const decodeBody = (
  codec: Codec,
  message: Message.Message
): Either.Either<unknown, { readonly summary: string; readonly cause: ParseResult.ParseError }> => {
  let input: unknown
  if (codec.binary) {
    input = Message.bodyBytes(message)
  } else {
    const text = Message.bodyText(message)
    if (text.length > 0) {
      try {
        input = JSON.parse(text)
      } catch {
        return Either.left({
          summary: notJson,
          cause: ParseResult.parseError(new ParseResult.Type(codec.ast, text, notJson))
        })
      }
    }
  }
  const decoded = codec.decode(input)
  return Either.isRight(decoded)
    ? decoded as Either.Either<unknown, never>
    : Either.left({ summary: summarize(decoded.left.issue), cause: decoded.left })
}

/** @internal */
export const encodeRoom = (schema: Contract.RoomSchema, room: unknown): string => {
  const codec = codecOf(schema)
  if (codec.identity) return room as string
  const encoded = codec.encode(room)
  if (Either.isLeft(encoded)) throw new EncodeFailure({ what: "a room name", cause: encoded.left })
  return encoded.right as string
}

const decodeRoom = (schema: Contract.RoomSchema, room: string): Either.Either<unknown, string> => {
  if (room.length === 0) return Either.right(undefined)
  const codec = codecOf(schema)
  if (codec.identity) return Either.right(room)
  const decoded = codec.decode(room)
  return Either.isRight(decoded) ? Either.right(decoded.right) : Either.left(summarize(decoded.left.issue, ["room"]))
}

// -----------------------------------------------------------------------------
// safe summaries of parse errors
// -----------------------------------------------------------------------------

const maxSummary = 200
const maxExpected = 80
const maxIssues = 3

const truncate = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, max - 1)}…`)

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/

const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`
    else if (typeof key === "string" && identifier.test(key)) out += out.length === 0 ? key : `.${key}`
    else out += `[${JSON.stringify(String(key))}]`
  }
  return out
}

/**
 * Where and what was expected, for the first few failures: the path and the
 * expected type's description, never the received value nor custom messages
 * (which may quote it). At most about 200 characters.
 *
 * @internal
 */
export const summarize = (issue: ParseResult.ParseIssue, prefix: ReadonlyArray<PropertyKey> = []): string => {
  const lines: Array<string> = []
  const leaf = (path: ReadonlyArray<PropertyKey>, text: string) => {
    if (lines.length < maxIssues) {
      const where = formatPath(path)
      lines.push(where.length === 0 ? text : `${where}: ${text}`)
    }
  }
  const expected = (ast: AST.AST) => `expected ${truncate(String(ast), maxExpected)}`
  const go = (issue: ParseResult.ParseIssue, path: ReadonlyArray<PropertyKey>): void => {
    if (lines.length >= maxIssues) return
    switch (issue._tag) {
      case "Type":
        return leaf(path, expected(issue.ast))
      case "Missing":
        return leaf(path, "is missing")
      case "Unexpected":
        return leaf(path, "is unexpected")
      case "Forbidden":
        return leaf(path, "cannot be decoded here")
      case "Pointer":
        return go(issue.issue, [...path, ...(Array.isArray(issue.path) ? issue.path : [issue.path])])
      case "Refinement":
        return issue.kind === "Predicate" ? leaf(path, expected(issue.ast)) : go(issue.issue, path)
      case "Transformation":
        return go(issue.issue, path)
      case "Composite": {
        if (issue.ast._tag === "Union") return leaf(path, expected(issue.ast))
        const issues = Array.isArray(issue.issues) ? issue.issues : [issue.issues as ParseResult.ParseIssue]
        for (const inner of issues) go(inner, path)
        return
      }
    }
  }
  go(issue, prefix)
  return truncate(lines.join("; "), maxSummary)
}

// -----------------------------------------------------------------------------
// error replies
// -----------------------------------------------------------------------------

/**
 * Separates a declared error's readable text from the JSON of its encoded form in
 * an error reply.
 *
 * @internal
 */
export const errorMarker = "\neffect-neffos-error:"

/**
 * The failure a contract handler answers with: its `message` is the error
 * reply's exact text (a tagged error's message is its wire text).
 *
 * @internal
 */
export class ErrorReply extends Data.TaggedError("effect-neffos/Contract/ErrorReply")<{ readonly text: string }> {
  override get message() {
    return this.text
  }
}

const readableText = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const message = (error as { message?: unknown }).message
    if (typeof message === "string" && message.length > 0) return message
    const tag = (error as { _tag?: unknown })._tag
    if (typeof tag === "string") return tag
  }
  return "error"
}

/** The error reply's text for a declared error; `undefined` when it does not encode. */
const declaredErrorText = (event: Contract.Ask, error: unknown): string | undefined => {
  const encoded = codecOf(event.error).encode(error)
  if (Either.isLeft(encoded)) return undefined
  let json: string
  try {
    json = JSON.stringify(encoded.right)
  } catch {
    return undefined
  }
  return readableText(error).split(errorMarker).join("\n") + errorMarker + json
}

/** A declared error back from its reply text, or a `RemoteError` with the readable text. */
const fromRemoteError = (event: Contract.Ask, error: Errors.RemoteError): unknown => {
  const at = error.text.indexOf(errorMarker)
  if (at === -1) return error
  const readable = error.text.slice(0, at)
  const remote = new Errors.RemoteError({
    text: readable,
    namespace: error.namespace,
    room: error.room,
    event: error.event
  })
  let json: unknown
  try {
    json = JSON.parse(error.text.slice(at + errorMarker.length))
  } catch {
    return remote
  }
  const decoded = codecOf(event.error).decode(json)
  return Either.isRight(decoded) ? decoded.right : remote
}

// -----------------------------------------------------------------------------
// metrics and errors
// -----------------------------------------------------------------------------

const decodeFailures = Metric.counter("effect_neffos_contract_decode_failures", {
  description: "contract payloads that did not decode, by part (request, reply, push)",
  incremental: true
})

const partLabels = {
  request: [MetricLabel.make("part", "request")],
  reply: [MetricLabel.make("part", "reply")],
  push: [MetricLabel.make("part", "push")]
} as const

const countDecodeFailure = (part: keyof typeof partLabels) => decodeFailures.unsafeUpdate(1, partLabels[part])

/** @internal */
export const metrics = { decodeFailures } as const

/** @internal */
export class ReplyDecodeError extends Data.TaggedError("ReplyDecodeError")<{
  readonly namespace: string
  readonly event: string
  readonly summary: string
  readonly cause: ParseResult.ParseError
}> {
  override get message() {
    return `the reply to ${JSON.stringify(this.event)} in namespace ${
      JSON.stringify(this.namespace)
    } does not decode: ${this.summary}`
  }
}

const badRequest = (message: Message.Message, summary: string): Effect.Effect<never, ErrorReply> => {
  countDecodeFailure("request")
  return Effect.zipRight(
    Effect.logDebug("effect-neffos/Contract: a request did not decode").pipe(
      Effect.annotateLogs({ namespace: message.namespace, event: message.event, summary })
    ),
    Exit.fail(new ErrorReply({ text: `bad request: ${summary}` }))
  )
}

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

type UntypedHandler = (ns: any, message: Message.Message) => Effect.Effect<void | Reply.Reply, any, any>
type TypedHandler = (ns: any, payload: unknown, received: Contract.Received<unknown>) => Effect.Effect<any, any, any>

const receivedOf = (
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

const buildTable = (
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

// -----------------------------------------------------------------------------
// client
// -----------------------------------------------------------------------------

interface Subscriber {
  readonly room: string | undefined
  readonly queue: Queue.Queue<unknown>
}

/** Subscribers by namespace and event, per client connection. */
type Registry = Map<string, Map<string, Set<Subscriber>>>

const registries = new WeakMap<Client.ClientConn, Registry>()

const registryOf = (conn: Client.ClientConn): Registry => {
  let registry = registries.get(conn)
  if (registry === undefined) {
    registry = new Map()
    registries.set(conn, registry)
  }
  return registry
}

const subscribersOf = (conn: Client.ClientConn, event: Contract.Event): Set<Subscriber> | undefined =>
  registries.get(conn)?.get(event.namespace)?.get(event.name)

const pushHandler = (
  roomSchemaOfNs: (ns: string) => Contract.RoomSchema
) =>
(event: Contract.Push, handler: TypedHandler | undefined, views: Views): UntypedHandler => {
  const roomSchema = roomSchemaOfNs(event.namespace)
  return (nsConn: Client.ClientNSConn, message) => {
    if (message.error !== undefined) return Exit.void
    const subscribers = subscribersOf(nsConn.conn, event)
    if (handler === undefined && (subscribers === undefined || subscribers.size === 0)) return Exit.void
    const payload = decodeBody(codecOf(event.payload), message)
    const received = Either.isRight(payload) ? receivedOf(roomSchema, message) : undefined
    if (Either.isLeft(payload) || received === undefined || Either.isLeft(received)) {
      countDecodeFailure("push")
      const summary = Either.isLeft(payload) ? payload.left.summary : Either.isLeft(received!) ? received.left : ""
      return Effect.logWarning("effect-neffos/Contract: a push did not decode; skipped").pipe(
        Effect.annotateLogs({ namespace: message.namespace, room: message.room, event: message.event, summary })
      )
    }
    const value = payload.right
    const publish = subscribers === undefined || subscribers.size === 0
      ? Effect.void
      : Effect.forEach(
        Array.from(subscribers),
        (subscriber) =>
          subscriber.room === undefined || subscriber.room === message.room
            ? Queue.offer(subscriber.queue, value)
            : Effect.void,
        { discard: true }
      )
    return handler === undefined
      ? publish
      : Effect.zipRight(publish, handler(views.ns(nsConn), value, received.right) as Effect.Effect<void>)
  }
}

/** @internal */
export const clientEventsTable = (
  contract: Contract.Any,
  handlers: Record<string, Record<string, TypedHandler> | undefined>
): Record<string, Record<string, UntypedHandler>> =>
  buildTable(contract, handlers, "client", pushHandler((ns) => roomSchemaOf(contract, ns)))

/** @internal */
export const clientEvents = (
  contract: Contract.Any,
  handlers: Record<string, Record<string, TypedHandler> | undefined>
): Client.ClientEvents<never, unknown> => Events.client(clientEventsTable(contract, handlers)) as any

/** @internal */
export const makeClient = (conn: Client.ClientConn, contract: Contract.Any): Contract.ContractClient<any> => {
  const views = new Views(contract, "client")
  const subscribe = (
    event: Contract.Push,
    options?: Contract.SubscribeOptions<unknown>
  ): Effect.Effect<Queue.Dequeue<unknown>, never, Scope.Scope> =>
    Effect.acquireRelease(
      Effect.suspend(() => {
        const room = options?.room === undefined ? undefined : encodeRoom(event.room, options.room)
        return Effect.map(Queue.bounded<unknown>(options?.capacity ?? 1024), (queue) => {
          const registry = registryOf(conn)
          let byEvent = registry.get(event.namespace)
          if (byEvent === undefined) registry.set(event.namespace, byEvent = new Map())
          let subscribers = byEvent.get(event.name)
          if (subscribers === undefined) byEvent.set(event.name, subscribers = new Set())
          const subscriber = { room, queue }
          subscribers.add(subscriber)
          return subscriber
        })
      }),
      (subscriber) =>
        Effect.suspend(() => {
          subscribersOf(conn, event)?.delete(subscriber)
          return Queue.shutdown(subscriber.queue)
        })
    ).pipe(Effect.map((subscriber) => subscriber.queue))
  return {
    conn,
    contract,
    connect: (namespace, options) => Effect.map(conn.connect(namespace, options), (ns) => views.ns(ns)),
    namespace: (namespace) => Effect.map(conn.namespace(namespace), (ns) => views.ns(ns)),
    waitServerConnect: (namespace) => Effect.map(conn.waitServerConnect(namespace), (ns) => views.ns(ns)),
    subscribe: subscribe as any,
    pushes: ((event: Contract.Push, options?: Contract.SubscribeOptions<unknown>) =>
      Stream.unwrapScoped(
        Effect.map(subscribe(event, options), (queue) =>
          Stream.fromQueue(queue).pipe(Stream.interruptWhen(conn.awaitClose)))
      )) as any
  }
}

/** @internal */
export const client = dual(2, makeClient)

/** @internal */
export const dial = (
  contract: Contract.Any,
  url: string,
  options?: Omit<Client.DialOptions<never, never>, "events"> & {
    readonly handlers?: Record<string, Record<string, TypedHandler> | undefined> | undefined
  }
) => {
  const { handlers, ...rest } = options ?? {}
  return Effect.map(
    Client.dial(url, { ...rest, events: clientEvents(contract, handlers ?? {}) }),
    (conn) => makeClient(conn, contract)
  )
}
