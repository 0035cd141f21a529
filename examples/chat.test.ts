/**
 * Testing the handlers of examples/chat.ts with the test kit: no sockets, no real
 * time. Copy this file to start testing your own handlers (`npx vitest run examples`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import { Message } from "effect-neffos"
import * as TestServer from "effect-neffos/TestServer"
import { CalendarLive, events, Notices } from "./chat.js"

/** The chat's server with its own services, and virtual clients to talk to it. */
const ChatTest = TestServer.layer({ events }).pipe(Layer.provide(CalendarLive))

/** A virtual client connected to namespace `default`, past its welcome notice. */
const user = (id: string) =>
  Effect.gen(function*() {
    const client = yield* TestServer.connect({ id })
    const ns = yield* client.connect("default")
    yield* client.expect({ event: "notice", body: `welcome, ${id}` })
    return { client, ns }
  })

describe("chat example", () => {
  it.effect("chat reaches the others in the room, not the sender nor those outside", () =>
    Effect.gen(function*() {
      const alice = yield* user("alice")
      const bob = yield* user("bob")
      const carol = yield* user("carol")
      const lobby = yield* alice.ns.joinRoom("lobby")
      yield* bob.ns.joinRoom("lobby")
      yield* alice.client.expect({ room: "lobby", event: "notice", body: "bob joined" })
      yield* lobby.emit("chat", "hello lobby")
      const received = yield* bob.client.expect({ room: "lobby", event: "chat" })
      assert.strictEqual(Message.bodyText(received), "hello lobby")
      yield* alice.client.expectNone
      yield* carol.client.expectNone
    }).pipe(Effect.provide(ChatTest)))

  it.effect("workday answers with the Calendar service; a bad date is an error reply", () =>
    Effect.gen(function*() {
      const { ns } = yield* user("alice")
      assert.strictEqual(Message.bodyText(yield* ns.ask("workday", "2026-11-25")), "2026-11-25 is a workday")
      assert.strictEqual(Message.bodyText(yield* ns.ask("workday", "2026-11-28")), "2026-11-28 is a weekend day")
      const error = yield* Effect.flip(ns.ask("workday", "someday"))
      assert.deepStrictEqual([error._tag, error.message], ["RemoteError", "not a date: someday"])
    }).pipe(Effect.provide(ChatTest)))

  it.effect("a notice every 30 seconds, in virtual time", () =>
    Effect.gen(function*() {
      const { client } = yield* user("alice")
      yield* TestClock.adjust("29999 millis")
      yield* client.expectNone
      yield* TestClock.adjust("1 millis")
      yield* client.expect({ event: "notice", body: "server notice: still here" })
      yield* TestClock.adjust("30 seconds")
      yield* client.expect({ event: "notice", body: "server notice: still here" })
    }).pipe(Effect.provide(Notices.pipe(Layer.provideMerge(ChatTest)))))
})
