/**
 * Bad input, dead peers and limits: none of them crashes the server or affects
 * another connection.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import WebSocket from "ws"
import * as Conn from "../src/Conn.js"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as Reply from "../src/Reply.js"
import * as Server from "../src/Server.js"
import { handshaken, rawClient, startServer } from "./utils.js"

const events = Events.namespaces({
  default: {
    echo: (_ns, msg) => Effect.succeed(Reply.text("echo:" + Message.bodyText(msg))),
    die: () => Effect.die(new Error("a bug in a handler")),
    slow: () => Effect.never
  }
})

const connected = (url: string) =>
  Effect.gen(function*() {
    const { client, id } = yield* handshaken(url)
    yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
    assert.strictEqual(yield* client.nextText, "$c;;;;;;")
    return { client, id }
  })

/** Proves a connection still works: an ask gets its reply. */
const alive = (client: { send: (f: string) => Effect.Effect<void>; nextText: Effect.Effect<string> }, tag: string) =>
  Effect.gen(function*() {
    yield* client.send(`$alive-${tag};default;;echo;0;0;${tag}`)
    assert.strictEqual(yield* client.nextText, `$alive-${tag};default;;echo;0;0;echo:${tag}`)
  })

describe("Server hardening", () => {
  it.scopedLive("garbage and 5-separator frames are ignored without closing anything", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events })
      const { client } = yield* connected(url)
      const bystander = yield* connected(url)
      for (
        const frame of [
          "garbage",
          "$x6;default;;ping;0;0",
          ";;;",
          "\u0000\u0001",
          "1;default;;echo;0;0;a reply to nothing",
          "#1;default;;echo;0;0;a confirmation to nothing"
        ]
      ) {
        yield* client.send(frame)
      }
      yield* client.send(new Uint8Array([0xff, 0xfe, 59, 59]))
      yield* client.send(new Uint8Array([0xff, 59, 59, 59, 59, 59, 59, 1]))
      yield* alive(client, "a")
      yield* alive(bystander.client, "b")
    }))

  it.scopedLive("unknown events and namespaces are answered or ignored, never fatal", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events })
      const { client } = yield* connected(url)
      yield* client.send(";default;;nosuch;0;0;x")
      yield* client.send(";nowhere;;echo;0;0;x")
      yield* client.send("$q;nowhere;;echo;0;0;x")
      assert.strictEqual(yield* client.nextText, "$q;nowhere;;echo;1;0;bad namespace")
      yield* alive(client, "a")
    }))

  it.scopedLive("a handler defect is logged and answered with a generic error", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events })
      const { client } = yield* connected(url)
      yield* client.send("$d;default;;die;0;0;")
      assert.strictEqual(yield* client.nextText, "$d;default;;die;1;0;internal error")
      yield* alive(client, "a")
    }))

  it.scopedLive("an oversized frame closes that connection with 1009, before it is buffered whole", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events, maxMessageSize: 1024 })
      const { client } = yield* connected(url)
      const bystander = yield* connected(url)
      yield* client.send(";default;;echo;0;0;" + "x".repeat(2048))
      assert.strictEqual((yield* client.closed).code, 1009)
      yield* alive(bystander.client, "b")
    }))

  it.scopedLive("invalid UTF-8 in a text frame closes that connection with 1007", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events })
      const { client } = yield* connected(url)
      const bystander = yield* connected(url)
      // a text frame (opcode 1) whose payload is not UTF-8: ws can only send it raw
      const socket = (client.ws as unknown as { _sender: { sendFrame: (list: Array<Buffer>) => void } })._sender
      const payload = Buffer.from([0xc3, 0x28])
      const mask = Buffer.from([1, 2, 3, 4])
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))
      socket.sendFrame([Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask]), masked])
      assert.strictEqual((yield* client.closed).code, 1007)
      yield* alive(bystander.client, "b")
    }))

  it.scopedLive("a flood of asks is served in order and the socket is paused, not buffered without end", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events, inboundCapacity: 16 })
      const { client } = yield* connected(url)
      const bystander = yield* connected(url)
      const count = 2000
      for (let i = 0; i < count; i++) client.ws.send(`$f${i};default;;echo;0;0;${i}`)
      yield* alive(bystander.client, "b")
      for (let i = 0; i < count; i++) {
        assert.strictEqual(yield* client.nextText, `$f${i};default;;echo;0;0;echo:${i}`)
      }
    }))

  it.scopedLive("a peer that never answers pings is closed; one that does stays", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({
        events,
        pingInterval: "50 millis",
        // the live peer's pong comes from its own event loop in this process: a margin for a busy machine
        pingTimeout: "500 millis",
        idGenerator: (() => {
          let n = 0
          return () => (n++ === 0 ? "dead" : "alive")
        })()
      })
      const lifecycle = yield* server.subscribe
      const dead = yield* Effect.acquireRelease(
        Effect.async<WebSocket>((resume) => {
          const ws = new WebSocket(url, { autoPong: false })
          ws.on("error", () => {})
          ws.once("open", () => {
            ws.send("M")
            resume(Effect.succeed(ws))
          })
        }),
        (ws) => Effect.sync(() => ws.terminate())
      )
      const live = yield* connected(url)
      let event = yield* Queue.take(lifecycle)
      while (event._tag !== "Disconnected") event = yield* Queue.take(lifecycle)
      assert.deepStrictEqual([event.conn.id, event.reason], ["dead", "ping timeout"])
      assert.isDefined(dead)
      yield* alive(live.client, "a")
      assert.strictEqual(yield* server.connectionCount, 1)
    }))

  it.scopedLive("a client that never sends M is closed after the handshake timeout", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events, handshakeTimeout: "50 millis" })
      const client = yield* rawClient(url)
      const closed = yield* client.closed
      assert.deepStrictEqual([closed.code, closed.reason], [1008, "handshake timeout"])
    }))

  it.scopedLive("shutdown drains outboxes and closes every connection with 1001", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events })
      const { client } = yield* connected(url)
      for (let i = 0; i < 10; i++) yield* server.broadcast({ namespace: "default", event: "n", body: String(i) })
      yield* server.shutdown
      for (let i = 0; i < 10; i++) assert.strictEqual(yield* client.nextText, `;default;;n;0;0;${i}`)
      assert.strictEqual((yield* client.closed).code, 1001)
      // after shutdown started nothing is upgraded (see Server.faults.test.ts)
      const status = yield* Effect.async<number>((resume) => {
        const late = new WebSocket(url)
        late.on("unexpected-response", (_req, res) => resume(Effect.succeed(res.statusCode ?? 0)))
        late.on("error", () => {})
      })
      assert.strictEqual(status, 503)
    }))
})

class Greeter extends Context.Tag("test/Greeter")<Greeter, { readonly greet: (name: string) => string }>() {}

class NotAllowed extends Data.TaggedError("NotAllowed")<{ readonly user: string }> {}

const Visits = Conn.storeKey("visits", () => 0)

describe("Server API", () => {
  it.scopedLive("handlers use the application's services, provided to the Layer", () =>
    Effect.gen(function*() {
      const greeting = Events.namespaces({
        default: {
          greet: (_ns, msg) => Effect.map(Greeter, (greeter) => Reply.text(greeter.greet(Message.bodyText(msg)))),
          guarded: (_ns, msg) => Effect.fail(new NotAllowed({ user: Message.bodyText(msg) }))
        }
      })
      const { url } = yield* startServer({ events: greeting }).pipe(
        Effect.provide(Layer.succeed(Greeter, { greet: (name) => `hello ${name}` }))
      )
      const { client } = yield* connected(url)
      yield* client.send("$g;default;;greet;0;0;ada")
      assert.strictEqual(yield* client.nextText, "$g;default;;greet;0;0;hello ada")
      // a tagged error without a message travels as its tag
      yield* client.send("$n;default;;guarded;0;0;eve")
      assert.strictEqual(yield* client.nextText, "$n;default;;guarded;1;0;NotAllowed")
    }))

  it.scopedLive("the per-connection store is typed and per connection", () =>
    Effect.gen(function*() {
      const counting = Events.namespaces({
        default: {
          visit: (ns) => Effect.map(ns.conn.modify(Visits, (n) => n + 1), (n) => Reply.text(String(n)))
        }
      })
      const { url } = yield* startServer({ events: counting })
      const a = yield* connected(url)
      const b = yield* connected(url)
      for (const expected of ["1", "2", "3"]) {
        yield* a.client.send("$v;default;;visit;0;0;")
        assert.strictEqual(yield* a.client.nextText, `$v;default;;visit;0;0;${expected}`)
      }
      yield* b.client.send("$v;default;;visit;0;0;")
      assert.strictEqual(yield* b.client.nextText, "$v;default;;visit;0;0;1")
    }))

  it.scopedLive("X-Websocket-Header-* query parameters become headers before the id generator", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({
        events,
        idGenerator: (request) => request.headers["x-username"] ?? "anonymous"
      })
      const { id } = yield* handshaken(`${url}?X-Websocket-Header-X-Username=alice`)
      assert.strictEqual(id, "alice")
      const { id: fromHeader } = yield* handshaken(url, { headers: { "X-Username": "bob" } })
      assert.strictEqual(fromHeader, "bob")
    }))

  it.scopedLive("connections, lookups, members and do", () =>
    Effect.gen(function*() {
      const ids = ["one", "two", "three"]
      let n = 0
      const { server, url } = yield* startServer({ events, idGenerator: () => ids[n++] })
      const one = yield* connected(url)
      yield* connected(url)
      yield* handshaken(url)
      yield* one.client.send("$j;default;lobby;_OnRoomJoin;0;0;")
      assert.strictEqual(yield* one.client.nextText, "$j;;;;;;")
      assert.strictEqual(yield* server.connectionCount, 3)
      assert.deepStrictEqual((yield* server.connections).map((c) => c.id).sort(), ["one", "three", "two"])
      assert.strictEqual((yield* server.connection("two")).id, "two")
      assert.strictEqual((yield* Effect.flip(server.connection("zero")))._tag, "ConnectionNotFound")
      assert.deepStrictEqual((yield* server.members("default")).map((c) => c.id).sort(), ["one", "two"])
      assert.deepStrictEqual((yield* server.members("default", "lobby")).map((c) => c.id), ["one"])
      assert.strictEqual(yield* server.memberCount("default", "lobby"), 1)
      assert.strictEqual(yield* server.memberCount("nowhere"), 0)
      const seen: Array<string> = []
      yield* server.do((conn) => Effect.sync(() => seen.push(conn.id)), { concurrency: 2 })
      assert.deepStrictEqual(seen.sort(), ["one", "three", "two"])
      const failed = yield* Effect.flip(
        server.do((conn) => conn.id === "two" ? Effect.fail(new NotAllowed({ user: conn.id })) : Effect.void)
      )
      assert.strictEqual(failed.user, "two")
      // `do` with the connections' own operations
      yield* server.do((conn) => Effect.zipRight(conn.close({ code: 4001 }), conn.awaitClose))
      assert.strictEqual(yield* server.memberCount("default"), 0)
      assert.strictEqual(yield* server.connectionCount, 0)
    }))

  it.scopedLive("a server ask fails with ConnectionClosed when the client goes away", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events, idGenerator: () => "leaver" })
      const { client } = yield* connected(url)
      const asking = yield* Effect.fork(server.ask({ to: "leaver", namespace: "default", event: "question" }))
      yield* client.nextText // the ask arrived
      client.ws.close()
      const error = yield* Effect.flip(Fiber.join(asking))
      assert.strictEqual(error._tag, "ConnectionClosed")
    }))

  it.scopedLive("the connection's scope closes with it", () =>
    Effect.gen(function*() {
      const released = yield* Deferred.make<string>()
      const { url } = yield* startServer({
        events,
        idGenerator: () => "scoped",
        onConnect: (conn) => Scope.addFinalizer(conn.scope, Deferred.succeed(released, conn.id))
      })
      const { client } = yield* connected(url)
      client.ws.close()
      assert.strictEqual(yield* Deferred.await(released), "scoped")
    }))

  it.scopedLive("server.disconnect closes every connection with the id", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events, idGenerator: () => "twin" })
      const a = yield* connected(url)
      const b = yield* connected(url)
      assert.strictEqual(yield* server.disconnect("twin", { code: 4000, reason: "kicked" }), 2)
      assert.deepStrictEqual(yield* a.client.closed, { code: 4000, reason: "kicked" })
      assert.deepStrictEqual(yield* b.client.closed, { code: 4000, reason: "kicked" })
    }))

  it.effect("Server.layer needs only what the handlers need", () =>
    Effect.gen(function*() {
      const layer = Server.layer({ events })
      assert.isTrue(Layer.isLayer(layer))
    }))
})
