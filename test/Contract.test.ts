/**
 * Typed contracts end to end: the server's handlers from a contract, the typed
 * client, the test kit's typed virtual clients, the wire (JSON bodies, binary
 * bodies, error replies) and neffos.js 0.1.34 talking to a contract server.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Contract from "../src/Contract.js"
import * as Errors from "../src/Errors.js"
import * as Message from "../src/Message.js"
import * as Server from "../src/Server.js"
import * as TestServer from "../src/TestServer.js"

// -----------------------------------------------------------------------------
// the contract under test
// -----------------------------------------------------------------------------

class InvalidDate extends Schema.TaggedError<InvalidDate>()("InvalidDate", { input: Schema.String }) {
  override get message() {
    return `not a date: ${this.input}`
  }
}

class Closed extends Schema.TaggedError<Closed>()("Closed", { day: Schema.String }) {}

const Point = Schema.Struct({ x: Schema.Number, y: Schema.Number })

const Room = Schema.String.pipe(Schema.pattern(/^[a-z]{1,16}$/))

/** A schema that counts how often it encodes (what a broadcast costs). */
let encodes = 0
const Counted = Schema.transform(Schema.String, Schema.String, {
  strict: true,
  decode: (s) => s,
  encode: (s) => {
    encodes++
    return s
  }
})

const days = {
  workday: Contract.ask({ payload: Schema.String, success: Schema.Boolean, error: Schema.Union(InvalidDate, Closed) })
}

const Api = Contract.make({
  default: Contract.namespace({
    move: Contract.emit(Point),
    moved: Contract.push({ by: Schema.String, to: Point }),
    notice: Contract.push(Counted),
    ...days,
    confirm: Contract.ask({ payload: Schema.String, success: Schema.Boolean, direction: "toClient" }),
    blob: Contract.ask({ payload: Schema.Uint8ArrayFromSelf, success: Schema.Uint8ArrayFromSelf }),
    when: Contract.ask({ payload: Schema.Date, success: Schema.Date }),
    boom: Contract.ask({}),
    where: Contract.ask({ success: Schema.String }),
    shout: Contract.emit()
  }, { room: Room }),
  other: {
    ping: Contract.ask({ success: Schema.Literal("pong") })
  }
})

/** The same events, as an older client knows them: `workday` declares only `InvalidDate`. */
const OlderApi = Contract.make({
  default: Contract.namespace({
    workday: Contract.ask({ payload: Schema.String, success: Schema.Boolean, error: InvalidDate })
  }, { room: Room })
})

/** Every handler run, by event, to check which ones ran. */
const runs = Ref.unsafeMake<ReadonlyArray<string>>([])
const ran = (name: string) => Ref.update(runs, (names) => [...names, name])

const events = Contract.handlers(Api, {
  default: {
    move: (ns, to, { room }) =>
      Effect.zipRight(ran("move"), ns.broadcastOthers(Api.default.moved, { by: ns.conn.id, to }, { room })),
    workday: (_ns, input) =>
      Effect.suspend((): Effect.Effect<boolean, InvalidDate | Closed> => {
        if (input === "sunday") return Effect.fail(new Closed({ day: input }))
        const date = new Date(`${input}T12:00:00Z`)
        return Number.isNaN(date.getTime())
          ? Effect.fail(new InvalidDate({ input }))
          : Effect.succeed(date.getUTCDay() !== 0 && date.getUTCDay() !== 6)
      }).pipe(Effect.tap(() => ran("workday")), Effect.tapError(() => ran("workday"))),
    blob: (_ns, bytes) => Effect.succeed(bytes.map((b) => 255 - b)),
    when: (_ns, date) => Effect.succeed(new Date(date.getTime() + 86_400_000)),
    boom: () => Effect.die(new Error("secret detail")),
    where: (_ns, _payload, { room }) => Effect.succeed(room ?? "(none)"),
    shout: (ns) =>
      Effect.zipRight(
        ran("shout"),
        Effect.orDie(Effect.flatMap(ns.ask(Api.default.confirm, "sure?"), (ok) => ns.emit(Api.default.notice, `${ok}`)))
      ),
    _OnNamespaceConnected: (ns) => ns.emit(Api.default.notice, "welcome")
  },
  other: { ping: () => Effect.succeed("pong" as const) }
})

const TestApi = TestServer.layer({ events })

/** A virtual client connected to `default`, past its welcome. */
const user = (id: string) =>
  Effect.gen(function*() {
    const client = yield* TestServer.connectContract(Api, { id })
    const ns = yield* client.connect("default")
    yield* client.expectPush(Api.default.notice, { payload: "welcome" })
    return { client, ns }
  })

const resetRuns = Ref.set(runs, [])

// -----------------------------------------------------------------------------
// through the test kit
// -----------------------------------------------------------------------------

// test-kit tests take milliseconds: a broken behaviour fails in seconds, not at the 30 s default
describe("Contract through the test kit", { timeout: 3_000 }, () => {
  it.effect("typed emit, broadcast to the others in the room, decoded room", () =>
    Effect.gen(function*() {
      const alice = yield* user("alice")
      const bob = yield* user("bob")
      const lobby = yield* alice.ns.joinRoom("lobby")
      yield* bob.ns.joinRoom("lobby")
      yield* lobby.emit(Api.default.move, { x: 1, y: 2 })
      const moved = yield* bob.client.expectPush(Api.default.moved, { room: "lobby" })
      assert.deepStrictEqual(moved, { by: "alice", to: { x: 1, y: 2 } })
      yield* alice.client.expectNone
      assert.strictEqual(yield* alice.ns.ask(Api.default.where, undefined, { room: "lobby" }), "lobby")
      assert.strictEqual(yield* alice.ns.ask(Api.default.where, undefined), "(none)")
    }).pipe(Effect.provide(TestApi)))

  it.effect("typed ask: the success decoded, transformations both ways", () =>
    Effect.gen(function*() {
      const { ns } = yield* user("alice")
      assert.isTrue(yield* ns.ask(Api.default.workday, "2026-11-25"))
      assert.isFalse(yield* ns.ask(Api.default.workday, "2026-11-28"))
      const next = yield* ns.ask(Api.default.when, new Date("2026-01-01T00:00:00Z"))
      assert.instanceOf(next, Date)
      assert.strictEqual(next.toISOString(), "2026-01-02T00:00:00.000Z")
    }).pipe(Effect.provide(TestApi)))

  it.effect("a declared error comes back as the same class; its wire text is readable, then the marker and JSON", () =>
    Effect.gen(function*() {
      const { ns } = yield* user("alice")
      const error = yield* Effect.flip(ns.ask(Api.default.workday, "someday"))
      assert.instanceOf(error, InvalidDate)
      assert.strictEqual((error as InvalidDate).input, "someday")
      const closed = yield* Effect.flip(ns.ask(Api.default.workday, "sunday"))
      assert.instanceOf(closed, Closed)
      // what a neffos.js or Go peer reads
      const raw = yield* Effect.flip(ns.nsConn.ask("workday", JSON.stringify("someday")))
      assert.strictEqual(raw._tag, "RemoteError")
      assert.strictEqual(
        raw.message,
        "not a date: someday\neffect-neffos-error:{\"input\":\"someday\",\"_tag\":\"InvalidDate\"}"
      )
    }).pipe(Effect.provide(TestApi)))

  it.effect("an error tag the client does not declare is a RemoteError with the readable text", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connectContract(OlderApi, { id: "old" })
      const ns = yield* client.connect("default")
      const error = yield* Effect.flip(ns.ask(OlderApi.default.workday, "sunday"))
      assert.instanceOf(error, Errors.RemoteError)
      // the text of a Schema.TaggedError without its own message: Effect's default, its fields
      assert.strictEqual((error as Errors.RemoteError).text, "{ \"day\": \"sunday\" }")
      // a declared one still decodes
      assert.instanceOf(yield* Effect.flip(ns.ask(OlderApi.default.workday, "x")), InvalidDate)
    }).pipe(Effect.provide(TestApi)))

  it.effect("a payload that does not decode: bad request with a bounded summary, the handler does not run", () =>
    Effect.gen(function*() {
      yield* resetRuns
      const { client, ns } = yield* user("alice")
      const ask = (body: string) => Effect.flip(ns.nsConn.ask("workday", body)).pipe(Effect.map((e) => e.message))
      assert.strictEqual(yield* ask("5"), "bad request: expected string")
      assert.strictEqual(yield* ask("not json"), "bad request: the body is not JSON")
      assert.strictEqual(yield* ask(""), "bad request: expected string")
      yield* ns.nsConn.emit("move", JSON.stringify({ x: 1, y: "secret-value" }))
      const refused = yield* client.expect({ event: "move" })
      assert.strictEqual(refused.error, "bad request: y: expected number")
      yield* ns.nsConn.emit("move", JSON.stringify({ x: 1 }))
      assert.strictEqual((yield* client.expect({ event: "move" })).error, "bad request: y: is missing")
      assert.deepStrictEqual(yield* Ref.get(runs), [])
      const failures = yield* Metric.value(Contract.metrics.decodeFailures.pipe(Metric.tagged("part", "request")))
      assert.isAtLeast(failures.count, 5)
    }).pipe(Effect.provide(TestApi)))

  it.effect("a summary never holds the received value and stays short", () =>
    Effect.gen(function*() {
      const { ns } = yield* user("alice")
      const long = JSON.stringify({ x: "a".repeat(5000), y: "b".repeat(5000) })
      const error = yield* Effect.flip(ns.nsConn.ask("when", long))
      assert.isAtMost(error.message.length, 220)
      assert.notInclude(error.message, "aaa")
      const wrong = yield* Effect.flip(ns.nsConn.ask("when", JSON.stringify("not-a-date-secret")))
      assert.notInclude(wrong.message, "secret")
      assert.match(wrong.message, /^bad request: /)
    }).pipe(Effect.provide(TestApi)))

  it.effect("a handler that dies is answered internal error, without its detail", () =>
    Effect.gen(function*() {
      const { ns } = yield* user("alice")
      const error = yield* Effect.flip(ns.ask(Api.default.boom, undefined))
      assert.instanceOf(error, Errors.RemoteError)
      assert.strictEqual(error.message, "internal error")
    }).pipe(Effect.provide(TestApi), Logger.withMinimumLogLevel("None" as any)))

  it.effect("typed rooms: a room name that does not decode is refused, bad request", () =>
    Effect.gen(function*() {
      const { ns } = yield* user("alice")
      const error = yield* Effect.flip(ns.nsConn.joinRoom("Not A Room"))
      assert.strictEqual(error._tag, "RemoteError")
      assert.match(error.message, /^bad request: room: expected a string matching the pattern/)
      const room = yield* ns.joinRoom("kitchen")
      assert.strictEqual(room.name, "kitchen")
    }).pipe(Effect.provide(TestApi)))

  it.effect("binary payloads go as binary bodies, raw", () =>
    Effect.gen(function*() {
      const { ns } = yield* user("alice")
      const answer = yield* ns.ask(Api.default.blob, new Uint8Array([0, 1, 254]))
      assert.deepStrictEqual(answer, new Uint8Array([255, 254, 1]))
      const raw = yield* ns.nsConn.ask("blob", new Uint8Array([7]))
      assert.isTrue(raw.binary)
      assert.deepStrictEqual(Message.bodyBytes(raw), new Uint8Array([248]))
    }).pipe(Effect.provide(TestApi)))

  it.effect("a typed broadcast is encoded once for all receivers", () =>
    Effect.gen(function*() {
      const clients = yield* Effect.all([user("a"), user("b"), user("c")])
      const server = yield* Contract.server(Api)
      encodes = 0
      yield* server.broadcast(Api.default.notice, "to all")
      for (const { client } of clients) yield* client.expectPush(Api.default.notice, { payload: "to all" })
      assert.strictEqual(encodes, 1)
    }).pipe(Effect.provide(TestApi)))

  it.effect("the server asks the client; the client's typed handler answers; missing handlers are recorded", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connectContract(Api, {
        id: "alice",
        handlers: { default: { confirm: (_ns, question) => Effect.succeed(question === "sure?") } }
      })
      const ns = yield* client.connect("default")
      yield* client.expectPush(Api.default.notice)
      yield* ns.emit(Api.default.shout, undefined)
      yield* client.expect("confirm")
      yield* client.expectPush(Api.default.notice, { payload: "true" })
      const server = yield* Contract.server(Api)
      assert.isTrue(yield* server.ask("alice", Api.default.confirm, "sure?"))
      assert.isFalse(yield* server.ask("alice", Api.default.confirm, "really?"))
    }).pipe(Effect.provide(TestApi)))

  const logs: Array<string> = []
  const recordLogs = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logs.push(String(message))))

  it.scoped("pushes that do not decode are skipped and logged; the stream and the connection go on", () =>
    Effect.gen(function*() {
      const { client } = yield* user("alice")
      const moves = yield* client.typed.subscribe(Api.default.moved)
      const server = yield* Server.Server
      yield* server.broadcast({ namespace: "default", event: "moved", body: "{\"by\":\"x\",\"to\":{\"x\":\"no\"}}" })
      yield* server.broadcast({ namespace: "default", event: "moved", body: "not json" })
      yield* Contract.server(Api).pipe(
        Effect.flatMap((typed) => typed.broadcast(Api.default.moved, { by: "server", to: { x: 3, y: 4 } }))
      )
      assert.deepStrictEqual(yield* Queue.take(moves), { by: "server", to: { x: 3, y: 4 } })
      assert.strictEqual(yield* Queue.size(moves), 0)
      assert.deepStrictEqual(logs.filter((line) => line.includes("did not decode")).length, 2)
      assert.isFalse(yield* client.isClosed)
    }).pipe(Effect.provide(TestApi), Effect.provide(recordLogs)))
})
