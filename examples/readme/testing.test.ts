// Checked by test/Readme.test.ts: the README shows the marked part of this file as it is.
import { assert, describe, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { Events, Message, Reply } from "effect-neffos"
import * as TestServer from "effect-neffos/TestServer"

const events = Events.namespaces({
  default: {
    chat: (ns, msg) => ns.broadcastOthers(msg),
    echo: (_ns, msg) => Effect.succeed(Reply.text(`echo:${Message.bodyText(msg)}`)),
    // answers at once, reminds later: the delayed emit lives as long as the connection
    remind: (ns, msg) =>
      ns.emit("reminder", Message.bodyText(msg)).pipe(
        Effect.delay("1 minute"),
        Effect.forkIn(ns.conn.scope),
        Effect.asVoid
      )
  }
})

describe("my handlers", () => {
  it.effect("chat reaches the others; echo answers", () =>
    Effect.gen(function*() {
      const alice = yield* TestServer.connect({ id: "alice" })
      const bob = yield* TestServer.connect({ id: "bob" })
      const ns = yield* alice.connect("default")
      yield* bob.connect("default")

      yield* ns.emit("chat", "hi")
      yield* bob.expect({ event: "chat", body: "hi" })
      yield* alice.expectNone // not back to the sender

      const reply = yield* ns.ask("echo", "ping")
      assert.strictEqual(Message.bodyText(reply), "echo:ping")
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("a reminder a minute later, in virtual time", () =>
    Effect.gen(function*() {
      const alice = yield* TestServer.connect()
      const ns = yield* alice.connect("default")
      yield* ns.emit("remind", "stand up")
      yield* alice.sync // the server has handled the emit: the timer is running
      yield* TestClock.adjust("59 seconds")
      yield* alice.expectNone
      yield* TestClock.adjust("1 second")
      yield* alice.expect({ event: "reminder", body: "stand up" })
    }).pipe(Effect.provide(TestServer.layer({ events }))))
})
