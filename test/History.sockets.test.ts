import { assert, describe, it } from "@effect/vitest"
import * as Events from "effect-neffos/Events"
import * as Effect from "effect/Effect"
import { bodies, recorder, rules } from "./History.kit.js"
import { suite } from "./History.suite.js"
import { neffosClient, startServer } from "./utils.js"

// one instance, its history in memory
suite({ name: "one instance" })

describe("recovery next to neffos.js 0.1.34", () => {
  it.scopedLive("a neffos.js client in a recoverable room gets the bodies it always got, next to one that recovers", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events: Events.namespaces({ default: {} }), history: rules })
      const ours = yield* recorder(Number(new URL(url).port), "live-js")
      const theirs = yield* neffosClient(url, ["default"])
      const ns = yield* Effect.promise(() => theirs.conn.connect("default"))
      yield* Effect.promise(() => (ns as any).joinRoom("live-js"))
      for (const body of bodies(0, 3)) {
        yield* Effect.orDie(server.broadcast({ namespace: "default", room: "live-js", event: "msg", body }))
      }
      const got = [yield* theirs.next, yield* theirs.next, yield* theirs.next]
      assert.deepStrictEqual(got.map((m) => [m.room, m.event, m.body, m.err]), [
        ["live-js", "msg", "m0", undefined],
        ["live-js", "msg", "m1", undefined],
        ["live-js", "msg", "m2", undefined]
      ])
      yield* ours.awaitCount(3)
      assert.deepStrictEqual(ours.received, [["m0", 1], ["m1", 2], ["m2", 3]])
    }))
})
