/**
 * Contracts' codecs: a payload's schema to and from a frame body (JSON text, or raw
 * bytes for a binary schema), room names, safe one-line summaries of parse errors,
 * declared errors on the wire, and the decode-failure metric.
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import type * as Contract from "../Contract.js"
import * as Errors from "../Errors.js"
import * as Message from "../Message.js"

// -----------------------------------------------------------------------------
// codecs
// -----------------------------------------------------------------------------

export const isUint8ArrayAST = (ast: AST.AST): boolean =>
  ast === Schema.Uint8ArrayFromSelf.ast ||
  (ast._tag === "Declaration" &&
    Option.getOrUndefined(AST.getIdentifierAnnotation(ast)) === "Uint8ArrayFromSelf")

export interface Codec {
  readonly ast: AST.AST
  /** the encoded form is bytes: the body goes as a binary frame, raw */
  readonly binary: boolean
  /** the encoded form is the schema's type itself (no work to encode or decode) */
  readonly identity: boolean
  readonly decode: (u: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly encode: (a: unknown) => Either.Either<unknown, ParseResult.ParseError>
}

export const codecs = new WeakMap<AST.AST, Codec>()

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
export class EncodeFailure extends Data.TaggedError("EncodeFailure")<{
  readonly what: string
  readonly cause: unknown
}> {
  override get message() {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `effect-neffos/Contract: cannot encode ${this.what}: ${detail}`
  }
}

/** The body of a message carrying `value`: JSON of its encoded form, or raw bytes. */
export const encodeBody = (codec: Codec, value: unknown, what: string): string | Uint8Array => {
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

export const notJson = "the body is not JSON"

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

export const decodeRoom = (schema: Contract.RoomSchema, room: string): Either.Either<unknown, string> => {
  if (room.length === 0) return Either.right(undefined)
  const codec = codecOf(schema)
  if (codec.identity) return Either.right(room)
  const decoded = codec.decode(room)
  return Either.isRight(decoded) ? Either.right(decoded.right) : Either.left(summarize(decoded.left.issue, ["room"]))
}

// -----------------------------------------------------------------------------
// safe summaries of parse errors
// -----------------------------------------------------------------------------

export const maxSummary = 200
export const maxExpected = 80
export const maxIssues = 3

export const truncate = (
  text: string,
  max: number
): string => (text.length <= max ? text : `${text.slice(0, max - 1)}…`)

export const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/

export const formatPath = (path: ReadonlyArray<PropertyKey>): string => {
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

export const readableText = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const message = (error as { message?: unknown }).message
    if (typeof message === "string" && message.length > 0) return message
    const tag = (error as { _tag?: unknown })._tag
    if (typeof tag === "string") return tag
  }
  return "error"
}

/** The error reply's text for a declared error; `undefined` when it does not encode. */
export const declaredErrorText = (event: Contract.Ask, error: unknown): string | undefined => {
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
export const fromRemoteError = (event: Contract.Ask, error: Errors.RemoteError): unknown => {
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

export const decodeFailures = Metric.counter("effect_neffos_contract_decode_failures", {
  description: "contract payloads that did not decode, by part (request, reply, push)",
  incremental: true
})

export const partLabels = {
  request: [MetricLabel.make("part", "request")],
  reply: [MetricLabel.make("part", "reply")],
  push: [MetricLabel.make("part", "push")]
} as const

export const countDecodeFailure = (part: keyof typeof partLabels) => decodeFailures.unsafeUpdate(1, partLabels[part])

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

export const badRequest = (message: Message.Message, summary: string): Effect.Effect<never, ErrorReply> => {
  countDecodeFailure("request")
  return Effect.zipRight(
    Effect.logDebug("effect-neffos/Contract: a request did not decode").pipe(
      Effect.annotateLogs({ namespace: message.namespace, event: message.event, summary })
    ),
    Exit.fail(new ErrorReply({ text: `bad request: ${summary}` }))
  )
}
