/**
 * The neffos message model and its wire codec.
 *
 * Every neffos protocol message is one WebSocket data frame of the form
 * `wait;namespace;room;event;isError;isNoOp;body`. The codec here is pure and
 * allocation-light: it scans with `indexOf`, never splits, and never throws.
 *
 * @since 0.1.0
 */
import type { Inspectable } from "effect/Inspectable"
import type { Pipeable } from "effect/Pipeable"
import * as internal from "./internal/message.js"

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
 * @since 0.1.0
 * @category type ids
 */
export const InvalidFrameTypeId: unique symbol = internal.InvalidFrameTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type InvalidFrameTypeId = typeof InvalidFrameTypeId

/**
 * A neffos message.
 *
 * - `body` is a `string` for text frames and a `Uint8Array` for binary frames
 *   (`binary` is `true` exactly when the body is bytes).
 * - `error` holds the error text of an error message (`isError=1` on the wire);
 *   error messages always travel as text and have an empty body.
 * - `wait` is the ask/reply correlation token (empty for fire-and-forget).
 * - `native` marks a raw frame without the neffos header.
 * - `isLocal` and `isForced` never travel: they tell a lifecycle handler that the
 *   event was started by this side, or forced by a close.
 *
 * @since 0.1.0
 * @category models
 */
export interface Message extends Pipeable, Inspectable {
  readonly [TypeId]: TypeId
  readonly _tag: "Message"
  readonly namespace: string
  readonly room: string
  readonly event: string
  readonly body: string | Uint8Array
  readonly error: string | undefined
  readonly binary: boolean
  readonly wait: string
  readonly isNoOp: boolean
  readonly native: boolean
  readonly isLocal: boolean
  readonly isForced: boolean
}

/**
 * The fields accepted by {@link make}; every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface MessageInit {
  readonly namespace?: string | undefined
  readonly room?: string | undefined
  readonly event?: string | undefined
  readonly body?: string | Uint8Array | undefined
  readonly error?: string | undefined
  readonly binary?: boolean | undefined
  readonly wait?: string | undefined
  readonly isNoOp?: boolean | undefined
  readonly native?: boolean | undefined
  readonly isLocal?: boolean | undefined
  readonly isForced?: boolean | undefined
}

/**
 * A frame that is not a neffos message. Decoding returns it instead of throwing.
 *
 * - `Empty`: a zero-length frame;
 * - `TooFewSeparators`: fewer than six `;` (Go neffos rejects these too);
 * - `InvalidUtf8`: the textual header of a binary frame is not UTF-8.
 *
 * @since 0.1.0
 * @category models
 */
export interface InvalidFrame extends Pipeable, Inspectable {
  readonly [InvalidFrameTypeId]: InvalidFrameTypeId
  readonly _tag: "InvalidFrame"
  readonly reason: "Empty" | "TooFewSeparators" | "InvalidUtf8"
  readonly frame: string | Uint8Array
}

/**
 * How frames that carry no neffos header are treated:
 *
 * - `"none"` (default): they are invalid;
 * - `"fallback"`: a frame with fewer than six separators becomes a native message;
 * - `"only"`: every frame is a native message (neffos's native-only mode).
 *
 * @since 0.1.0
 * @category models
 */
export interface DecodeOptions {
  readonly native?: "none" | "fallback" | "only" | undefined
}

/**
 * Builds a message. A `Uint8Array` body makes a binary message unless `binary`
 * says otherwise; a message with an `error` has an empty text body.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (fields: MessageInit) => Message = internal.make

/**
 * @since 0.1.0
 * @category guards
 */
export const isMessage: (u: unknown) => u is Message = internal.isMessage

/**
 * @since 0.1.0
 * @category guards
 */
export const isInvalidFrame: (u: unknown) => u is InvalidFrame = internal.isInvalidFrame

/**
 * Encodes a message to one WebSocket frame: a `string` for a text frame, a
 * `Uint8Array` for a binary frame (whose header is the same text, UTF-8 encoded).
 * A native message encodes to its body alone.
 *
 * @since 0.1.0
 * @category codec
 */
export const encode: (self: Message) => string | Uint8Array = internal.encode

/**
 * Decodes one WebSocket frame. Never throws: a frame that is not a message is an
 * {@link InvalidFrame}.
 *
 * @since 0.1.0
 * @category codec
 */
export const decode: (frame: string | Uint8Array, options?: DecodeOptions) => Message | InvalidFrame = internal.decode

/**
 * Escapes `;` in a namespace, room or event name as `@%!semicolon@%!`.
 *
 * @since 0.1.0
 * @category codec
 */
export const escape: (field: string) => string = internal.escape

/**
 * Reverses {@link escape}.
 *
 * @since 0.1.0
 * @category codec
 */
export const unescape: (field: string) => string = internal.unescape

/**
 * The success reply to a request carrying the token `wait`: `<wait>;;;;;;`.
 *
 * @since 0.1.0
 * @category codec
 */
export const emptyReply: (wait: string) => string = internal.emptyReply

/**
 * The body of a message as text (binary bodies are UTF-8 decoded).
 *
 * @since 0.1.0
 * @category getters
 */
export const bodyText = (self: Message): string =>
  typeof self.body === "string" ? self.body : new TextDecoder().decode(self.body)

/**
 * The body of a message as bytes (text bodies are UTF-8 encoded).
 *
 * @since 0.1.0
 * @category getters
 */
export const bodyBytes = (self: Message): Uint8Array =>
  typeof self.body === "string" ? new TextEncoder().encode(self.body) : self.body

// -----------------------------------------------------------------------------
// handshake
// -----------------------------------------------------------------------------

/**
 * The client's handshake frame.
 *
 * @since 0.1.0
 * @category handshake
 */
export const ackRequest = "M"

/**
 * The server's handshake answer carrying the connection id.
 *
 * @since 0.1.0
 * @category handshake
 */
export const ackId = (id: string): string => "A" + id

/**
 * The server's handshake refusal.
 *
 * @since 0.1.0
 * @category handshake
 */
export const ackRejected = (reason: string): string => "H" + reason

/**
 * A handshake frame, classified by its first character as neffos does.
 *
 * @since 0.1.0
 * @category handshake
 */
export type Handshake =
  | { readonly _tag: "Ack" }
  | { readonly _tag: "Id"; readonly id: string }
  | { readonly _tag: "Rejected"; readonly reason: string }
  | { readonly _tag: "Other" }

/**
 * @since 0.1.0
 * @category handshake
 */
export const decodeHandshake: (frame: string | Uint8Array) => Handshake = internal.decodeHandshake

// -----------------------------------------------------------------------------
// events
// -----------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category events
 */
export const OnNamespaceConnect = "_OnNamespaceConnect"

/**
 * @since 0.1.0
 * @category events
 */
export const OnNamespaceConnected = "_OnNamespaceConnected"

/**
 * @since 0.1.0
 * @category events
 */
export const OnNamespaceDisconnect = "_OnNamespaceDisconnect"

/**
 * @since 0.1.0
 * @category events
 */
export const OnRoomJoin = "_OnRoomJoin"

/**
 * @since 0.1.0
 * @category events
 */
export const OnRoomJoined = "_OnRoomJoined"

/**
 * @since 0.1.0
 * @category events
 */
export const OnRoomLeave = "_OnRoomLeave"

/**
 * @since 0.1.0
 * @category events
 */
export const OnRoomLeft = "_OnRoomLeft"

/**
 * @since 0.1.0
 * @category events
 */
export const OnAnyEvent = "_OnAnyEvent"

/**
 * @since 0.1.0
 * @category events
 */
export const OnNativeMessage = "_OnNativeMessage"

/**
 * True for the seven namespace/room lifecycle events (not `_OnAnyEvent` or
 * `_OnNativeMessage`).
 *
 * @since 0.1.0
 * @category events
 */
export const isSystemEvent = (event: string): boolean => {
  switch (event) {
    case OnNamespaceConnect:
    case OnNamespaceConnected:
    case OnNamespaceDisconnect:
    case OnRoomJoin:
    case OnRoomJoined:
    case OnRoomLeave:
    case OnRoomLeft:
      return true
    default:
      return false
  }
}

// -----------------------------------------------------------------------------
// well-known error texts
// -----------------------------------------------------------------------------

/**
 * Error texts that Go neffos maps back to sentinel errors; spelled exactly.
 *
 * @since 0.1.0
 * @category errors
 */
export const ErrorText = {
  badNamespace: "bad namespace",
  badRoom: "bad room",
  writeClosed: "write closed",
  invalidPayload: "invalid payload"
} as const

// -----------------------------------------------------------------------------
// wait tokens
// -----------------------------------------------------------------------------

/**
 * Who produced a wait token, judged by its first character:
 * `$` a client request, `#` a confirmation, anything else a server request.
 *
 * @since 0.1.0
 * @category tokens
 */
export type TokenOrigin = "none" | "client" | "server" | "confirmation"

/**
 * @since 0.1.0
 * @category tokens
 */
export const tokenOrigin: (wait: string) => TokenOrigin = internal.tokenOrigin

/**
 * A fresh client-side token (`$`-prefixed), unique within the process.
 *
 * @since 0.1.0
 * @category tokens
 */
export const clientToken: () => string = internal.clientToken

/**
 * A fresh server-side token (decimal digits only, never `$` or `#`), unique within the process.
 *
 * @since 0.1.0
 * @category tokens
 */
export const serverToken: () => string = internal.serverToken
