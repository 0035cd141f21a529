/**
 * The test kit itself: virtual clients, raw virtual sockets, what is recorded and
 * what the in-memory WebSocket does (pings, pauses, closes, limits).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Client from "../src/Client.js"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as Reply from "../src/Reply.js"
import * as Server from "../src/Server.js"
import * as TestServer from "../src/TestServer.js"

class Refused extends Data.TaggedError("Refused")<{ readonly message: string }> {}

const events = Events.namespaces({
  default: {
    echo: (_ns, msg) => Effect.succeed(Reply.text(`echo:${Message.bodyText(msg)}`)),
    shout: (ns, msg) => ns.emit("shouted", Message.bodyText(msg).toUpperCase()),
    bin: (_ns, msg) => Effect.succeed(Reply.binary(Message.bodyBytes(msg))),
    fail: () => Effect.fail(new Refused({ message: "no" })),
    question: (ns) => Effect.flatMap(ns.ask("answer", "?"), (reply) => ns.emit("answered", Message.bodyText(reply))),
    chat: (ns, msg) => ns.broadcastOthers(msg)
  },
  other: {}
})

describe("TestServer", () => {
  it.effect("a virtual client: id, request, emits, asks, binary, error messages, the server's asks", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect({
        id: "alice",
        url: "/chat?room=1",
        headers: { "X-Token": "t" },
        events: Events.client({ default: { answer: () => Effect.succeed(Reply.text("42")) } })
      })
      assert.deepStrictEqual([client.id, client.conn.id], ["alice", "alice"])
      assert.deepStrictEqual(client.conn.request, {
        url: "/chat?room=1",
        // the client asks for positions in recoverable rooms (History)
        headers: { "x-token": "t", "x-neffos-recovery": "1" },
        remoteAddress: undefined
      })
      const ns = yield* client.connect("default")
      assert.strictEqual(Message.bodyText(yield* ns.ask("echo", "hi")), "echo:hi")
      yield* ns.emit("shout", "hey")
      yield* client.expect({ namespace: "default", event: "shouted", body: "HEY" })
      const bytes = new Uint8Array([0, 1, 255])
      assert.deepStrictEqual(Message.bodyBytes(yield* ns.ask("bin", bytes)), bytes)
      yield* ns.emit("fail")
      yield* client.expect({ event: "fail", error: "no" })
      yield* ns.emit("question")
      // the server's ask is recorded too; the client's handler answered it
      yield* client.expect("answer")
      yield* client.expect({ event: "answered", body: "42" })
      yield* client.expectNone
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("expect and expectNone fail with UnexpectedMessage; awaitMessage skips", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const client = yield* TestServer.connect()
      yield* client.connect("default")
      for (const body of ["a", "b", "c"]) yield* server.broadcast({ namespace: "default", event: "n", body })
      const wrong = yield* Effect.flip(client.expect({ event: "n", body: "b" }))
      assert.strictEqual(wrong._tag, "UnexpectedMessage")
      assert.strictEqual(wrong.message, "expected event n, body \"b\", received default n \"a\"")
      assert.strictEqual(Message.bodyText(yield* client.awaitMessage({ body: "c" })), "c")
      yield* server.broadcast({ namespace: "default", event: "late", body: "d" })
      const extra = yield* Effect.flip(client.expectNone)
      assert.strictEqual(extra.message, "expected no message, received default late \"d\"")
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("rooms; takeAll and the received stream; next fails with ConnectionClosed after a close", () =>
    Effect.gen(function*() {
      const alice = yield* TestServer.connect({ id: "alice" })
      const bob = yield* TestServer.connect({ id: "bob" })
      const room = yield* alice.join("default", "lobby")
      yield* bob.join("default", "lobby")
      yield* room.emit("chat", "1")
      yield* room.emit("chat", "2")
      yield* bob.sync
      assert.deepStrictEqual((yield* bob.takeAll).map((m) => [m.room, Message.bodyText(m)]), [
        ["lobby", "1"],
        ["lobby", "2"]
      ])
      yield* room.emit("chat", "3")
      const three = yield* bob.received.pipe(Stream.take(1), Stream.runCollect)
      assert.deepStrictEqual(Chunk.toReadonlyArray(three).map(Message.bodyText), ["3"])
      yield* bob.close()
      assert.deepStrictEqual(yield* bob.closed, { code: 1000, reason: "" })
      const closed = yield* Effect.flip(bob.next)
      assert.strictEqual(closed._tag, "ConnectionClosed")
      assert.isTrue(yield* bob.conn.isClosed)
      assert.deepStrictEqual(yield* alice.client.currentState, { _tag: "Open", id: "alice" })
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("the virtual client answers a server-initiated connect to any namespace", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect()
      const ns = yield* client.client.waitServerConnect("other")
      assert.strictEqual(ns.namespace, "other")
      const refused = yield* Effect.flip(client.connect("nowhere"))
      assert.deepStrictEqual([refused._tag, refused.message], [
        "BadNamespace",
        `bad namespace "nowhere": refused by the peer`
      ])
    }).pipe(Effect.provide(TestServer.layer({ events, onConnect: (conn) => Effect.asVoid(conn.connect("other")) }))))

  it.effect("a raw socket: the handshake by hand, frames as sent, the server's side once accepted", () =>
    Effect.gen(function*() {
      const socket = yield* TestServer.open({ id: "raw" })
      const before = yield* Effect.flip(socket.conn)
      assert.strictEqual(before._tag, "NoSuchElementException")
      yield* socket.send("M")
      assert.strictEqual(yield* socket.next, "Araw")
      assert.strictEqual((yield* socket.conn).id, "raw")
      yield* socket.send("$1;default;;_OnNamespaceConnect;0;0;")
      yield* socket.send("garbage")
      yield* socket.send("$2;default;;echo;0;0;x")
      assert.deepStrictEqual([yield* socket.next, yield* socket.next], ["$1;;;;;;", "$2;default;;echo;0;0;echo:x"])
      yield* socket.send(new TextEncoder().encode("$3;default;;bin;0;0;\u0001"))
      const binary = yield* socket.next
      assert.instanceOf(binary, Uint8Array)
      assert.deepStrictEqual(yield* socket.takeAll, [])
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("frames above maxMessageSize close the connection with 1009", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect()
      const ns = yield* client.connect("default")
      yield* ns.emit("echo", "x".repeat(200))
      assert.deepStrictEqual(yield* client.closed, { code: 1009, reason: "" })
      assert.isTrue(yield* client.conn.isClosed)
    }).pipe(Effect.provide(TestServer.layer({ events, maxMessageSize: 100 }))))

  it.effect("terminate: both sides see 1006 at once; close: the server sees the client's code", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const lifecycle = yield* server.subscribe
      const dropped = yield* TestServer.connect({ id: "dropped" })
      yield* dropped.terminate
      assert.isTrue(yield* dropped.isClosed)
      assert.deepStrictEqual(yield* dropped.closed, { code: 1006, reason: "" })
      const leaving = yield* TestServer.connect({ id: "leaving" })
      yield* leaving.close({ code: 4000, reason: "bye" })
      const closes: Array<unknown> = []
      while (closes.length < 2) {
        const event = yield* lifecycle.take
        if (event._tag === "Disconnected") closes.push([event.conn.id, event.code, event.reason])
      }
      assert.deepStrictEqual(closes, [["dropped", 1006, ""], ["leaving", 4000, "bye"]])
    }).pipe(Effect.scoped, Effect.provide(TestServer.layer({ events }))))

  it.effect("a paused client holds what the server sends; it arrives in order on resume", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const client = yield* TestServer.connect()
      yield* client.connect("default")
      yield* client.pause
      for (const body of ["1", "2", "3"]) yield* server.broadcast({ namespace: "default", event: "n", body })
      assert.strictEqual((yield* client.stats).outboxSize, 3)
      yield* client.resume
      for (const body of ["1", "2", "3"]) yield* client.expect({ body })
      assert.strictEqual((yield* client.stats).outboxSize, 0)
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("a virtual client that stays paused across keep-alive is dropped like a dead peer", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect()
      yield* client.pause
      yield* TestClock.adjust("45 seconds")
      assert.isTrue(yield* client.conn.isClosed)
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("a wait for something that never comes fails in about two seconds with what it waited for", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect()
      yield* client.connect("default")
      const exit = yield* Effect.exit(client.next)
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""), "a message did not come within")
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("a dial refused at once (the server is shutting down) fails without waiting for a timeout", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      yield* server.shutdown
      const refused = yield* Effect.flip(TestServer.connect())
      assert.deepStrictEqual([refused._tag, refused.message], [
        "HandshakeError",
        "handshake failed (Closed): the socket closed (1001 server shutdown) before A<id>"
      ])
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("clientTransport: code that calls Client.dial itself reaches the test server", () =>
    Effect.gen(function*() {
      const testServer = yield* TestServer.TestServer
      const conn = yield* Client.dial("ws://anywhere/echo", { events: Events.client({ default: {} }) }).pipe(
        Effect.provideService(Client.ClientTransport, testServer.clientTransport)
      )
      const ns = yield* conn.connect("default")
      assert.strictEqual(Message.bodyText(yield* ns.ask("echo", "x")), "echo:x")
      assert.strictEqual((yield* testServer.server.connection(conn.id)).request.url, "/echo")
    }).pipe(Effect.scoped, Effect.provide(TestServer.layer({ events }))))

  it.effect("layerTransport: the kit on a Server layer built elsewhere", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect()
      const ns = yield* client.connect("default")
      assert.strictEqual(Message.bodyText(yield* ns.ask("echo", "x")), "echo:x")
    }).pipe(Effect.provide(TestServer.layerTransport.pipe(Layer.provideMerge(Server.layer({ events }))))))

  it.live("works with the live clock too", () =>
    Effect.gen(function*() {
      const alice = yield* TestServer.connect()
      const bob = yield* TestServer.connect()
      const ns = yield* alice.connect("default")
      yield* bob.connect("default")
      assert.strictEqual(Message.bodyText(yield* ns.ask("echo", "x")), "echo:x")
      yield* ns.emit("chat", "hi")
      yield* bob.expect({ event: "chat", body: "hi" })
      yield* alice.expectNone
    }).pipe(Effect.provide(TestServer.layer({ events }))))
})

layer(TestServer.layer({ events, pingInterval: "10 seconds", pingTimeout: "5 seconds" }))(
  "TestServer in a shared layer",
  (it) => {
    it.effect("the layer's TestClock is the test's", () =>
      Effect.gen(function*() {
        const client = yield* TestServer.connect()
        yield* client.setSilent(true)
        yield* TestClock.adjust("15 seconds")
        assert.isTrue(yield* client.conn.isClosed)
      }))
  }
)
