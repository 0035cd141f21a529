/**
 * Connection setup and close without a fiber: a namespace connect that no
 * lifecycle handler can veto is answered in the reader, and a close with no forced
 * event to fire lets the connection go at once. Both must do what the fiber path
 * does: the same frames, the same index, the same lifecycle events in the same
 * order, `awaitClose` and `onDisconnect`; with handlers, the fiber path still runs.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Queue from "effect/Queue"
import type * as Conn from "../src/Conn.js"
import * as Events from "../src/Events.js"
import { Registry, targets } from "../src/internal/registry.js"
import * as Reply from "../src/Reply.js"
import type * as Server from "../src/Server.js"
import { handshaken, startServer } from "./utils.js"

const within = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(effect, { duration: Duration.seconds(2), onTimeout: () => new Error("not within 2 s") })

const echoOnly = Events.namespaces({
  default: { echo: (_ns, m) => Effect.succeed(Reply.make(m.body)) }
})

/** Lifecycle events up to and including the first `Disconnected`. */
const untilDisconnected = (queue: Queue.Dequeue<Server.ServerEvent>) =>
  Effect.gen(function*() {
    const seen: Array<string> = []
    for (;;) {
      const event = yield* within(Queue.take(queue))
      seen.push(event._tag)
      if (event._tag === "Disconnected") return seen
    }
  })

describe("Server connection setup and close", () => {
  it.scopedLive("answers a connect without lifecycle handlers at once, and lets it go on close", () =>
    Effect.gen(function*() {
      const disconnected = yield* Deferred.make<string>()
      const { server, url } = yield* startServer({
        events: echoOnly,
        onDisconnect: (conn) => Deferred.succeed(disconnected, conn.id)
      })
      const lifecycle = yield* server.subscribe
      const { client, id } = yield* handshaken(url)
      yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.nextText, "$c;;;;;;")
      // the index is up to date once the reply is out
      assert.strictEqual(yield* server.memberCount("default"), 1)
      // connecting again is answered the same way, without a second membership
      yield* client.send("$c2;default;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.nextText, "$c2;;;;;;")
      yield* client.send("$n;nowhere;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.nextText, "$n;nowhere;;_OnNamespaceConnect;1;0;bad namespace")
      yield* client.send("$e;default;;echo;0;0;hi")
      assert.strictEqual(yield* client.nextText, "$e;default;;echo;0;0;hi")
      const conn = yield* server.connection(id)
      client.ws.terminate()
      assert.deepStrictEqual(yield* untilDisconnected(lifecycle), [
        "Connected",
        "NamespaceConnected",
        "NamespaceDisconnected",
        "Disconnected"
      ])
      // awaited after the close: completes at once
      yield* within(conn.awaitClose)
      assert.strictEqual(yield* within(Deferred.await(disconnected)), id)
      assert.strictEqual(yield* server.memberCount("default"), 0)
      assert.strictEqual(yield* server.connectionCount, 0)
    }))

  it.scopedLive("awaitClose taken before the close completes with it", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events: echoOnly })
      const { client, id } = yield* handshaken(url)
      const conn = yield* server.connection(id)
      const closed = yield* Effect.fork(conn.awaitClose)
      yield* Effect.yieldNow()
      client.ws.terminate()
      yield* within(closed.await)
      assert.strictEqual(yield* server.connectionCount, 0)
    }))

  it.scopedLive("runs the lifecycle handlers of a connect and of the forced leaves and disconnect", () =>
    Effect.gen(function*() {
      const fired = yield* Queue.unbounded<string>()
      const record = (what: string) => (ns: Conn.NSConn, m: { readonly room: string; readonly isForced: boolean }) =>
        Effect.asVoid(Queue.offer(fired, `${what} ${ns.namespace} ${m.room} ${m.isForced}`))
      const events = Events.namespaces({
        default: {
          _OnNamespaceConnect: record("connect"),
          _OnNamespaceConnected: record("connected"),
          _OnRoomLeave: record("leave"),
          _OnRoomLeft: record("left"),
          _OnNamespaceDisconnect: record("disconnect")
        },
        vetoed: {
          _OnNamespaceConnect: () => Effect.fail(new Error("not you"))
        }
      })
      const { server, url } = yield* startServer({
        events,
        errorText: (failure) => (failure._tag === "Fail" ? String(failure.error) : "died")
      })
      const { client } = yield* handshaken(url)
      yield* client.send("$v;vetoed;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.nextText, "$v;vetoed;;_OnNamespaceConnect;1;0;Error: not you")
      assert.strictEqual(yield* server.memberCount("vetoed"), 0)
      yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* client.nextText, "$c;;;;;;")
      yield* client.send("$j;default;lobby;_OnRoomJoin;0;0;")
      assert.strictEqual(yield* client.nextText, "$j;;;;;;")
      client.ws.terminate()
      const seen: Array<string> = []
      while (seen.length < 5) seen.push(yield* within(Queue.take(fired)))
      assert.deepStrictEqual(seen, [
        "connect default  false",
        "connected default  false",
        "leave default lobby true",
        "left default lobby true",
        "disconnect default  true"
      ])
      assert.strictEqual(yield* server.memberCount("default"), 0)
    }))
})

describe("the membership index by id", () => {
  it("keeps a connection alone under its id, and several that share one", () => {
    const registry = new Registry<{ readonly key: number; readonly id: string }>()
    const a = { key: 1, id: "user" }
    const b = { key: 2, id: "user" }
    const c = { key: 3, id: "other" }
    assert.strictEqual(registry.add(a), 1)
    assert.strictEqual(registry.add(c), 1)
    registry.namespaceChanged("default", a, true)
    registry.namespaceChanged("default", c, true)
    assert.deepStrictEqual(registry.withId("user"), [a])
    assert.strictEqual(registry.add(b), 2)
    registry.namespaceChanged("default", b, true)
    assert.deepStrictEqual(registry.withId("user").map((conn) => conn.key).sort(), [1, 2])
    const before = registry.snapshot
    const sent = (s: typeof before) => {
      const found = targets(s, "default", "", "user")
      return found === undefined ? [] : Array.from(HashMap.keys(found)).sort()
    }
    assert.deepStrictEqual(sent(before), [1, 2])
    assert.strictEqual(registry.remove(a), 1)
    registry.namespaceChanged("default", a, false)
    assert.deepStrictEqual(registry.withId("user"), [b])
    assert.deepStrictEqual(sent(registry.snapshot), [2])
    // a snapshot taken before is not changed by later commits
    assert.deepStrictEqual(sent(before), [1, 2])
    assert.strictEqual(registry.remove(b), 0)
    assert.deepStrictEqual(registry.withId("user"), [])
    assert.strictEqual(targets(registry.snapshot, "default", "", "user"), undefined)
    assert.deepStrictEqual(registry.topics().filter((t) => t._tag === "Connection"), [{
      _tag: "Connection",
      id: "other"
    }])
  })
})
