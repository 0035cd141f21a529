/**
 * Seeded fuzzing over real sockets: at least 100,000 random and mutated frames,
 * before and after the handshake, text and binary, from several connections at
 * once. Nothing may crash the server, a bystander that receives a steady
 * broadcast must lose nothing and keep being answered, memory must come back.
 *
 * Replay a run with `FUZZ_SEED=<seed> npx vitest run test/Server.fuzz.test.ts`;
 * raise the work with `FUZZ_FRAMES=1000000` (and `FUZZ_TIMEOUT` in ms).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Queue from "effect/Queue"
import WebSocket from "ws"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as NodeServer from "../src/NodeServer.js"
import * as Reply from "../src/Reply.js"
import * as Server from "../src/Server.js"
import { exposeGc } from "./utils.js"

// -----------------------------------------------------------------------------
// parameters
// -----------------------------------------------------------------------------

const seed = process.env.FUZZ_SEED !== undefined && process.env.FUZZ_SEED !== ""
  ? Number(process.env.FUZZ_SEED) >>> 0
  : Math.floor(Math.random() * 2 ** 32) >>> 0
const totalFrames = Math.max(1, Number(process.env.FUZZ_FRAMES ?? 100_000))
const timeoutMs = Number(process.env.FUZZ_TIMEOUT ?? 60_000)
const slots = 8
const batchSize = 200
const stormSize = 1200
const maxMessageSize = 1024 * 1024
/** how long one wait may take before the run fails: generous, the machine is shared */
const deadline = Duration.seconds(10)
/** what the heap may have grown by after the run (after a full GC) */
const heapSlack = 64 * 1024 * 1024

// -----------------------------------------------------------------------------
// a seeded PRNG (mulberry32: 32-bit state, period 2^32, good enough for input generation)
// -----------------------------------------------------------------------------

class Rng {
  private state: number
  constructor(seed: number) {
    this.state = seed >>> 0
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  between(min: number, max: number): number {
    return min + this.int(max - min + 1)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<A>(items: ReadonlyArray<A>): A {
    return items[this.int(items.length)]
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.int(256)
    return out
  }
}

/** A stream of seeds for the parts of the run, all derived from the one seed. */
const derive = (base: number, part: number): number => new Rng(base ^ Math.imul(part + 1, 0x9e3779b1)).int(2 ** 32)

// -----------------------------------------------------------------------------
// the server under test
// -----------------------------------------------------------------------------

class Refused extends Data.TaggedError("Refused")<{ readonly message: string }> {}

const quick = { timeout: "150 millis" } as const

const events = Events.namespaces({
  "": {
    // raw frames fall back to native messages on namespace ""
    _OnNativeMessage: (_ns, msg) => Effect.succeed(Reply.text("native:" + Message.bodyText(msg).length))
  },
  default: {
    _OnNamespaceConnected: (ns) => ns.emit("welcome", "hi"),
    _OnRoomJoin: (_ns, msg) =>
      msg.room.startsWith("forbidden") ? Effect.fail(new Refused({ message: "room is forbidden" })) : Effect.void,
    _OnRoomJoined: (ns, msg) => ns.broadcastOthers({ room: msg.room, event: "joined", body: ns.conn.id }),
    _OnRoomLeave: (_ns, msg) =>
      msg.room === "sticky" && !msg.isForced ? Effect.fail(new Refused({ message: "stay" })) : Effect.void,
    _OnNamespaceDisconnect: () => Effect.void,
    echo: (_ns, msg) => Effect.succeed(Reply.text("echo:" + Message.bodyText(msg).slice(0, 64))),
    bin: (_ns, msg) => Effect.succeed(Reply.binary(Message.bodyBytes(msg).subarray(0, 64))),
    fail: () => Effect.fail(new Refused({ message: "boom;with;semicolons" })),
    die: () => Effect.die(new Error("fuzz: a handler defect")),
    chat: (ns, msg) => ns.broadcast({ room: msg.room, event: "chat", body: Message.bodyText(msg).slice(0, 64) }),
    others: (ns, msg) => ns.broadcastOthers({ room: msg.room, event: "others", body: "x" }),
    askback: (ns, msg) =>
      ns.ask("question", Message.bodyText(msg).slice(0, 32), quick).pipe(
        Effect.flatMap((reply) => ns.emit("answer", Message.bodyText(reply).slice(0, 32))),
        Effect.catchAll((error) => ns.emit("answer", error._tag))
      ),
    joinme: (ns, msg) =>
      ns.joinRoom(Message.bodyText(msg).slice(0, 300), quick).pipe(
        Effect.flatMap((room) => room.emit("roomev", "from server")),
        Effect.catchAll((error) => ns.emit("joinfailed", error._tag))
      ),
    leaveme: (ns, msg) =>
      ns.room(Message.bodyText(msg)).pipe(
        Effect.flatMap((room) => room.leave(quick)),
        Effect.catchAll((error) => ns.emit("leavefailed", error._tag))
      ),
    kickme: (ns) => Effect.catchAll(ns.disconnect(quick), (error) => ns.emit("kickfailed", error._tag)),
    sleepy: () => Effect.as(Effect.sleep("1 millis"), Reply.text("slept")),
    closeme: (ns) => ns.conn.close({ code: 4001, reason: "asked to" })
  },
  "semi;ns": {
    _OnNamespaceDisconnect: () => Effect.fail(new Refused({ message: "you cannot leave semi;ns" })),
    "ev;1": () => Effect.succeed(Reply.text("ok;"))
  },
  any: {
    _OnAnyEvent: (_ns, msg) =>
      msg.room === "veto"
        ? Effect.fail(new Refused({ message: "vetoed" }))
        : Effect.succeed(Reply.text("any:" + msg.event.slice(0, 16)))
  },
  watch: {
    ping: (_ns, msg) => Effect.succeed(Reply.text("pong:" + Message.bodyText(msg)))
  }
})

/** Error and warning logs, and unhandled fiber failures (logged at debug), by message. */
class LogRecorder {
  readonly expected = new Map<string, number>()
  readonly unexpected: Array<string> = []
  readonly logger = Logger.make<unknown, void>(({ cause, logLevel, message }) => {
    if (LogLevel.lessThan(logLevel, LogLevel.Warning) && !String(message).includes("unhandled")) return
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    // the defects of the `die` handler and of onConnect are the errors the server is expected to log
    if (text.includes("a handler died") && /fuzz: (a handler|onConnect) defect/.test(String(cause))) {
      this.expected.set(text, (this.expected.get(text) ?? 0) + 1)
    } else if (this.unexpected.length < 20) {
      this.unexpected.push(`${logLevel.label} ${text} ${String(cause).slice(0, 500)}`)
    }
  })
}

// -----------------------------------------------------------------------------
// WebSocket frames written by hand (what `ws` would refuse to send)
// -----------------------------------------------------------------------------

/** A client frame (RFC 6455 5.2) with the given first byte; masked unless told otherwise. */
const wsFrame = (rng: Rng, first: number, payload: Uint8Array, masked = true): Buffer => {
  const length = payload.length
  const head = length < 126 ? [length] : length < 65536 ? [126, length >> 8, length & 255] : undefined
  if (head === undefined) throw new Error("frame too long for wsFrame")
  if (masked) head[0] |= 0x80
  const mask = masked ? rng.bytes(4) : new Uint8Array(0)
  const body = masked ? payload.map((b, i) => b ^ mask[i % 4]) : payload
  return Buffer.concat([Buffer.from([first, ...head]), mask, body])
}

const sendRaw = (ws: WebSocket, frame: Buffer): void => {
  if (ws.readyState !== WebSocket.OPEN) return
  const sender = (ws as unknown as { _sender: { sendFrame: (list: Array<Buffer>) => void } })._sender
  sender.sendFrame([frame])
}

// -----------------------------------------------------------------------------
// frame generators
// -----------------------------------------------------------------------------

type Frame =
  | { readonly _tag: "Text"; readonly data: string }
  | { readonly _tag: "Binary"; readonly data: Uint8Array }
  /** a frame `ws` would not send: invalid UTF-8 text, bad opcodes and bits, fragments */
  | { readonly _tag: "Raw"; readonly data: Buffer }

const text = (data: string): Frame => ({ _tag: "Text", data })
const binary = (data: Uint8Array): Frame => ({ _tag: "Binary", data })
const encoder = new TextEncoder()

const namespaceFields = [
  "default",
  "default",
  "default",
  "",
  "any",
  "watch",
  "semi@%!semicolon@%!ns",
  "nowhere",
  "Default",
  "default ",
  "semi;ns",
  "@%!semicolon@%!",
  "\u00e9v\u00e9nement",
  "_OnAnyEvent"
]
const eventFields = [
  "echo",
  "echo",
  "bin",
  "fail",
  "chat",
  "others",
  "askback",
  "joinme",
  "leaveme",
  "kickme",
  "sleepy",
  "die",
  "closeme",
  "nosuch",
  "ping",
  "tick",
  "",
  "ev@%!semicolon@%!1",
  "_OnNamespaceConnect",
  "_OnNamespaceConnect",
  "_OnNamespaceDisconnect",
  "_OnRoomJoin",
  "_OnRoomJoin",
  "_OnRoomLeave",
  "_OnRoomLeft",
  "_OnRoomJoined",
  "_OnNamespaceConnected",
  "_OnAnyEvent",
  "_OnNativeMessage",
  "_onroomjoin"
]
const roomFields = [
  "r1",
  "r2",
  "sticky",
  "forbidden",
  "forbidden-too",
  "veto",
  "ticker",
  "a@%!semicolon@%!b",
  "@%!semi",
  "@%!semicolon@%!@%!semicolon@%!",
  "\u{1f600}"
]
const junkTokens = [
  "$",
  "#",
  "#1",
  "1",
  "0",
  "R795608349911383620",
  "neffos(0x1(abc))",
  "$" + "9".repeat(300),
  "$ spaced",
  "$\u00e9\u20ac\u{1f600}",
  "\u0000",
  "M",
  "A",
  "H"
]
const flagJunk = ["1", "2", "true", "", "11", "01", " 1", "1\u0000", "-", "\u0661"]
const alphabet = ";;;;;@%!semicolon$#01MAH_ \u00e9\u20ac\u{1f600}\u0000\n\\abcxyzABC0123456789-.:{}[]\""

/** A name whose UTF-8 length is near 256 bytes, sometimes with multi-byte characters or separators. */
const nearLimitName = (rng: Rng): string => {
  const bytes = rng.between(248, 262)
  switch (rng.int(4)) {
    case 0:
      return "n".repeat(bytes)
    case 1:
      // 2-byte characters: half as many characters as bytes
      return "\u00e9".repeat(bytes >> 1) + (bytes & 1 ? "x" : "")
    case 2:
      // 3-byte characters and one 4-byte one at the end
      return "\u20ac".repeat(Math.floor((bytes - 4) / 3)) + "\u{1f600}"
    default:
      // escaped separators count as one character in the name, 15 on the wire
      return "@%!semicolon@%!".repeat(Math.floor(bytes / 15)) + "x".repeat(bytes % 15)
  }
}

const symbols = Array.from(alphabet)

const randomString = (rng: Rng, max: number): string => {
  const n = rng.int(max + 1)
  let out = ""
  for (let i = 0; i < n; i++) out += rng.chance(0.9) ? rng.pick(symbols) : String.fromCharCode(rng.int(0x3000))
  return out
}

/** Per connection generator state: the rooms it joins are new ones, many of them. */
class Generator {
  private rooms = 0
  constructor(readonly rng: Rng, readonly slot: number) {}

  freshRoom(): string {
    return `s${this.slot}-${this.rooms++}`
  }

  token(): string {
    const rng = this.rng
    const r = rng.next()
    if (r < 0.4) return ""
    if (r < 0.85) return "$" + rng.int(1_000_000)
    return rng.pick(junkTokens)
  }

  field(items: ReadonlyArray<string>): string {
    const rng = this.rng
    const r = rng.next()
    if (r < 0.9) return rng.pick(items)
    if (r < 0.95) return nearLimitName(rng)
    return randomString(rng, 12).replaceAll(";", "@%!semicolon@%!")
  }

  room(): string {
    const rng = this.rng
    const r = rng.next()
    if (r < 0.45) return ""
    if (r < 0.7) return this.freshRoom()
    if (r < 0.76) return nearLimitName(rng)
    return rng.pick(roomFields)
  }

  body(): string {
    const rng = this.rng
    switch (rng.int(6)) {
      case 0:
        return ""
      case 1:
        return String(rng.int(100_000))
      case 2:
        return rng.pick(["r1", "sticky", "ticker", this.freshRoom(), nearLimitName(rng)])
      default:
        return randomString(rng, 40)
    }
  }

  /** A well-formed frame, flags and token included. */
  valid(): string {
    const rng = this.rng
    const isError = rng.chance(0.9) ? "0" : rng.chance(0.5) ? "1" : rng.pick(flagJunk)
    const isNoOp = rng.chance(0.92) ? "0" : rng.chance(0.5) ? "1" : rng.pick(flagJunk)
    return [
      this.token(),
      this.field(namespaceFields),
      this.room(),
      this.field(eventFields),
      isError,
      isNoOp,
      this.body()
    ]
      .join(";")
  }

  /** The requests that move a connection through its states, for rooms and namespaces to pile up. */
  system(): string {
    const rng = this.rng
    const ns = rng.chance(0.8) ? "default" : rng.pick(namespaceFields)
    const wait = rng.chance(0.9) ? "$" + rng.int(1000) : this.token()
    switch (rng.int(6)) {
      case 0:
        return `${wait};${ns};;_OnNamespaceConnect;0;0;`
      case 1:
      case 2:
        return `${wait};${ns};${this.freshRoom()};_OnRoomJoin;0;0;`
      case 3:
        return `${wait};${ns};${this.room()};_OnRoomLeave;0;0;${randomString(rng, 8)}`
      case 4:
        return `${wait};${ns};;_OnNamespaceDisconnect;0;${rng.pick(["0", "1"])};`
      default:
        return `${wait};${ns};${nearLimitName(rng)};_OnRoomJoin;0;0;`
    }
  }

  mutate(frame: string): string {
    const rng = this.rng
    let out = frame
    const times = rng.between(1, 4)
    for (let i = 0; i < times; i++) {
      const at = rng.int(out.length + 1)
      switch (rng.int(10)) {
        case 0:
          out = out.slice(0, at) + rng.pick(symbols) + out.slice(at + 1)
          break
        case 1:
          out = out.slice(0, at) + rng.pick(symbols) + out.slice(at)
          break
        case 2:
          out = out.slice(0, at) + out.slice(at + 1)
          break
        case 3:
          out = out.slice(0, at)
          break
        case 4: {
          // duplicate a separator
          const sep = out.indexOf(";", at)
          if (sep !== -1) out = out.slice(0, sep) + ";" + out.slice(sep)
          break
        }
        case 5:
          out = out.slice(0, at) + ";".repeat(rng.between(2, 50)) + out.slice(at)
          break
        case 6:
          out = out.slice(0, at) + rng.pick(["@%!semicolon@%!", "@%!semi", "colon@%!", "@%!", "@%!semicolon@%"]) +
            out.slice(at)
          break
        case 7: {
          // swap two fields
          const fields = out.split(";")
          const a = rng.int(fields.length)
          const b = rng.int(fields.length)
          ;[fields[a], fields[b]] = [fields[b], fields[a]]
          out = fields.join(";")
          break
        }
        case 8:
          out = out.slice(0, at) + String.fromCharCode(rng.int(0x10000)) + out.slice(at)
          break
        default:
          out = out + out.slice(0, rng.int(out.length + 1))
      }
    }
    return out
  }

  toBinary(frame: string): Uint8Array {
    const rng = this.rng
    const bytes = encoder.encode(frame)
    switch (rng.int(4)) {
      case 0: {
        // random bytes in place of the body (after the 6th separator, or anywhere)
        return Buffer.concat([bytes, rng.bytes(rng.int(64))])
      }
      case 1: {
        // invalid UTF-8 somewhere
        const copy = new Uint8Array(bytes)
        if (copy.length > 0) copy[rng.int(copy.length)] = rng.pick([0xff, 0xc3, 0x80, 0xed])
        return copy
      }
      default:
        return bytes
    }
  }

  /** Thousands of separators, with or without a plausible start. */
  separators(): string {
    const rng = this.rng
    const n = rng.pick([6, 7, 100, 1000, 5000, 20_000, 100_000])
    const run = ";".repeat(n)
    switch (rng.int(4)) {
      case 0:
        return run
      case 1:
        return "$x;default" + run + "echo"
      case 2:
        return ";default;;echo;0;0" + run
      default:
        return "@%!semicolon@%!".repeat(rng.between(1, 2000)) + run.slice(0, 1000)
    }
  }

  /** A frame for a connection past its handshake. */
  frame(big: string): Frame {
    const rng = this.rng
    const r = rng.next()
    if (r < 0.25) return text(this.valid())
    if (r < 0.31) return binary(this.toBinary(this.valid()))
    if (r < 0.43) return text(this.system())
    if (r < 0.63) return text(this.mutate(rng.chance(0.7) ? this.valid() : this.system()))
    if (r < 0.67) return binary(this.toBinary(this.mutate(this.valid())))
    if (r < 0.77) return text(randomString(rng, 200))
    if (r < 0.85) return binary(rng.bytes(rng.int(200)))
    if (r < 0.9) {
      // names near the limits in every field, and now and then far beyond them
      const wait = "$" + rng.int(1000)
      const name = rng.chance(0.03) ? "o".repeat(rng.between(1000, 100_000)) : nearLimitName(rng)
      return text(rng.pick([
        `${wait};${name};;_OnNamespaceConnect;0;0;`,
        `${wait};default;${name};_OnRoomJoin;0;0;`,
        `${wait};default;${name};echo;0;0;`,
        `${wait};default;;${name};0;0;`,
        `${wait};any;${name};${name};0;0;${name}`
      ]))
    }
    if (r < 0.93) {
      return text(
        this.token() + ";" + rng.pick(["@%!semicolon@%!", "@%!semi", "colon@%!;"]).repeat(rng.between(1, 50)) +
          ";;echo;0;0;"
      )
    }
    if (r < 0.945) return text(this.separators())
    if (r < 0.96) return text(rng.pick(["M", "Mxyz", "Ahacker", "H", "Hbye", "A"]))
    if (r < 0.97) return rng.chance(0.5) ? text("") : binary(new Uint8Array(0))
    if (r < 0.998) return text(this.token() + ";" + this.field(namespaceFields) + ";" + this.room())
    if (r < 0.9996) return this.raw()
    return this.huge(big)
  }

  /** Bodies up to and just over the size limit. */
  huge(big: string): Frame {
    const rng = this.rng
    const head = ";default;;echo;0;0;"
    const size = rng.pick([maxMessageSize - 1000, maxMessageSize, maxMessageSize + 1, maxMessageSize + 65536])
    const frame = head + big.slice(0, size - head.length)
    return rng.chance(0.7) ? text(frame) : binary(encoder.encode(frame))
  }

  /** Transport-level junk `ws` would never send; most of it closes the connection. */
  raw(): Frame {
    const rng = this.rng
    const payload = encoder.encode(`;default;;echo;0;0;raw`)
    switch (rng.int(8)) {
      case 0:
        return { _tag: "Raw", data: wsFrame(rng, 0x81, new Uint8Array([0xc3, 0x28])) } // invalid UTF-8: 1007
      case 1:
        return { _tag: "Raw", data: wsFrame(rng, 0x80 | rng.pick([3, 4, 5, 6, 7, 11, 12, 15]), payload) } // reserved opcode
      case 2:
        return { _tag: "Raw", data: wsFrame(rng, 0x80, payload) } // a continuation with nothing to continue
      case 3:
        return { _tag: "Raw", data: wsFrame(rng, 0xc1, payload) } // RSV1 without an extension
      case 4:
        return { _tag: "Raw", data: wsFrame(rng, 0x81, payload, false) } // unmasked
      case 5:
        return { _tag: "Raw", data: wsFrame(rng, 0x89, rng.bytes(rng.int(126))) } // a ping: answered, harmless
      case 6:
        // a valid message in two fragments
        return {
          _tag: "Raw",
          data: Buffer.concat([
            wsFrame(rng, 0x01, payload.subarray(0, 5)),
            wsFrame(rng, 0x80, payload.subarray(5))
          ])
        }
      default:
        return { _tag: "Raw", data: wsFrame(rng, 0x01, payload.subarray(0, 5)) } // a fragment, then anything
    }
  }
}

// -----------------------------------------------------------------------------
// peers
// -----------------------------------------------------------------------------

/** A raw WebSocket client; frames go to `onFrame`, replies to its asks to their waiters. */
class Peer {
  readonly ws: WebSocket
  readonly opened: Promise<void>
  readonly closed: Promise<number>
  closeCode: number | undefined
  first: string | Uint8Array | undefined
  /** the id from A<id>, for a client that completed its handshake */
  id = ""
  private readonly waiters = new Map<string, (frame: string) => void>()
  onFrame: (frame: string | Uint8Array) => void = () => {}

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false })
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve())
      this.ws.once("error", reject)
    })
    this.opened.catch(() => {})
    this.closed = new Promise((resolve) => {
      this.ws.once("close", (code) => {
        this.closeCode = code
        resolve(code)
      })
    })
    this.ws.on("error", () => {})
    this.ws.on("message", (data: Buffer, isBinary) => {
      const frame = isBinary ? new Uint8Array(data) : data.toString("utf8")
      if (this.first === undefined) this.first = frame
      if (typeof frame === "string" && frame.charCodeAt(0) === 36 /* $ */) {
        const waiter = this.waiters.get(frame.slice(0, frame.indexOf(";")))
        if (waiter !== undefined) {
          this.waiters.delete(frame.slice(0, frame.indexOf(";")))
          return waiter(frame)
        }
      }
      this.onFrame(frame)
    })
  }

  send(frame: Frame): void {
    if (frame._tag === "Raw") return sendRaw(this.ws, frame.data)
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(frame.data, { binary: frame._tag === "Binary" })
  }

  /** Sends an ask and waits for the frame that answers its token (undefined: the socket closed first). */
  ask(token: string, frame: string, what: string): Effect.Effect<string | undefined> {
    return Effect.promise(() =>
      Promise.race([
        new Promise<string>((resolve) => {
          this.waiters.set(token, resolve)
          this.ws.send(frame)
        }),
        this.closed.then(() => undefined)
      ])
    ).pipe(within(what))
  }

  close(): Effect.Effect<number> {
    return Effect.suspend(() => {
      if (this.closeCode === undefined) this.ws.terminate()
      return Effect.promise(() => this.closed)
    })
  }
}

const within = (what: string) => <A>(self: Effect.Effect<A>): Effect.Effect<A> =>
  self.pipe(
    Effect.timeoutFail({
      duration: deadline,
      onTimeout: () => new Error(`fuzz (seed ${seed}): ${what} did not happen within ${Duration.format(deadline)}`)
    }),
    Effect.orDie
  )

const openPeer = (url: string, what: string) =>
  Effect.gen(function*() {
    const peer = new Peer(url)
    yield* Effect.promise(() => peer.opened.then(() => true, () => false)).pipe(
      within(`${what}: open`),
      Effect.flatMap((ok) => ok ? Effect.void : Effect.die(new Error(`fuzz (seed ${seed}): ${what} could not connect`)))
    )
    return peer
  })

/** A client that does everything by the book: handshake, namespace, room. */
const normalClient = (url: string, room: string, what: string) =>
  Effect.gen(function*() {
    const peer = yield* openPeer(url, what)
    const ack = yield* Effect.async<string>((resume) => {
      peer.onFrame = (frame) => resume(Effect.succeed(typeof frame === "string" ? frame : "<binary>"))
      peer.ws.send("M")
    }).pipe(within(`${what}: handshake`))
    assert.isTrue(ack.startsWith("A"), `${what}: expected A<id>, got ${ack.slice(0, 80)}`)
    peer.id = ack.slice(1)
    peer.onFrame = () => {}
    assert.strictEqual(yield* peer.ask("$c", "$c;watch;;_OnNamespaceConnect;0;0;", `${what}: connect`), "$c;;;;;;")
    assert.strictEqual(yield* peer.ask("$j", `$j;watch;${room};_OnRoomJoin;0;0;`, `${what}: join`), "$j;;;;;;")
    return peer
  })

// -----------------------------------------------------------------------------
// the run
// -----------------------------------------------------------------------------

const allowedCloses = new Set([
  1002, // protocol errors: bad WebSocket frames
  1006, // terminated: a close that does not wait for a peer that is not reading
  1007, // invalid UTF-8 in a text frame
  1008, // policy: slow consumer
  1009, // a frame over maxMessageSize
  4001 // the `closeme` handler
])

interface Stats {
  frames: number
  batches: number
  probes: number
  reconnects: number
  readonly closes: Map<number, number>
  readonly probeCloses: Map<number, number>
}

const count = (map: Map<number, number>, code: number) => map.set(code, (map.get(code) ?? 0) + 1)

/** Pre-handshake junk on a fresh socket, and what the server must answer to it. */
const probe = (url: string, rng: Rng, stats: Stats, what: string) =>
  Effect.gen(function*() {
    const kind = rng.int(11)
    const query = kind === 8 ? "?reject" : kind === 9 ? "?die" : kind === 10 ? "?slow" : ""
    const peer = yield* openPeer(url + query, what)
    let expected: number | undefined = 1002
    let hello: string | undefined
    switch (kind) {
      case 0: {
        let junk = randomString(rng, 60)
        if (junk.startsWith("M")) junk = "x" + junk
        peer.send(text(junk))
        break
      }
      case 1:
        peer.send(text("A" + randomString(rng, 20)))
        break
      case 2:
        peer.send(text("H" + randomString(rng, 20)))
        break
      case 3:
        peer.send(binary(rng.chance(0.5) ? encoder.encode("M") : rng.bytes(rng.int(40))))
        break
      case 4:
        peer.send(text(""))
        break
      case 5:
        peer.send(text("$x;default;;_OnNamespaceConnect;0;0;"))
        break
      case 6:
        peer.send({ _tag: "Raw", data: wsFrame(rng, 0x81, new Uint8Array([0x4d, 0xff, 0xfe])) })
        expected = 1007
        break
      case 7: {
        // M and frames right behind it, then gone without waiting
        peer.send(text(rng.chance(0.5) ? "M" : "M" + randomString(rng, 10)))
        for (let i = 0; i < 5; i++) peer.send(text(`$p${i};default;;_OnNamespaceConnect;0;0;`))
        expected = undefined
        break
      }
      case 8:
        peer.send(text("M"))
        hello = "Hrefused"
        expected = 1008
        break
      case 9:
        peer.send(text("M"))
        hello = "Hinternal error"
        expected = 1008
        break
      default: {
        // onConnect takes a while: frames queued behind M are answered after A<id>
        peer.send(text("M"))
        for (let i = 0; i < 3; i++) peer.send(text(`$q${i};default;;_OnNamespaceConnect;0;0;`))
        const reply = yield* peer.ask("$q3", "$q3;default;;echo;0;0;late", `${what}: ask behind M`)
        assert.isTrue(typeof peer.first === "string" && peer.first.startsWith("A"), `${what}: A<id> came first`)
        assert.strictEqual(reply, "$q3;default;;echo;0;0;echo:late", `${what}: ask behind M`)
        expected = undefined
      }
    }
    stats.frames += kind === 7 ? 6 : kind === 10 ? 5 : 1
    stats.probes++
    if (expected === undefined) {
      yield* peer.close()
      return
    }
    const code = yield* Effect.promise(() => peer.closed).pipe(within(`${what}: close after junk kind ${kind}`))
    count(stats.probeCloses, code)
    assert.strictEqual(code, expected, `${what}: pre-handshake junk kind ${kind}`)
    if (hello !== undefined) assert.strictEqual(peer.first, hello, `${what}: refusal text`)
    else assert.isUndefined(peer.first, `${what}: nothing written before M`)
  })

/** A fuzzing connection slot: a connection, replaced whenever the server closes it. */
const fuzzSlot = (url: string, slot: number, frames: number, stats: Stats, big: string) =>
  Effect.gen(function*() {
    const gen = new Generator(new Rng(derive(seed, slot)), slot)
    const answers = new Rng(derive(seed, 100 + slot))
    const probes = new Rng(derive(seed, 200 + slot))
    let sent = 0
    let peer: Peer | undefined
    let syncs = 0
    const connect = Effect.gen(function*() {
      const next = yield* openPeer(url + (answers.chance(0.2) ? "?slow" : ""), `slot ${slot}: open`)
      // answer most of the server's asks (tokens not starting with $), sometimes wrongly, sometimes not at all
      next.onFrame = (frame) => {
        if (typeof frame !== "string") return
        const c = frame.charCodeAt(0)
        if (c < 48 || c > 57) return
        const wait = frame.slice(0, frame.indexOf(";"))
        const r = answers.next()
        if (r < 0.8) next.ws.send(`${wait};;;;;;`)
        else if (r < 0.9) next.ws.send(`${wait};default;;question;1;0;no`)
        else if (r < 0.95) next.ws.send(`${wait};default;;question;0;0;${"x".repeat(answers.int(100))}`)
      }
      // the first batch goes out right behind M, without waiting for A<id>
      next.ws.send(answers.chance(0.8) ? "M" : "Mjunk")
      if (peer !== undefined) stats.reconnects++
      peer = next
    })
    while (sent < frames) {
      if (peer === undefined || peer.closeCode !== undefined) {
        if (peer !== undefined) count(stats.closes, peer.closeCode!)
        yield* connect
      }
      const current = peer!
      if (probes.chance(0.25)) yield* probe(url, probes, stats, `slot ${slot} probe`)
      // a storm: more distinct rooms at once than a per-connection room limit allows
      const storm = gen.rng.chance(0.02)
      const n = Math.min(storm ? stormSize : batchSize, frames - sent)
      for (let i = 0; i < n; i++) {
        const frame = !storm
          ? gen.frame(big)
          : i === 0
          ? text("$s;default;;_OnNamespaceConnect;0;0;")
          : text(`$s;default;${i % 50 === 0 ? nearLimitName(gen.rng) : gen.freshRoom()};_OnRoomJoin;0;0;`)
        current.send(frame)
      }
      sent += n
      stats.frames += n
      stats.batches++
      // the server has read the batch once it answers an ask sent after it
      const token = `$sync.${slot}.${syncs++}`
      const reply = yield* current.ask(token, `${token};default;;echo;0;0;`, `slot ${slot}: the reply after a batch`)
      if (reply !== undefined) {
        assert.isTrue(
          reply === `${token};default;;echo;0;0;echo:` || reply === `${token};default;;echo;1;0;bad namespace`,
          `slot ${slot}: sync reply ${reply.slice(0, 120)}`
        )
        assert.isTrue(
          typeof current.first === "string" && current.first.startsWith("A"),
          `slot ${slot}: the first frame after M is A<id>, got ${String(current.first).slice(0, 80)}`
        )
      }
    }
    if (peer !== undefined) {
      if (peer.closeCode !== undefined) count(stats.closes, peer.closeCode)
      else yield* peer.close()
    }
  })

const heapUsed = (gc: (() => void) | undefined): number => {
  if (gc !== undefined) {
    gc()
    gc()
  }
  return process.memoryUsage().heapUsed
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1)

describe("Server fuzzing", () => {
  it.scopedLive(
    `${totalFrames} random and mutated frames crash nothing and disturb no bystander`,
    () =>
      Effect.gen(function*() {
        console.log(
          `fuzz: seed=${seed} frames=${totalFrames} (replay: FUZZ_SEED=${seed} npx vitest run test/Server.fuzz.test.ts)`
        )
        const started = Date.now()
        const gc = exposeGc()
        const logs = new LogRecorder()
        const context = yield* Layer.build(
          NodeServer.layer({ port: 0 }).pipe(
            Layer.provideMerge(Server.layer({
              events,
              maxMessageSize,
              askTimeout: "150 millis",
              onConnect: (conn) => {
                if (conn.request.url.includes("?reject")) return Effect.fail(new Refused({ message: "refused" }))
                if (conn.request.url.includes("?die")) return Effect.die(new Error("fuzz: onConnect defect"))
                if (conn.request.url.includes("?slow")) return Effect.sleep("5 millis")
                return Effect.void
              },
              onDisconnect: () => Effect.void
            }))
          )
        ).pipe(
          Effect.provide(Layer.merge(
            Logger.replace(Logger.defaultLogger, logs.logger),
            Logger.minimumLogLevel(LogLevel.Debug)
          ))
        )
        const server = yield* Effect.provide(Server.Server, context)
        const { url } = yield* Effect.provide(NodeServer.NodeServer, context)
        // what the fuzzing reached: lifecycle events by kind, and the most rooms one connection held
        const reached = new Map<string, number>()
        const roomsHeld = new Map<unknown, number>()
        let mostRooms = 0
        const lifecycle = yield* server.subscribe
        yield* Effect.forkScoped(Effect.forever(Effect.map(Queue.take(lifecycle), (event) => {
          reached.set(event._tag, (reached.get(event._tag) ?? 0) + 1)
          if (event._tag === "RoomJoined" || event._tag === "RoomLeft") {
            const held = (roomsHeld.get(event.conn) ?? 0) + (event._tag === "RoomJoined" ? 1 : -1)
            roomsHeld.set(event.conn, held)
            mostRooms = Math.max(mostRooms, held)
          } else if (event._tag === "Disconnected") roomsHeld.delete(event.conn)
        })))

        // the bystander: joined the ticker room before the first tick, asks now and then
        const bystander = yield* normalClient(url, "ticker", "bystander")
        const ticks: Array<number> = []
        const strays: Array<string> = []
        let allTicks: { readonly count: number; readonly resolve: () => void } | undefined
        bystander.onFrame = (frame) => {
          const prefix = ";watch;ticker;tick;0;0;"
          if (typeof frame === "string" && frame.startsWith(prefix)) {
            ticks.push(Number(frame.slice(prefix.length)))
            if (allTicks !== undefined && ticks.length >= allTicks.count) allTicks.resolve()
          } else if (strays.length < 10) strays.push(String(frame).slice(0, 120))
        }
        const heapBefore = heapUsed(gc)
        let heapPeak = heapBefore

        let running = true
        let broadcasted = 0
        const ticker = yield* Effect.fork(Effect.gen(function*() {
          while (running) {
            yield* Effect.orDie(
              server.broadcast({ namespace: "watch", room: "ticker", event: "tick", body: String(broadcasted) })
            )
            broadcasted++
            yield* Effect.sleep("2 millis")
          }
        }))
        let asked = 0
        let slowestAsk = 0
        const asker = yield* Effect.fork(Effect.gen(function*() {
          while (running) {
            const token = `$b${asked}`
            const sentAt = Date.now()
            const reply = yield* bystander.ask(token, `${token};watch;;ping;0;0;${asked}`, `bystander ask ${asked}`)
            assert.strictEqual(reply, `${token};watch;;ping;0;0;pong:${asked}`, "the bystander's ask")
            slowestAsk = Math.max(slowestAsk, Date.now() - sentAt)
            asked++
            heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)
            yield* Effect.sleep("20 millis")
          }
        }))

        const stats: Stats = {
          frames: 0,
          batches: 0,
          probes: 0,
          reconnects: 0,
          closes: new Map(),
          probeCloses: new Map()
        }
        const big = "x".repeat(maxMessageSize + 65536)
        const perSlot = Math.ceil(totalFrames / slots)
        yield* Effect.forEach(
          Array.from({ length: slots }, (_, slot) => slot),
          (slot) => fuzzSlot(url, slot, perSlot, stats, big),
          { concurrency: "unbounded", discard: true }
        ).pipe(
          // a stuck connection is often a dead fiber: show what the server logged
          Effect.tapDefect(() =>
            Effect.sync(() => console.log(`fuzz (seed ${seed}): the server logged`, logs.unexpected))
          )
        )
        const fuzzed = Date.now()

        running = false
        yield* Fiber.join(asker).pipe(within("the bystander's last ask"))
        yield* Fiber.join(ticker).pipe(within("the ticker's end"))
        // every tick broadcast reaches the bystander, in order
        yield* Effect.promise(() =>
          new Promise<void>((resolve) => {
            if (ticks.length >= broadcasted) resolve()
            else allTicks = { count: broadcasted, resolve }
          })
        ).pipe(
          Effect.timeoutFail({
            duration: deadline,
            onTimeout: () => new Error(`fuzz (seed ${seed}): the bystander got ${ticks.length} of ${broadcasted} ticks`)
          }),
          Effect.orDie
        )
        assert.strictEqual(ticks.length, broadcasted, "the bystander got every tick")
        for (let i = 0; i < ticks.length; i++) {
          if (ticks[i] !== i) assert.fail(`fuzz (seed ${seed}): tick ${i} arrived as ${ticks[i]}`)
        }
        assert.deepStrictEqual(strays, [], "the bystander received nothing but ticks and its replies")
        assert.isAbove(asked, 0)

        // the server still serves: a fresh client connects, joins and is answered
        const fresh = yield* normalClient(url, "late", "fresh client")
        assert.strictEqual(
          yield* fresh.ask("$late", "$late;watch;;ping;0;0;late", "fresh client ask"),
          "$late;watch;;ping;0;0;pong:late"
        )
        yield* fresh.close()

        // every fuzzing connection is gone from the server, and with it its rooms and memory
        yield* Effect.forEach(
          (yield* server.connections).filter((conn) => conn.id !== bystander.id),
          (conn) => conn.awaitClose.pipe(within(`connection ${conn.id} closing on the server`)),
          { discard: true, concurrency: "unbounded" }
        )
        assert.strictEqual(yield* server.connectionCount, 1, "only the bystander is left on the server")
        assert.strictEqual(yield* server.memberCount("default"), 0, "no connection left in namespace default")
        assert.strictEqual(yield* server.memberCount("watch", "ticker"), 1, "the bystander alone in the ticker room")
        const heapAfter = heapUsed(gc)

        const codes = (map: Map<number, number>) =>
          Array.from(map).sort(([a], [b]) => a - b).map(([code, n]) => `${code}x${n}`).join(" ")
        console.log(
          `fuzz: seed=${seed} frames=${stats.frames} batches=${stats.batches} probes=${stats.probes} ` +
            `reconnects=${stats.reconnects} closes[${codes(stats.closes)}] probeCloses[${codes(stats.probeCloses)}] ` +
            `server[${Array.from(reached).map(([tag, n]) => `${tag}x${n}`).join(" ")} mostRooms=${mostRooms}] ` +
            `ticks=${broadcasted} bystanderAsks=${asked} (slowest ${slowestAsk} ms) handlerDefects=${
              Array.from(logs.expected.values()).reduce((a, b) => a + b, 0)
            } ` +
            `heap ${mb(heapBefore)}->${mb(heapAfter)} MB (peak ${mb(heapPeak)}, gc ${gc !== undefined}) ` +
            `fuzz ${((fuzzed - started) / 1000).toFixed(1)} s, total ${((Date.now() - started) / 1000).toFixed(1)} s`
        )
        assert.deepStrictEqual(logs.unexpected, [], "no error logged but the die handler's defects")
        for (const code of stats.closes.keys()) {
          assert.isTrue(allowedCloses.has(code), `fuzz (seed ${seed}): a fuzzing connection closed with ${code}`)
        }
        assert.isAtLeast(stats.frames, totalFrames)
        // without a full GC the numbers are noisier: a looser bound
        assert.isBelow(heapAfter - heapBefore, gc === undefined ? 4 * heapSlack : heapSlack, "the heap came back")
      }),
    timeoutMs
  )
})
