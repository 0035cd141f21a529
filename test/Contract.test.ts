/**
 * Typed contracts end to end: the server's handlers from a contract, the typed
 * client, the test kit's typed virtual clients, the wire (JSON bodies, binary
 * bodies, error replies) and neffos.js 0.1.34 talking to a contract server.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as neffos from "neffos.js"
import { ChatServer } from "../examples/chat.js"
import * as Contract from "../src/Contract.js"
import * as Errors from "../src/Errors.js"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as NodeClient from "../src/NodeClient.js"
import * as NodeServer from "../src/NodeServer.js"
import * as Reply from "../src/Reply.js"
import * as Server from "../src/Server.js"
import * as TestServer from "../src/TestServer.js"
import { handshaken, neffosClient, startServer } from "./utils.js"

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
    verify: Contract.ask({ payload: Schema.String, error: InvalidDate, direction: "toClient" }),
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

  it.effect("the server's typed asks: a client's declared error comes back as itself; an answer that does not decode", () =>
    Effect.gen(function*() {
      yield* TestServer.connectContract(Api, {
        id: "typed",
        handlers: { default: { verify: (_ns, input) => Effect.fail(new InvalidDate({ input })) } }
      }).pipe(Effect.flatMap((client) => client.connect("default")))
      yield* TestServer.connect({
        id: "untyped",
        events: Events.client({ default: { confirm: () => Effect.succeed(Reply.text("maybe")) } })
      }).pipe(Effect.flatMap((client) => client.connect("default")))
      const server = yield* Contract.server(Api)
      const declared = yield* Effect.flip(server.ask("typed", Api.default.verify, "nope"))
      assert.instanceOf(declared, InvalidDate)
      assert.strictEqual((declared as InvalidDate).input, "nope")
      const malformed = yield* Effect.flip(server.ask("untyped", Api.default.confirm, "sure?"))
      assert.instanceOf(malformed, Contract.ReplyDecodeError)
      assert.strictEqual((malformed as Contract.ReplyDecodeError).summary, "the body is not JSON")
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

// -----------------------------------------------------------------------------
// over real sockets
// -----------------------------------------------------------------------------

/** Every wait on a real socket has its own short deadline. */
const within = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string) =>
  Effect.timeoutFail(effect, { duration: Duration.seconds(2), onTimeout: () => new Error(`timed out: ${what}`) })

const promise = <A>(f: () => Promise<A>, what: string) => within(Effect.promise(f), what)
const rejection = (f: () => Promise<unknown>, what: string) =>
  within(
    Effect.flip(Effect.tryPromise({ try: f, catch: (e) => (e instanceof Error ? e.message : String(e)) })),
    what
  )

/** Waits until a fiber is blocked (a stream's fiber: subscribed and waiting for its first element). */
const suspended = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<void> =>
  Effect.flatMap(
    Fiber.status(fiber),
    (status) => status._tag === "Suspended" ? Effect.void : Effect.zipRight(Effect.yieldNow(), suspended(fiber))
  )

describe("Contract over real sockets", () => {
  it.scopedLive("the typed client: pushes as a stream, asks, declared errors, rooms, the server's asks, binary", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events, idGenerator: (request) => request.headers["x-id"] ?? "anonymous" })
      const dial = (id: string) =>
        Contract.dial(Api, url, {
          headers: { "X-Id": id },
          handlers: {
            default: {
              confirm: (_ns, question) => Effect.succeed(question === "sure?"),
              verify: (_ns, input) => input === "ok" ? Effect.void : Effect.fail(new InvalidDate({ input }))
            }
          }
        }).pipe(Effect.provide(NodeClient.layer))
      const alice = yield* within(dial("alice"), "alice dials")
      const bob = yield* within(dial("bob"), "bob dials")
      // subscribed before connecting: the welcome cannot be missed
      const notices = yield* alice.subscribe(Api.default.notice)
      const aliceNs = yield* within(alice.connect("default"), "alice connects")
      assert.strictEqual(yield* within(Queue.take(notices), "welcome"), "welcome")
      const bobNs = yield* within(bob.connect("default"), "bob connects")

      assert.isTrue(yield* within(aliceNs.ask(Api.default.workday, "2026-11-25"), "ask"))
      const error = yield* within(Effect.flip(aliceNs.ask(Api.default.workday, "someday")), "ask failing")
      assert.instanceOf(error, InvalidDate)

      const moves = yield* Effect.fork(
        bob.pushes(Api.default.moved, { room: "lobby" }).pipe(Stream.take(2), Stream.runCollect)
      )
      yield* within(suspended(moves), "the stream subscribed")
      yield* within(bobNs.joinRoom("lobby"), "bob joins")
      const lobby = yield* within(aliceNs.joinRoom("lobby"), "alice joins")
      yield* lobby.emit(Api.default.move, { x: 1, y: 2 })
      yield* aliceNs.emit(Api.default.move, { x: 9, y: 9 }) // outside the room: not in bob's stream
      yield* lobby.emit(Api.default.move, { x: 3, y: 4 })
      const received = yield* within(Fiber.join(moves), "bob's moves")
      assert.deepStrictEqual(Chunk.toReadonlyArray(received), [
        { by: "alice", to: { x: 1, y: 2 } },
        { by: "alice", to: { x: 3, y: 4 } }
      ])

      // the server asks alice (typed handler) and pushes her answer
      yield* aliceNs.emit(Api.default.shout, undefined)
      assert.strictEqual(yield* within(Queue.take(notices), "the answer"), "true")

      const bytes = yield* within(aliceNs.ask(Api.default.blob, new Uint8Array([1, 2, 59, 3])), "binary ask")
      assert.deepStrictEqual(bytes, new Uint8Array([254, 253, 196, 252]))
    }))

  it.scopedLive("the wire: JSON bodies, binary frames, error replies frame by frame", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events, idGenerator: () => "raw" })
      const { client } = yield* handshaken(url)
      yield* client.send("$1;default;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.nextText, "$1;;;;;;")
      assert.strictEqual(yield* client.nextText, ";default;;notice;0;0;\"welcome\"")
      yield* client.send("$2;default;;workday;0;0;\"2026-11-25\"")
      assert.strictEqual(yield* client.nextText, "$2;default;;workday;0;0;true")
      yield* client.send("$3;default;;workday;0;0;\"x\"")
      assert.strictEqual(
        yield* client.nextText,
        "$3;default;;workday;1;0;not a date: x\neffect-neffos-error:{\"input\":\"x\",\"_tag\":\"InvalidDate\"}"
      )
      yield* client.send("$4;default;;workday;0;0;{\"date\":1}")
      assert.strictEqual(yield* client.nextText, "$4;default;;workday;1;0;bad request: expected string")
      yield* client.send(new Uint8Array([...new TextEncoder().encode("$5;default;;blob;0;0;"), 0, 59, 255]))
      const reply = yield* client.next
      assert.instanceOf(reply, Uint8Array)
      assert.deepStrictEqual(
        reply,
        new Uint8Array([...new TextEncoder().encode("$5;default;;blob;0;0;"), 255, 196, 0])
      )
    }))

  it.scopedLive("neffos.js 0.1.34 chats with a contract server by sending and reading JSON", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({
        events,
        idGenerator: (request) => request.headers["x-id"] ?? "anonymous"
      })
      const alice = yield* neffosClient(url, ["default"], {
        dialOptions: { headers: { "X-Id": "alice" } },
        handlers: {
          default: { confirm: (_ns: any, msg: any) => neffos.reply(JSON.stringify(msg.Body === "\"sure?\"")) }
        }
      })
      const bob = yield* neffosClient(url, ["default"], { dialOptions: { headers: { "X-Id": "bob" } } })
      const aliceNs: any = yield* promise(() => alice.conn.connect("default"), "alice connects")
      assert.deepStrictEqual(yield* alice.next, {
        namespace: "default",
        room: "",
        event: "notice",
        body: "\"welcome\"",
        err: undefined
      })
      const bobNs: any = yield* promise(() => bob.conn.connect("default"), "bob connects")
      yield* bob.next // welcome
      const aliceLobby: any = yield* promise(() => aliceNs.joinRoom("lobby"), "alice joins")
      yield* promise(() => bobNs.joinRoom("lobby"), "bob joins")
      aliceLobby.emit("move", JSON.stringify({ x: 1, y: 2 }))
      const moved = yield* bob.next
      assert.deepStrictEqual([moved.room, moved.event], ["lobby", "moved"])
      assert.deepStrictEqual(JSON.parse(moved.body), { by: "alice", to: { x: 1, y: 2 } })

      const reply: any = yield* promise(() => aliceNs.ask("workday", JSON.stringify("2026-11-25")), "ask")
      assert.strictEqual(JSON.parse(reply.Body), true)
      const declared = yield* rejection(() => aliceNs.ask("workday", JSON.stringify("someday")), "declared error")
      const [text, marked] = declared.split("\n")
      assert.strictEqual(text, "not a date: someday")
      assert.deepStrictEqual(JSON.parse(marked.slice("effect-neffos-error:".length)), {
        _tag: "InvalidDate",
        input: "someday"
      })
      assert.strictEqual(
        yield* rejection(() => aliceNs.ask("workday", "someday"), "not JSON"),
        "bad request: the body is not JSON"
      )
      assert.strictEqual(
        yield* rejection(() => bobNs.joinRoom("Bad Room"), "bad room name"),
        "bad request: room: expected a string matching the pattern ^[a-z]{1,16}$"
      )
      // the server asks neffos.js, typed
      const typed = Contract.fromServer(server, Api)
      assert.isTrue(yield* within(typed.ask("alice", Api.default.confirm, "sure?"), "server asks alice"))
      // and its typed broadcast reaches neffos.js as JSON
      yield* typed.broadcast(Api.default.moved, { by: "server", to: { x: 0, y: 0 } }, { room: "lobby" })
      assert.deepStrictEqual(JSON.parse((yield* bob.next).body), { by: "server", to: { x: 0, y: 0 } })
    }))

  it.scopedLive("neffos.js 0.1.34 still chats with the example server (npm start), in JSON", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(ChatServer(0))
      const { url } = yield* Effect.provide(NodeServer.NodeServer, context)
      const alice = yield* neffosClient(url, ["default"], { dialOptions: { headers: { "X-Username": "alice" } } })
      const bob = yield* neffosClient(url, ["default"], { dialOptions: { headers: { "X-Username": "bob" } } })
      const aliceNs: any = yield* promise(() => alice.conn.connect("default"), "alice connects")
      assert.strictEqual(JSON.parse((yield* alice.next).body), "welcome, alice")
      const bobNs: any = yield* promise(() => bob.conn.connect("default"), "bob connects")
      yield* bob.next // welcome
      const lobby: any = yield* promise(() => aliceNs.joinRoom("lobby"), "alice joins")
      yield* promise(() => bobNs.joinRoom("lobby"), "bob joins")
      const joined = yield* alice.next
      assert.deepStrictEqual([joined.room, joined.event, JSON.parse(joined.body)], ["lobby", "notice", "bob joined"])
      lobby.emit("chat", JSON.stringify({ text: "hello from neffos.js" }))
      const said = yield* bob.next
      assert.deepStrictEqual([said.room, said.event], ["lobby", "message"])
      assert.deepStrictEqual(JSON.parse(said.body), { from: "alice", text: "hello from neffos.js" })
      const reply: any = yield* promise(() => bobNs.ask("workday", JSON.stringify("2026-11-25")), "workday")
      assert.strictEqual(reply.Body, "true")
      const error = yield* rejection(() => bobNs.ask("workday", JSON.stringify("someday")), "not a date")
      assert.strictEqual(error.split("\n")[0], "not a date: someday")
    }))
})
