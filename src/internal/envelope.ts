/**
 * What travels between instances through the broker: channel names and the
 * binary envelope. The websocket frame is never published as is, because it
 * cannot carry the origin, the exclusions, the `to` target or the correlation of
 * a cross-instance request.
 *
 * Over 450 lines on purpose: every kind's encoder sits next to its decoder, so a
 * field added to one side cannot be missed on the other; split by direction, each
 * change would touch two files that must agree byte for byte.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import { createHash } from "node:crypto"
import * as Errors from "../Errors.js"
import type * as Message from "../Message.js"
import * as msg from "./message.js"

// -----------------------------------------------------------------------------
// channel names
// -----------------------------------------------------------------------------

const plain = /^[A-Za-z0-9-]+$/
const maxSegment = 200
const hex = "0123456789ABCDEF"
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * One channel segment for any string: `[A-Za-z0-9-]` stay, every other UTF-8
 * byte becomes `_XX`, the empty string is `_`, and a segment that would be longer
 * than 200 characters is `~` and the SHA-256 of the string. The result is a valid
 * literal Redis channel part and NATS subject token (no `.`, `*`, `>`, spaces or
 * glob characters) and the mapping is injective up to hash collisions (receivers
 * check names again, so a collision costs traffic, never a misdelivery).
 *
 * @internal
 */
export const segment = (name: string): string => {
  if (name.length === 0) return "_"
  if (name.length <= maxSegment && plain.test(name)) return name
  let out = ""
  for (const byte of encoder.encode(name)) {
    const ok = (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || byte === 45
    out += ok ? String.fromCharCode(byte) : "_" + hex[byte >> 4] + hex[byte & 15]
    if (out.length > maxSegment) return "~" + createHash("sha256").update(name).digest("hex")
  }
  return out
}

const validPrefix = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/** @internal */
export const isValidPrefix = (prefix: string): boolean => prefix.length <= 100 && validPrefix.test(prefix)

/**
 * The channels of one prefix. Every kind has its own fixed second token and a
 * fixed number of segments, so a connection id never shares a channel with a
 * namespace of the same name.
 *
 * @internal
 */
export interface Channels {
  readonly namespace: (namespace: string) => string
  readonly room: (namespace: string, room: string) => string
  readonly id: (id: string) => string
  readonly inbox: (instance: string) => string
  readonly all: string
}

/** @internal */
export const channels = (prefix: string): Channels => ({
  namespace: (namespace) => `${prefix}.ns.${segment(namespace)}`,
  room: (namespace, room) => `${prefix}.room.${segment(namespace)}.${segment(room)}`,
  id: (id) => `${prefix}.id.${segment(id)}`,
  inbox: (instance) => `${prefix}.inbox.${segment(instance)}`,
  all: `${prefix}.all`
})

// -----------------------------------------------------------------------------
// envelopes
// -----------------------------------------------------------------------------

/**
 * The outcome of a cross-instance ask, as the owning instance saw it.
 *
 * @internal
 */
export type Outcome =
  | { readonly _tag: "Reply"; readonly message: Message.Message }
  | { readonly _tag: "Failure"; readonly error: Errors.AskError | Errors.ConnectionNotFound }

/**
 * The caller's span, so that a cross-instance send or ask continues its trace.
 *
 * @internal
 */
export interface Trace {
  readonly traceId: string
  readonly spanId: string
  readonly sampled: boolean
}

/** @internal */
export type Envelope =
  | {
    readonly _tag: "Broadcast"
    readonly origin: string
    readonly to: string | undefined
    readonly exceptConnection: { readonly instance: string; readonly key: number } | undefined
    readonly exceptId: string | undefined
    readonly message: Message.Message
  }
  | {
    readonly _tag: "Send"
    readonly origin: string
    readonly correlation: number
    readonly to: string
    readonly message: Message.Message
    readonly trace?: Trace | undefined
  }
  | {
    readonly _tag: "Ask"
    readonly origin: string
    readonly correlation: number
    readonly to: string
    readonly timeoutMs: number
    readonly message: Message.Message
    readonly trace?: Trace | undefined
  }
  | {
    readonly _tag: "Close"
    readonly origin: string
    readonly correlation: number
    readonly id: string
    readonly code: number
    readonly reason: string
  }
  | { readonly _tag: "Count"; readonly origin: string; readonly correlation: number }
  | { readonly _tag: "Ack"; readonly correlation: number; readonly count: number }
  | { readonly _tag: "Result"; readonly correlation: number; readonly outcome: Outcome }
  /** the servers' own cluster messages (heartbeats, presence, remote control), to every instance or to `to` */
  | { readonly _tag: "Cluster"; readonly origin: string; readonly to: string | undefined; readonly payload: Uint8Array }
  /** an instance's summary for the admin dashboard */
  | { readonly _tag: "Info"; readonly origin: string; readonly payload: Uint8Array }

const VERSION = 1
const kinds = ["", "Broadcast", "Send", "Ask", "Close", "Count", "Ack", "Result", "Cluster", "Info"] as const
const kindCode = {
  Broadcast: 1,
  Send: 2,
  Ask: 3,
  Close: 4,
  Count: 5,
  Ack: 6,
  Result: 7,
  Cluster: 8,
  Info: 9
} satisfies Record<Envelope["_tag"], number>

const failureTags = [
  "AskTimeout",
  "RemoteError",
  "ConnectionClosed",
  "BadNamespace",
  "BadRoom",
  "ConnectionNotFound"
] as const

class Writer {
  buf = new Uint8Array(256)
  pos = 0
  ensure(n: number) {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }
  byte(b: number) {
    this.ensure(1)
    this.buf[this.pos++] = b
  }
  uint(n: number) {
    this.ensure(8)
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.buf[this.pos++] = n
  }
  string(s: string) {
    // at most 3 bytes per UTF-16 code unit; the length prefix is written after encoding
    this.ensure(s.length * 3 + 5)
    const start = this.pos + (s.length * 3 < 0x80 ? 1 : s.length * 3 < 0x4000 ? 2 : 5)
    const written = encoder.encodeInto(s, this.buf.subarray(start)).written
    const width = start - this.pos
    let n = written
    for (let i = 0; i < width - 1; i++) {
      this.buf[this.pos++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.buf[this.pos++] = n
    this.pos += written
  }
  bytes(b: Uint8Array) {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }
  done(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

class Truncated {}
const truncated = new Truncated()

class Reader {
  pos = 0
  constructor(readonly buf: Uint8Array) {}
  byte(): number {
    if (this.pos >= this.buf.length) throw truncated
    return this.buf[this.pos++]
  }
  uint(): number {
    let n = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const b = this.byte()
      n += (b & 0x7f) * scale
      if (b < 0x80) return n
      scale *= 0x80
    }
    throw truncated
  }
  string(): string {
    const length = this.uint()
    if (this.pos + length > this.buf.length) throw truncated
    const s = decoder.decode(this.buf.subarray(this.pos, this.pos + length))
    this.pos += length
    return s
  }
  rest(): Uint8Array {
    const out = this.buf.slice(this.pos)
    this.pos = this.buf.length
    return out
  }
}

const writeMessage = (w: Writer, message: Message.Message) => {
  const error = message.error
  w.byte((message.binary ? 1 : 0) | (error !== undefined ? 2 : 0) | (message.isNoOp ? 4 : 0))
  w.string(message.namespace)
  w.string(message.room)
  w.string(message.event)
  if (error !== undefined) {
    w.string(error)
  } else if (typeof message.body === "string") {
    w.ensure(message.body.length * 3)
    w.pos += encoder.encodeInto(message.body, w.buf.subarray(w.pos)).written
  } else {
    w.bytes(message.body)
  }
}

const readMessage = (r: Reader): Message.Message => {
  const flags = r.byte()
  const namespace = r.string()
  const room = r.string()
  const event = r.string()
  const error = (flags & 2) !== 0 ? r.string() : undefined
  const binary = (flags & 1) !== 0
  const rest = error === undefined ? r.rest() : undefined
  const body = rest === undefined ? "" : binary ? rest : decoder.decode(rest)
  return msg.unsafeMake(
    namespace,
    room,
    event,
    body,
    error,
    binary && error === undefined,
    "",
    (flags & 4) !== 0,
    false
  )
}

const writeFailure = (w: Writer, error: Errors.AskError | Errors.ConnectionNotFound) => {
  w.byte(failureTags.indexOf(error._tag))
  switch (error._tag) {
    case "AskTimeout":
      w.string(error.namespace)
      w.string(error.event)
      w.uint(Math.max(0, Math.round(Duration.toMillis(error.timeout))))
      return
    case "RemoteError":
      w.string(error.text)
      w.string(error.namespace)
      w.string(error.room)
      w.string(error.event)
      return
    case "ConnectionClosed":
      w.string(error.id)
      return
    case "BadNamespace":
      w.string(error.namespace)
      w.string(error.reason)
      return
    case "BadRoom":
      w.string(error.namespace)
      w.string(error.room)
      return
    case "ConnectionNotFound":
      w.string(error.id)
      w.string(error.namespace ?? "")
      return
  }
}

const readFailure = (r: Reader): Errors.AskError | Errors.ConnectionNotFound => {
  const tag = failureTags[r.byte()]
  switch (tag) {
    case "AskTimeout": {
      const namespace = r.string()
      const event = r.string()
      return new Errors.AskTimeout({ namespace, event, timeout: Duration.millis(r.uint()) })
    }
    case "RemoteError": {
      const text = r.string()
      const namespace = r.string()
      const room = r.string()
      return new Errors.RemoteError({ text, namespace, room, event: r.string() })
    }
    case "ConnectionClosed":
      return new Errors.ConnectionClosed({ id: r.string() })
    case "BadNamespace": {
      const namespace = r.string()
      const reason = r.string()
      return new Errors.BadNamespace({
        namespace,
        reason: reason === "NotDeclared" || reason === "RefusedByPeer" ? reason : "NotConnected"
      })
    }
    case "BadRoom": {
      const namespace = r.string()
      return new Errors.BadRoom({ namespace, room: r.string() })
    }
    case "ConnectionNotFound": {
      const id = r.string()
      const namespace = r.string()
      return new Errors.ConnectionNotFound({ id, namespace: namespace.length === 0 ? undefined : namespace })
    }
    default:
      throw truncated
  }
}

/** Set on the kind byte of a send or an ask that carries the caller's trace (an untraced one is unchanged). */
const TRACED = 0x80

const writeTrace = (w: Writer, trace: Trace | undefined) => {
  if (trace === undefined) return
  w.string(trace.traceId)
  w.string(trace.spanId)
  w.byte(trace.sampled ? 1 : 0)
}

const readTrace = (r: Reader, traced: boolean): Trace | undefined =>
  traced ? { traceId: r.string(), spanId: r.string(), sampled: r.byte() === 1 } : undefined

/** @internal */
export const encode = (envelope: Envelope): Uint8Array => {
  const w = new Writer()
  w.byte(VERSION)
  const traced = (envelope._tag === "Send" || envelope._tag === "Ask") && envelope.trace !== undefined
  w.byte(kindCode[envelope._tag] | (traced ? TRACED : 0))
  switch (envelope._tag) {
    case "Broadcast": {
      const { exceptConnection, exceptId, to } = envelope
      w.string(envelope.origin)
      w.byte((to !== undefined ? 1 : 0) | (exceptConnection !== undefined ? 2 : 0) | (exceptId !== undefined ? 4 : 0))
      if (to !== undefined) w.string(to)
      if (exceptConnection !== undefined) {
        w.string(exceptConnection.instance)
        w.uint(exceptConnection.key)
      }
      if (exceptId !== undefined) w.string(exceptId)
      writeMessage(w, envelope.message)
      break
    }
    case "Send":
      w.string(envelope.origin)
      w.uint(envelope.correlation)
      w.string(envelope.to)
      writeTrace(w, envelope.trace)
      writeMessage(w, envelope.message)
      break
    case "Ask":
      w.string(envelope.origin)
      w.uint(envelope.correlation)
      w.string(envelope.to)
      w.uint(envelope.timeoutMs)
      writeTrace(w, envelope.trace)
      writeMessage(w, envelope.message)
      break
    case "Info":
      w.string(envelope.origin)
      w.bytes(envelope.payload)
      break
    case "Close":
      w.string(envelope.origin)
      w.uint(envelope.correlation)
      w.string(envelope.id)
      w.uint(envelope.code)
      w.string(envelope.reason)
      break
    case "Count":
      w.string(envelope.origin)
      w.uint(envelope.correlation)
      break
    case "Ack":
      w.uint(envelope.correlation)
      w.uint(envelope.count)
      break
    case "Result":
      w.uint(envelope.correlation)
      if (envelope.outcome._tag === "Reply") {
        w.byte(0)
        writeMessage(w, envelope.outcome.message)
      } else {
        w.byte(1)
        writeFailure(w, envelope.outcome.error)
      }
      break
    case "Cluster":
      w.string(envelope.origin)
      w.byte(envelope.to === undefined ? 0 : 1)
      if (envelope.to !== undefined) w.string(envelope.to)
      w.bytes(envelope.payload)
      break
  }
  return w.done()
}

/**
 * Decodes an envelope; anything else (another version, garbage, truncation) is `undefined`.
 *
 * @internal
 */
export const decode = (payload: Uint8Array): Envelope | undefined => {
  if (payload.length < 2 || payload[0] !== VERSION) return undefined
  const r = new Reader(payload)
  r.pos = 2
  const traced = (payload[1] & TRACED) !== 0
  try {
    switch (kinds[payload[1] & ~TRACED]) {
      case "Broadcast": {
        const origin = r.string()
        const flags = r.byte()
        const to = (flags & 1) !== 0 ? r.string() : undefined
        const exceptConnection = (flags & 2) !== 0 ? { instance: r.string(), key: r.uint() } : undefined
        const exceptId = (flags & 4) !== 0 ? r.string() : undefined
        return { _tag: "Broadcast", origin, to, exceptConnection, exceptId, message: readMessage(r) }
      }
      case "Send": {
        const origin = r.string()
        const correlation = r.uint()
        const to = r.string()
        const trace = readTrace(r, traced)
        return { _tag: "Send", origin, correlation, to, message: readMessage(r), trace }
      }
      case "Ask": {
        const origin = r.string()
        const correlation = r.uint()
        const to = r.string()
        const timeoutMs = r.uint()
        const trace = readTrace(r, traced)
        return { _tag: "Ask", origin, correlation, to, timeoutMs, message: readMessage(r), trace }
      }
      case "Close": {
        const origin = r.string()
        const correlation = r.uint()
        const id = r.string()
        const code = r.uint()
        return { _tag: "Close", origin, correlation, id, code, reason: r.string() }
      }
      case "Count":
        return { _tag: "Count", origin: r.string(), correlation: r.uint() }
      case "Ack": {
        const correlation = r.uint()
        return { _tag: "Ack", correlation, count: r.uint() }
      }
      case "Result": {
        const correlation = r.uint()
        const outcome: Outcome = r.byte() === 0
          ? { _tag: "Reply", message: readMessage(r) }
          : { _tag: "Failure", error: readFailure(r) }
        return { _tag: "Result", correlation, outcome }
      }
      case "Cluster": {
        const origin = r.string()
        const to = r.byte() === 1 ? r.string() : undefined
        return { _tag: "Cluster", origin, to, payload: r.rest() }
      }
      case "Info": {
        const origin = r.string()
        return { _tag: "Info", origin, payload: r.rest() }
      }
      default:
        return undefined
    }
  } catch (e) {
    if (e === truncated || e instanceof RangeError) return undefined
    throw e
  }
}
