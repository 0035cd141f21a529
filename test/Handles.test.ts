/**
 * The namespace and room handles broadcast in one shape: `broadcast("event", body)`
 * or `broadcast({ event, body, ... })`, on both.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as TestServer from "../src/TestServer.js"

const events = Events.namespaces({
  default: {
    // the namespace handle, both shapes
    nsPair: (ns) => ns.broadcastOthers("note", "pair"),
    nsMessage: (ns) => ns.broadcastOthers({ event: "note", body: "message" }),
    nsRoomMessage: (ns) => ns.broadcastOthers({ room: "lobby", event: "note", body: "room message" }),
    nsAll: (ns) => ns.broadcast("note", "to all"),
    // the room handle, both shapes (the room is the handle's own)
    roomPair: (ns) => Effect.flatMap(ns.room("lobby"), (room) => room.broadcastOthers("note", "room pair")),
    roomMessage: (ns) =>
      Effect.flatMap(ns.room("lobby"), (room) => room.broadcastOthers({ event: "note", body: new Uint8Array([1, 2]) })),
    roomTo: (ns) =>
      Effect.flatMap(ns.room("lobby"), (room) => room.broadcast({ event: "note", body: "for bob", to: "bob" }))
  }
})

describe("Broadcasts from handles", () => {
  it.effect("NSConn and Room take an event and a body, or a message", () =>
    Effect.gen(function*() {
      const alice = yield* TestServer.connect({ id: "alice" })
      const bob = yield* TestServer.connect({ id: "bob" })
      const ns = yield* alice.connect("default")
      yield* alice.join("default", "lobby")
      yield* bob.join("default", "lobby")
      const received = () =>
        Effect.map(bob.next, (m) => [m.room, m.event, m.binary ? [...Message.bodyBytes(m)] : Message.bodyText(m)])

      for (const event of ["nsPair", "nsMessage", "nsRoomMessage", "roomPair", "roomMessage", "roomTo"]) {
        yield* ns.emit(event)
      }
      assert.deepStrictEqual(yield* received(), ["", "note", "pair"])
      assert.deepStrictEqual(yield* received(), ["", "note", "message"])
      assert.deepStrictEqual(yield* received(), ["lobby", "note", "room message"])
      assert.deepStrictEqual(yield* received(), ["lobby", "note", "room pair"])
      assert.deepStrictEqual(yield* received(), ["lobby", "note", [1, 2]])
      assert.deepStrictEqual(yield* received(), ["lobby", "note", "for bob"])
      yield* alice.expectNone // the others-forms skip the sender; `to` narrowed the last one to bob

      yield* ns.emit("nsAll")
      yield* alice.expect({ event: "note", body: "to all" })
      yield* bob.expect({ event: "note", body: "to all" })
    }).pipe(Effect.provide(TestServer.layer({ events }))))
})
