/**
 * Testing examples/chat.ts and examples/chat-client.ts with the test kit: no
 * sockets, no real time, and every message typed by the chat's contract. Copy
 * this file to start testing your own handlers (`npx vitest run examples`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Queue, Stream, TestClock } from "effect"
import { Client, Errors } from "effect-neffos"
import * as TestServer from "effect-neffos/TestServer"
import { Chat, InvalidDate, RoomName } from "./chat-contract.js"
import { session } from "./chat-session.js"
import { CalendarLive, Notices, options } from "./chat.js"

/** The chat's server with its own services, and virtual clients to talk to it. */
const ChatTest = TestServer.layer(options).pipe(Layer.provide(CalendarLive))

const lobby = RoomName.make("lobby")

/** A typed virtual client connected to namespace `default`, past its welcome notice. */
const user = (id: string) =>
  Effect.gen(function*() {
    const client = yield* TestServer.connectContract(Chat, { id })
    const ns = yield* client.connect("default")
    yield* client.expectPush(Chat.default.notice, { payload: `welcome, ${id}` })
    return { client, ns }
  })

// everything here runs in virtual time and memory: a broken behaviour fails in seconds
describe("chat example", { timeout: 5_000 }, () => {
  it.effect("chat reaches the others in the room, not the sender nor those outside", () =>
    Effect.gen(function*() {
      const alice = yield* user("alice")
      const bob = yield* user("bob")
      const carol = yield* user("carol")
      const room = yield* alice.ns.joinRoom(lobby)
      yield* bob.ns.joinRoom(lobby)
      yield* alice.client.expectPush(Chat.default.notice, { room: lobby, payload: "bob joined" })
      yield* room.emit(Chat.default.chat, { text: "hello lobby" })
      const received = yield* bob.client.expectPush(Chat.default.message, { room: lobby })
      assert.deepStrictEqual(received, { from: "alice", text: "hello lobby" })
      yield* alice.client.expectNone
      yield* carol.client.expectNone
    }).pipe(Effect.provide(ChatTest)))

  it.effect("workday answers with the Calendar service; a bad date fails with the contract's InvalidDate", () =>
    Effect.gen(function*() {
      const { ns } = yield* user("alice")
      assert.isTrue(yield* ns.ask(Chat.default.workday, "2026-11-25"))
      assert.isFalse(yield* ns.ask(Chat.default.workday, "2026-11-28"))
      const error = yield* Effect.flip(ns.ask(Chat.default.workday, "someday"))
      assert.instanceOf(error, InvalidDate)
      assert.strictEqual(error.message, "not a date: someday")
    }).pipe(Effect.provide(ChatTest)))

  it.effect("a room name the contract does not allow is refused", () =>
    Effect.gen(function*() {
      const { ns } = yield* user("alice")
      const error = yield* Effect.flip(ns.nsConn.joinRoom("Not a room!"))
      assert.instanceOf(error, Errors.RemoteError)
      assert.match(error.message, /^bad request: room: /)
    }).pipe(Effect.provide(ChatTest)))

  it.effect("a notice every 30 seconds, in virtual time", () =>
    Effect.gen(function*() {
      const { client } = yield* user("alice")
      yield* TestClock.adjust("29999 millis")
      yield* client.expectNone
      yield* TestClock.adjust("1 millis")
      yield* client.expectPush(Chat.default.notice, { payload: "server notice: still here" })
      yield* TestClock.adjust("30 seconds")
      yield* client.expectPush(Chat.default.notice, { payload: "server notice: still here" })
    }).pipe(Effect.provide(Notices.pipe(Layer.provideMerge(ChatTest)))))

  it.scoped("the terminal client: commands, answers and pushes", () =>
    Effect.gen(function*() {
      const testServer = yield* TestServer.TestServer
      const bob = yield* user("bob")
      yield* bob.ns.joinRoom(lobby)
      const printed = yield* Queue.unbounded<string>()
      const lines = yield* Queue.unbounded<string>()
      const alice = yield* session({
        name: "alice",
        url: "ws://chat.test/echo",
        lines: Stream.fromQueue(lines),
        print: (line) => Queue.offer(printed, line)
      }).pipe(Effect.scoped, Effect.provideService(Client.ClientTransport, testServer.clientTransport), Effect.fork)
      const next = Queue.take(printed)
      assert.strictEqual(yield* next, "* welcome, alice")
      yield* Queue.offerAll(lines, ["/join lobby", "/workday 2026-11-25", "/workday someday", "/join Nope!"])
      assert.deepStrictEqual(
        Chunk.toReadonlyArray(yield* Effect.replicateEffect(next, 4).pipe(Effect.map(Chunk.fromIterable))),
        [
          "you are in lobby",
          "2026-11-25 is a workday",
          "not a date: someday",
          "not a room name: Nope!"
        ]
      )
      yield* bob.client.expectPush(Chat.default.notice, { room: lobby, payload: "alice joined" })
      yield* Queue.offer(lines, "hello from the terminal")
      const said = yield* bob.client.expectPush(Chat.default.message, { room: lobby })
      assert.deepStrictEqual(said, { from: "alice", text: "hello from the terminal" })
      yield* bob.ns.emit(Chat.default.chat, { text: "hi alice" }, { room: lobby })
      assert.strictEqual(yield* next, "[lobby] bob: hi alice")
      yield* Queue.offer(lines, "/quit")
      yield* Fiber.join(alice) // the session's scope closes its connection: alice leaves the room
      yield* bob.client.expectPush(Chat.default.notice, { room: lobby, payload: "alice left" })
    }).pipe(Effect.provide(ChatTest)))
})
