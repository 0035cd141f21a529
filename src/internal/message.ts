/** @internal */
import type { NodeInspectSymbol } from "effect/Inspectable"
import type { Pipeable } from "effect/Pipeable"
import type * as Message from "../Message.js"
import { pipeableInspectable } from "./data.js"

/** @internal */
export const TypeId: Message.TypeId = Symbol.for("effect-neffos/Message") as Message.TypeId

/** @internal */
export const InvalidFrameTypeId: Message.InvalidFrameTypeId = Symbol.for(
  "effect-neffos/Message/InvalidFrame"
) as Message.InvalidFrameTypeId

const SEP = 59 // ";"
const ESCAPED = "@%!semicolon@%!"

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

class MessageImpl implements Message.Message {
  declare readonly [TypeId]: Message.TypeId
  declare readonly _tag: "Message"
  declare readonly pipe: Pipeable["pipe"]
  declare readonly toJSON: () => unknown
  declare readonly [NodeInspectSymbol]: () => unknown
  constructor(
    readonly namespace: string,
    readonly room: string,
    readonly event: string,
    readonly body: string | Uint8Array,
    readonly error: string | undefined,
    readonly binary: boolean,
    readonly wait: string,
    readonly isNoOp: boolean,
    readonly native: boolean,
    readonly isLocal: boolean = false,
    readonly isForced: boolean = false
  ) {}
}
Object.defineProperty(MessageImpl.prototype, TypeId, { value: TypeId })
Object.defineProperty(MessageImpl.prototype, "_tag", { value: "Message" })
pipeableInspectable(MessageImpl.prototype, (self: MessageImpl) => ({
  _id: "Message",
  namespace: self.namespace,
  room: self.room,
  event: self.event,
  body: self.body,
  ...(self.error === undefined ? {} : { error: self.error }),
  ...(self.wait === "" ? {} : { wait: self.wait }),
  ...(self.binary ? { binary: true } : {}),
  ...(self.isNoOp ? { isNoOp: true } : {}),
  ...(self.native ? { native: true } : {}),
  ...(self.isLocal ? { isLocal: true } : {}),
  ...(self.isForced ? { isForced: true } : {})
}))

class InvalidFrameImpl implements Message.InvalidFrame {
  declare readonly [InvalidFrameTypeId]: Message.InvalidFrameTypeId
  declare readonly _tag: "InvalidFrame"
  declare readonly pipe: Pipeable["pipe"]
  declare readonly toJSON: () => unknown
  declare readonly [NodeInspectSymbol]: () => unknown
  constructor(readonly reason: Message.InvalidFrame["reason"], readonly frame: string | Uint8Array) {}
}
Object.defineProperty(InvalidFrameImpl.prototype, InvalidFrameTypeId, { value: InvalidFrameTypeId })
Object.defineProperty(InvalidFrameImpl.prototype, "_tag", { value: "InvalidFrame" })
pipeableInspectable(InvalidFrameImpl.prototype, (self: InvalidFrameImpl) => ({
  _id: "InvalidFrame",
  reason: self.reason,
  frame: self.frame
}))

/** @internal */
export const isMessage = (u: unknown): u is Message.Message =>
  typeof u === "object" && u !== null && (u as any)[TypeId] === TypeId

/** @internal */
export const isInvalidFrame = (u: unknown): u is Message.InvalidFrame =>
  typeof u === "object" && u !== null && (u as any)[InvalidFrameTypeId] === InvalidFrameTypeId

/** @internal */
export const make = (fields: Message.MessageInit): Message.Message => {
  const error = fields.error
  const body = error === undefined ? fields.body ?? "" : ""
  const binary = error === undefined && (fields.binary ?? (typeof body !== "string"))
  return new MessageImpl(
    fields.namespace ?? "",
    fields.room ?? "",
    fields.event ?? "",
    binary
      ? (typeof body === "string" ? encoder.encode(body) : body)
      : (typeof body === "string" ? body : decodeUtf8(body)),
    error,
    binary,
    fields.wait ?? "",
    fields.isNoOp ?? false,
    fields.native ?? false,
    fields.isLocal ?? false,
    fields.isForced ?? false
  )
}

/** @internal */
export const unsafeMake = (
  namespace: string,
  room: string,
  event: string,
  body: string | Uint8Array,
  error: string | undefined,
  binary: boolean,
  wait: string,
  isNoOp: boolean,
  native: boolean,
  isLocal = false,
  isForced = false
): Message.Message =>
  new MessageImpl(namespace, room, event, body, error, binary, wait, isNoOp, native, isLocal, isForced)

const decodeUtf8 = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

/** @internal */
export const escape = (field: string): string => field.indexOf(";") === -1 ? field : field.replaceAll(";", ESCAPED)

/** @internal */
export const unescape = (field: string): string =>
  field.indexOf(ESCAPED) === -1 ? field : field.replaceAll(ESCAPED, ";")

const header = (self: Message.Message): string =>
  self.wait + ";" + escape(self.namespace) + ";" + escape(self.room) + ";" + escape(self.event) +
  (self.error === undefined ? ";0;" : ";1;") + (self.isNoOp ? "1;" : "0;")

/** @internal */
export const encode = (self: Message.Message): string | Uint8Array => {
  if (self.native) {
    return self.body
  }
  if (self.error !== undefined) {
    return header(self) + self.error
  }
  if (!self.binary) {
    return header(self) + (self.body as string)
  }
  return concatHeader(header(self), self.body as Uint8Array)
}

const concatHeader = (head: string, body: Uint8Array): Uint8Array => {
  // a UTF-8 encoding takes at most 3 bytes per UTF-16 code unit
  const out = new Uint8Array(head.length * 3 + body.length)
  const written = encoder.encodeInto(head, out).written
  out.set(body, written)
  return out.subarray(0, written + body.length)
}

/** @internal */
export const encodeText = (self: Message.Message): string => {
  const frame = encode(self)
  return typeof frame === "string" ? frame : decodeUtf8(frame)
}

/** @internal */
export const emptyReply = (wait: string): string => wait + ";;;;;;"

const Empty = "Empty" as const
const TooFewSeparators = "TooFewSeparators" as const

/** @internal */
export const decode = (
  frame: string | Uint8Array,
  options?: Message.DecodeOptions
): Message.Message | Message.InvalidFrame => {
  if (frame.length === 0) {
    return new InvalidFrameImpl(Empty, frame)
  }
  const nativeMode = options?.native
  if (nativeMode === "only") {
    return nativeMessage(frame)
  }
  return typeof frame === "string" ? decodeString(frame, nativeMode === "fallback") : decodeBytes(frame)
}

const nativeMessage = (frame: string | Uint8Array): Message.Message =>
  new MessageImpl(
    "",
    "",
    "_OnNativeMessage",
    frame,
    undefined,
    typeof frame !== "string",
    "",
    false,
    true
  )

const decodeString = (frame: string, nativeFallback: boolean): Message.Message | Message.InvalidFrame => {
  const p1 = frame.indexOf(";")
  if (p1 === -1) return tooFew(frame, nativeFallback)
  const p2 = frame.indexOf(";", p1 + 1)
  if (p2 === -1) return tooFew(frame, nativeFallback)
  const p3 = frame.indexOf(";", p2 + 1)
  if (p3 === -1) return tooFew(frame, nativeFallback)
  const p4 = frame.indexOf(";", p3 + 1)
  if (p4 === -1) return tooFew(frame, nativeFallback)
  const p5 = frame.indexOf(";", p4 + 1)
  if (p5 === -1) return tooFew(frame, nativeFallback)
  const p6 = frame.indexOf(";", p5 + 1)
  if (p6 === -1) return tooFew(frame, nativeFallback)
  const isError = p5 - p4 === 2 && frame.charCodeAt(p4 + 1) === 49
  const rest = frame.slice(p6 + 1)
  return new MessageImpl(
    unescape(frame.slice(p1 + 1, p2)),
    unescape(frame.slice(p2 + 1, p3)),
    unescape(frame.slice(p3 + 1, p4)),
    isError ? "" : rest,
    isError ? rest : undefined,
    false,
    frame.slice(0, p1),
    p6 - p5 === 2 && frame.charCodeAt(p5 + 1) === 49,
    false
  )
}

const tooFew = (frame: string | Uint8Array, nativeFallback: boolean): Message.Message | Message.InvalidFrame =>
  nativeFallback ? nativeMessage(frame) : new InvalidFrameImpl(TooFewSeparators, frame)

const decodeBytes = (frame: Uint8Array): Message.Message | Message.InvalidFrame => {
  let p6 = -1
  for (let i = 0; i < 6; i++) {
    p6 = frame.indexOf(SEP, p6 + 1)
    if (p6 === -1) return new InvalidFrameImpl(TooFewSeparators, frame)
  }
  let head: string
  try {
    head = decoder.decode(frame.subarray(0, p6 + 1))
  } catch {
    return new InvalidFrameImpl("InvalidUtf8", frame)
  }
  const decoded = decodeString(head, false) as MessageImpl
  const body = new Uint8Array(frame.buffer, frame.byteOffset + p6 + 1, frame.length - p6 - 1)
  if (decoded.error !== undefined) {
    // errors always travel as text: a binary error frame is read as one
    try {
      return new MessageImpl(
        decoded.namespace,
        decoded.room,
        decoded.event,
        "",
        decoder.decode(body),
        false,
        decoded.wait,
        decoded.isNoOp,
        false
      )
    } catch {
      return new InvalidFrameImpl("InvalidUtf8", frame)
    }
  }
  return new MessageImpl(
    decoded.namespace,
    decoded.room,
    decoded.event,
    body,
    undefined,
    true,
    decoded.wait,
    decoded.isNoOp,
    false
  )
}

// -----------------------------------------------------------------------------
// handshake
// -----------------------------------------------------------------------------

/** @internal */
export const decodeHandshake = (frame: string | Uint8Array): Message.Handshake => {
  if (typeof frame !== "string" || frame.length === 0) {
    return { _tag: "Other" }
  }
  switch (frame.charCodeAt(0)) {
    case 77: // M
      return { _tag: "Ack" }
    case 65: // A
      return { _tag: "Id", id: frame.slice(1) }
    case 72: // H
      return { _tag: "Rejected", reason: frame.slice(1) }
    default:
      return { _tag: "Other" }
  }
}

// -----------------------------------------------------------------------------
// wait tokens
// -----------------------------------------------------------------------------

const processSeed = (Date.now() % 1_000_000_000).toString().padStart(9, "0") +
  Math.floor(Math.random() * 1_000_000).toString().padStart(6, "0")
let clientCounter = 0
let serverCounter = 0

/** @internal */
export const clientToken = (): string => "$" + processSeed + "." + (clientCounter++).toString(36)

/** @internal */
export const serverToken = (): string => processSeed + (serverCounter++).toString()

/** @internal */
export const tokenOrigin = (wait: string): Message.TokenOrigin => {
  if (wait.length === 0) return "none"
  const c = wait.charCodeAt(0)
  return c === 36 ? "client" : c === 35 ? "confirmation" : "server"
}
