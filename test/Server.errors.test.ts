/**
 * What a failed handler sends: safe by default (no stack, parse tree or cause on the
 * wire), mapped by `errorText` when the application says so, and logged with where
 * it happened.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schema from "effect/Schema"
import * as Events from "../src/Events.js"
import { handshaken, rawClient, startServer } from "./utils.js"

class Refused extends Data.TaggedError("Refused")<{ readonly message: string; readonly cause?: unknown }> {}
class Quiet extends Data.TaggedError("Quiet")<{ readonly cause?: unknown }> {}

const decodeNumber = (input: unknown) =>
  Effect.asVoid(Schema.decodeUnknown(Schema.Struct({ amount: Schema.Number }))(input))

const events = Events.namespaces({
  default: {
    parse: () => decodeNumber({ amount: "secret-value" }),
    die: () => Effect.die(new Error("secret-defect")),
    tagged: () => Effect.fail(new Refused({ message: "not allowed", cause: new Error("secret-cause") })),
    quiet: () => Effect.fail(new Quiet({ cause: new Error("secret-cause") })),
    plain: () => Effect.fail(new Error("secret-plain")),
    text: () => Effect.fail("plain words"),
    _OnRoomJoin: () => decodeNumber({ amount: "secret-room" })
  }
})

const connected = (url: string) =>
  Effect.gen(function*() {
    const { client } = yield* handshaken(url)
    yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
    assert.strictEqual(yield* client.nextText, "$c;;;;;;")
    return client
  })

/** The error text of the reply to an ask of `event`. */
const errorOf =
  (client: { send: (f: string) => Effect.Effect<void>; nextText: Effect.Effect<string> }) => (event: string) =>
    Effect.gen(function*() {
      yield* client.send(`$${event};default;;${event};0;0;x`)
      const reply = yield* client.nextText
      const prefix = `$${event};default;;${event};1;0;`
      assert.isTrue(reply.startsWith(prefix), reply)
      return reply.slice(prefix.length)
    })

const leaks = /secret|Expected|└|at .*\(|Error:/

describe("Failure text", () => {
  it.scopedLive("is safe by default: no stack, parse tree or cause reaches the wire", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events })
      const client = yield* connected(url)
      const error = errorOf(client)
      const texts = {
        parse: yield* error("parse"),
        die: yield* error("die"),
        tagged: yield* error("tagged"),
        quiet: yield* error("quiet"),
        plain: yield* error("plain"),
        text: yield* error("text")
      }
      assert.deepStrictEqual(texts, {
        parse: "bad request",
        die: "internal error",
        tagged: "not allowed",
        quiet: "Quiet",
        plain: "error",
        text: "plain words"
      })
      yield* client.send("$j;default;r;_OnRoomJoin;0;0;")
      const veto = yield* client.nextText
      assert.strictEqual(veto, "$j;default;r;_OnRoomJoin;1;0;bad request")
      for (const text of [...Object.values(texts), veto]) assert.notMatch(text, leaks)
    }))

  it.scopedLive("errorText maps any failure, with where it happened", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({
        events,
        errorText: (failure, context) =>
          `${context.event}@${context.namespace}:${failure._tag === "Die" ? "oops" : Events.defaultErrorText(failure)}`
      })
      const client = yield* connected(url)
      const error = errorOf(client)
      assert.strictEqual(yield* error("die"), "die@default:oops")
      assert.strictEqual(yield* error("tagged"), "tagged@default:not allowed")
    }))

  it.scopedLive("a refused handshake's H<reason> is safe too", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events, onConnect: () => decodeNumber({ amount: "secret-handshake" }) })
      const client = yield* rawClient(url)
      yield* client.send("M")
      assert.strictEqual(yield* client.nextText, "Hbad request")
    }))

  it.scopedLive("a ParseError is logged at debug level with its tree; a defect at error level", () =>
    Effect.gen(function*() {
      const logs: Array<{ level: string; text: string; annotations: Record<string, unknown> }> = []
      const capture = Logger.make((options) => {
        logs.push({
          level: options.logLevel.label,
          text: `${String(options.message)} ${String(options.cause)}`,
          annotations: Object.fromEntries(options.annotations)
        })
      })
      const { url } = yield* startServer({ events }).pipe(
        Effect.provide(
          Layer.merge(Logger.replace(Logger.defaultLogger, capture), Logger.minimumLogLevel(LogLevel.Debug))
        )
      )
      const client = yield* connected(url)
      const error = errorOf(client)
      yield* error("parse")
      yield* error("die")
      const parse = logs.find((log) => log.annotations.event === "parse")
      assert.isDefined(parse)
      assert.strictEqual(parse!.level, "DEBUG")
      assert.include(parse!.text, "secret-value") // the tree, in the log only
      assert.strictEqual(parse!.annotations.namespace, "default")
      const die = logs.find((log) => log.annotations.event === "die")
      assert.strictEqual(die?.level, "ERROR")
      assert.include(die!.text, "secret-defect")
    }))
})
