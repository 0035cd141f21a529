/**
 * The Effect client against this project's server, over real sockets.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Client from "../src/Client.js"
import * as Errors from "../src/Errors.js"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as NodeClient from "../src/NodeClient.js"
import * as Reply from "../src/Reply.js"
import { captureEvents, Refused } from "./fixtures.js"
import { startServer } from "./utils.js"

const dial = <E = never, R = never>(
  url: string,
  options?: Client.DialOptions<E, R>
): Effect.Effect<Client.ClientConn, Errors.HandshakeRejected | Errors.HandshakeError, Scope.Scope | R> =>
  Effect.provide(Client.dial(url, options), NodeClient.layer)

/** Dies with a clear message when `effect` takes longer than `seconds`. */
const deadline = (seconds: number, what: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutFailCause(effect, {
    duration: Duration.seconds(seconds),
    onTimeout: () => Cause.die(new Error(`no ${what} within ${seconds} s`))
  })

/** A port nothing listens on: reserved on 127.0.0.1, then released. */
const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as Net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** An HTTP server that answers every WebSocket upgrade with `status`, and counts them. */
const refusingServer = (status: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly upgrades: () => number; readonly http: Http.Server }>((resume) => {
      let upgrades = 0
      const http = Http.createServer((_request, response) => response.writeHead(200).end())
      http.on("upgrade", (_request, socket) => {
        upgrades++
        socket.end(`HTTP/1.1 ${status} ${Http.STATUS_CODES[status]}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
      })
      http.listen(0, "127.0.0.1", () => {
        const { port } = http.address() as Net.AddressInfo
        resume(Effect.succeed({ url: `ws://127.0.0.1:${port}/echo`, upgrades: () => upgrades, http }))
      })
    }),
    ({ http }) =>
      Effect.async<void>((resume) => {
        http.closeAllConnections()
        http.close(() => resume(Effect.void))
      })
  )

/** Client events that put what arrives in a queue. */
const recording = (queue: Queue.Queue<string>, namespaces: ReadonlyArray<string> = ["default"]) => {
  const map: Record<string, Events.EventMap<Client.ClientNSConn>> = {}
  for (const ns of namespaces) {
    map[ns] = {
      _OnAnyEvent: (_ns, msg) =>
        Message.isSystemEvent(msg.event)
          ? Effect.void
          : Effect.asVoid(Queue.offer(
            queue,
            `${msg.room === "" ? "" : msg.room + ":"}${msg.event}:${msg.error ?? Message.bodyText(msg)}`
          ))
    }
  }
  return Events.client(map)
}

describe("Client", () => {
  it.scopedLive("dials, connects, emits, asks, gets broadcasts and the server's emits", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents, idGenerator: () => "me" })
      const received = yield* Queue.unbounded<string>()
      const conn = yield* dial(url, { events: recording(received) })
      assert.strictEqual(conn.id, "me")
      assert.deepStrictEqual(yield* conn.currentState, { _tag: "Open", id: "me" })
      const ns = yield* conn.connect("default")
      assert.strictEqual(yield* Queue.take(received), "chat:welcome")
      yield* ns.emit("chat", "hello;world")
      assert.strictEqual(yield* Queue.take(received), "chat:hello;world")
      const reply = yield* ns.ask("echo", "q1")
      assert.strictEqual(Message.bodyText(reply), "echo:q1")
      const refused = yield* Effect.flip(ns.ask("fail", "q2"))
      assert.strictEqual(refused._tag, "RemoteError")
      assert.strictEqual(refused.message, "boom;with;semicolons")
      yield* ns.emit("emitfail", "x")
      assert.strictEqual(yield* Queue.take(received), "emitfail:emit failed")
    }))

  it.scopedLive("a refused handshake is HandshakeRejected; a vetoed or unknown namespace a typed error", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({
        events: captureEvents,
        onConnect: (conn) =>
          conn.request.headers["x-token"] === "ok" ? Effect.void : Effect.fail(new Refused({ message: "who are you" }))
      })
      const rejected = yield* Effect.flip(dial(url))
      assert.deepStrictEqual([rejected._tag, rejected.message], [
        "HandshakeRejected",
        "handshake rejected: who are you"
      ])
      const conn = yield* dial(url, {
        headers: { "X-Token": "ok" },
        events: Events.client({ default: {}, refuse: {}, onlyclient: {} })
      })
      const veto = yield* Effect.flip(conn.connect("refuse"))
      assert.deepStrictEqual([veto._tag, veto.message], ["RemoteError", "refused by server"])
      const unknownOnServer = yield* Effect.flip(conn.connect("onlyclient"))
      assert.deepStrictEqual(
        unknownOnServer,
        new Errors.BadNamespace({ namespace: "onlyclient", reason: "RefusedByPeer" })
      )
      const notDeclared = yield* Effect.flip(conn.connect("second"))
      assert.deepStrictEqual(notDeclared, new Errors.BadNamespace({ namespace: "second", reason: "NotDeclared" }))
      assert.strictEqual(notDeclared.message, `bad namespace "second": not declared in this side's events`)
      const ns = yield* conn.connect("default")
      yield* ns.disconnect()
      const gone = yield* Effect.flip(ns.emit("chat", "late"))
      assert.deepStrictEqual(gone, new Errors.BadNamespace({ namespace: "default", reason: "NotConnected" }))
    }))

  it.scopedLive("an event the client has no handler for is logged at debug level with its name", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        logs.push(
          `${logLevel.label} ${String(message)} ${
            String(HashMap.get(annotations, "event").pipe(Option.getOrUndefined))
          }`
        )
      })
      const { server, url } = yield* startServer({ events: captureEvents, idGenerator: () => "quiet" })
      const conn = yield* dial(url, { events: Events.client({ default: {} }) }).pipe(
        Effect.provide(
          Layer.merge(Logger.replace(Logger.defaultLogger, capture), Logger.minimumLogLevel(LogLevel.Debug))
        )
      )
      yield* conn.connect("default")
      yield* server.send("quiet", { namespace: "default", event: "mystery", body: "?" })
      yield* Effect.gen(function*() {
        while (!logs.some((log) => log.includes("mystery"))) yield* Effect.yieldNow()
      }).pipe(
        Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error(`not logged: ${logs.join("; ")}`) })
      )
      assert.include(
        logs.find((log) => log.includes("mystery")),
        `DEBUG effect-neffos: no handler for event "mystery" mystery`
      )
    }))

  it.scopedLive("a dial to nothing fails with HandshakeError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(dial("ws://127.0.0.1:1/echo"))
      assert.deepStrictEqual([error._tag, error.reason], ["HandshakeError", "Open"])
    }))

  it.scopedLive("the client's own _OnNamespaceConnect and _OnRoomJoin veto before anything is sent", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events: captureEvents })
      const conn = yield* dial(url, {
        events: Events.client({
          default: {
            _OnNamespaceConnect: (_ns, msg) =>
              msg.isLocal ? Effect.void : Effect.fail(new Refused({ message: "unexpected" })),
            _OnRoomJoin: (_ns, msg) =>
              msg.room === "nope" ? Effect.fail(new Refused({ message: "not that room" })) : Effect.void
          },
          second: { _OnNamespaceConnect: () => Effect.fail(new Refused({ message: "not now" })) }
        })
      })
      const vetoed = yield* Effect.flip(conn.connect("second"))
      assert.deepStrictEqual([vetoed._tag, vetoed.message], ["Vetoed", "not now"])
      assert.strictEqual(yield* server.memberCount("second"), 0)
      const ns = yield* conn.connect("default")
      const room = yield* Effect.flip(ns.joinRoom("nope"))
      assert.deepStrictEqual([room._tag, room.message], ["Vetoed", "not that room"])
      assert.strictEqual(yield* server.memberCount("default", "nope"), 0)
    }))

  it.scopedLive("rooms: join, room emit and ask, leave, leaveAll with _OnRoomLeave requests", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events: captureEvents })
      const received = yield* Queue.unbounded<string>()
      const lifecycle = yield* Queue.unbounded<string>()
      const log = (_ns: Client.ClientNSConn, msg: Message.Message) =>
        Effect.asVoid(Queue.offer(lifecycle, `${msg.event}:${msg.room}:${msg.isLocal}`))
      const conn = yield* dial(url, {
        events: Events.merge(
          recording(received),
          Events.client({ default: { _OnRoomJoined: log, _OnRoomLeft: log } })
        )
      })
      const ns = yield* conn.connect("default")
      yield* Queue.take(received) // welcome
      const room = yield* ns.joinRoom("room1")
      assert.strictEqual(yield* Queue.take(lifecycle), "_OnRoomJoined:room1:true")
      assert.strictEqual(yield* ns.joinRoom("room1"), room)
      yield* room.emit("chat", "in room")
      assert.strictEqual(yield* Queue.take(received), "room1:chat:in room")
      const reply = yield* room.ask("echo", "x")
      assert.strictEqual(reply.room, "room1")
      const forbidden = yield* Effect.flip(ns.joinRoom("forbidden"))
      assert.deepStrictEqual([forbidden._tag, forbidden.message], ["RemoteError", "room is forbidden"])
      yield* room.leave()
      assert.strictEqual(yield* Queue.take(lifecycle), "_OnRoomLeft:room1:true")
      assert.strictEqual((yield* Effect.flip(room.emit("chat", "gone")))._tag, "BadRoom")
      yield* ns.joinRoom("a")
      yield* ns.joinRoom("b")
      yield* ns.leaveAll()
      assert.strictEqual(yield* server.memberCount("default", "a"), 0)
      assert.strictEqual(yield* server.memberCount("default", "b"), 0)
      assert.deepStrictEqual(yield* ns.rooms, [])
    }))

  it.scopedLive("binary round trip, escaped names", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events: captureEvents })
      const conn = yield* dial(url, { events: Events.client({ default: {}, "semi;ns": {} }) })
      const ns = yield* conn.connect("default")
      const reply = yield* ns.ask("bin", new Uint8Array([1, 2, 59, 3]))
      assert.isTrue(reply.binary)
      assert.deepStrictEqual(Message.bodyBytes(reply), new Uint8Array([1, 2, 59, 3]))
      const semi = yield* conn.connect("semi;ns")
      assert.strictEqual(Message.bodyText(yield* semi.ask("ev;1", "body;x")), "ok;")
    }))

  it.scopedLive("answers server-initiated connect, join, leave, disconnect and asks", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({
        events: captureEvents,
        idGenerator: () => "target",
        onConnect: (conn) => Effect.asVoid(Effect.forkDaemon(conn.connect("default")))
      })
      const received = yield* Queue.unbounded<string>()
      const disconnected = yield* Deferred.make<boolean>()
      const conn = yield* dial(url, {
        events: Events.merge(
          recording(received),
          Events.client({
            default: {
              srvask: () => Effect.succeed(Reply.text("client-answer")),
              srvaskerr: () => Effect.fail(new Refused({ message: "client says no" })),
              _OnRoomLeft: (_ns, msg) => Effect.asVoid(Queue.offer(received, `left:${msg.room}:${msg.isLocal}`)),
              _OnNamespaceDisconnect: (_ns, msg) => Effect.asVoid(Deferred.succeed(disconnected, msg.isLocal))
            }
          })
        )
      })
      const ns = yield* conn.waitServerConnect("default")
      assert.strictEqual(yield* Queue.take(received), "hello:forced")
      const answer = yield* server.ask({ to: "target", namespace: "default", event: "srvask", body: "q" })
      assert.strictEqual(Message.bodyText(answer), "client-answer")
      const refusal = yield* Effect.flip(server.ask({ to: "target", namespace: "default", event: "srvaskerr" }))
      assert.deepStrictEqual([refusal._tag, refusal.message], ["RemoteError", "client says no"])
      yield* ns.emit("joinme", "srvroom")
      assert.strictEqual(yield* Queue.take(received), "srvroom:roomev:from server in room")
      assert.strictEqual((yield* ns.room("srvroom")).name, "srvroom")
      yield* ns.emit("leaveme", "srvroom")
      assert.strictEqual(yield* Queue.take(received), "left:srvroom:false")
      yield* ns.emit("kickme", "")
      assert.isFalse(yield* Deferred.await(disconnected))
      assert.strictEqual((yield* Effect.flip(ns.emit("chat", "x")))._tag, "BadNamespace")
      assert.strictEqual((yield* Effect.flip(conn.namespace("default")))._tag, "BadNamespace")
    }))

  it.scopedLive("asks time out with AskTimeout and fail with ConnectionClosed when the connection goes", () =>
    Effect.gen(function*() {
      const events = Events.namespaces({ default: { silent: () => Effect.never } })
      const { server, url } = yield* startServer({ events, idGenerator: () => "c" })
      const conn = yield* dial(url, { events: Events.client({ default: {} }), askTimeout: "100 millis" })
      const ns = yield* conn.connect("default")
      const timeout = yield* Effect.flip(ns.ask("silent", "x"))
      assert.strictEqual(timeout._tag, "AskTimeout")
      const inFlight = yield* Effect.fork(ns.ask("silent", "y", { timeout: "1 minute" }))
      yield* server.disconnect("c")
      const closed = yield* Effect.flip(Fiber.join(inFlight))
      assert.strictEqual(closed._tag, "ConnectionClosed")
    }))

  it.scopedLive("5,000 concurrent asks on one connection all resolve to their own replies", () =>
    Effect.gen(function*() {
      const events = Events.namespaces({
        default: { echo: (_ns, msg) => Effect.succeed(Reply.text(Message.bodyText(msg))) }
      })
      const { url } = yield* startServer({ events })
      const conn = yield* dial(url, { events: Events.client({ default: {} }), outbox: { capacity: 8192 } })
      const ns = yield* conn.connect("default")
      const replies = yield* Effect.forEach(
        Array.from({ length: 5000 }, (_, i) => i),
        (i) => Effect.map(ns.ask("echo", String(i)), (reply) => Message.bodyText(reply) === String(i)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(replies.filter((ok) => ok).length, 5000)
    }))

  it.scopedLive("close fires the forced local events and closes with 1000", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events: captureEvents })
      const lifecycle = yield* server.subscribe
      const log = yield* Queue.unbounded<string>()
      const record = (_ns: Client.ClientNSConn, msg: Message.Message) =>
        Effect.asVoid(Queue.offer(log, `${msg.event}:${msg.room}:${msg.isForced}`))
      const conn = yield* dial(url, {
        events: Events.client({
          default: { _OnRoomLeave: record, _OnRoomLeft: record, _OnNamespaceDisconnect: record }
        })
      })
      const ns = yield* conn.connect("default")
      yield* ns.joinRoom("r")
      yield* conn.close()
      yield* conn.awaitClose
      const entries = yield* Queue.takeAll(log)
      assert.deepStrictEqual(Chunk.toReadonlyArray(entries), [
        "_OnRoomLeave:r:true",
        "_OnRoomLeft:r:true",
        "_OnNamespaceDisconnect::true"
      ])
      let event = yield* Queue.take(lifecycle)
      while (event._tag !== "Disconnected") event = yield* Queue.take(lifecycle)
      assert.strictEqual(event.code, 1000)
      assert.deepStrictEqual(yield* conn.currentState, { _tag: "Closed", code: 1000, reason: "" })
    }))

  describe("reconnect", () => {
    it.scopedLive("after the server drops it: same handles, namespaces and rooms restored, new id", () =>
      Effect.gen(function*() {
        let n = 0
        const { server, url } = yield* startServer({ events: captureEvents, idGenerator: () => `r${++n}` })
        const received = yield* Queue.unbounded<string>()
        const conn = yield* dial(url, {
          events: recording(received),
          reconnect: Schedule.spaced("20 millis").pipe(Schedule.intersect(Schedule.recurs(50)))
        })
        const states = yield* Stream.runCollect(Stream.take(conn.state, 4)).pipe(Effect.fork)
        const ns = yield* conn.connect("default")
        yield* Queue.take(received) // welcome
        const room = yield* ns.joinRoom("lobby")
        const lifecycle = yield* server.subscribe
        yield* server.disconnect("r1", { code: 1012, reason: "restart" })
        const restored = yield* Effect.map(Fiber.join(states), Chunk.toReadonlyArray)
        assert.deepStrictEqual(restored.map((s) => s._tag), ["Open", "Reconnecting", "Reconnecting", "Open"])
        assert.deepStrictEqual(restored[1], { _tag: "Reconnecting", attempt: 0, code: 1012, reason: "restart" })
        assert.strictEqual(conn.id, "r2")
        assert.strictEqual(conn.reconnectTries, 1)
        assert.strictEqual(yield* Queue.take(received), "chat:welcome")
        // the same handles work: the server has the namespace and the room again
        let event = yield* Queue.take(lifecycle)
        while (!(event._tag === "RoomJoined" && event.conn.id === "r2")) event = yield* Queue.take(lifecycle)
        yield* room.emit("chat", "back")
        assert.strictEqual(yield* Queue.take(received), "lobby:chat:back")
        const reconnected = yield* server.connection("r2")
        assert.strictEqual(reconnected.reconnectTries, 1)
      }))

    it.scopedLive("a refused handshake is not retried; the connection closes", () =>
      Effect.gen(function*() {
        let allow = true
        const { server, url } = yield* startServer({
          events: captureEvents,
          idGenerator: () => "once",
          onConnect: () => allow ? Effect.void : Effect.fail(new Refused({ message: "banned" }))
        })
        const conn = yield* dial(url, {
          events: Events.client({ default: {} }),
          reconnect: Schedule.spaced("10 millis"),
          reconnectProbe: "direct"
        })
        allow = false
        yield* server.disconnect("once")
        yield* conn.awaitClose
        const state = yield* conn.currentState
        assert.strictEqual(state._tag, "Closed")
      }))

    it.scopedLive("retryFirstDial: a client started before its server connects once the server is up", () =>
      Effect.gen(function*() {
        const port = yield* freePort
        const failures = yield* Queue.unbounded<Errors.HandshakeRejected | Errors.HandshakeError>()
        const dialing = yield* Effect.fork(dial(`ws://127.0.0.1:${port}/echo`, {
          events: Events.client({ default: {} }),
          reconnect: Schedule.spaced("20 millis").pipe(
            Schedule.intersect(Schedule.recurs(250)),
            Schedule.tapInput((error: Errors.HandshakeRejected | Errors.HandshakeError) => Queue.offer(failures, error))
          ),
          retryFirstDial: true
        }))
        const refused = yield* Queue.take(failures).pipe(deadline(5, "failed first attempt"))
        assert.deepStrictEqual([refused._tag, refused._tag === "HandshakeError" && refused.reason], [
          "HandshakeError",
          "Open"
        ])
        const { url } = yield* startServer({ events: captureEvents, idGenerator: () => "late" }, port)
        assert.strictEqual(url, `ws://127.0.0.1:${port}/echo`)
        const conn = yield* Fiber.join(dialing).pipe(deadline(5, "connection"))
        assert.deepStrictEqual(yield* conn.currentState, { _tag: "Open", id: "late" })
        assert.strictEqual(conn.reconnectTries, 0)
        yield* conn.connect("default")
      }))

    it.scopedLive("retryFirstDial: when the schedule gives up, dial fails with the last error; without it, at once", () =>
      Effect.gen(function*() {
        const url = `ws://127.0.0.1:${yield* freePort}/echo`
        let retried = 0
        const counting = Schedule.recurs(2).pipe(Schedule.tapInput(() => Effect.sync(() => retried++)))
        const error = yield* Effect.flip(dial(url, { reconnect: counting, retryFirstDial: true }))
        assert.deepStrictEqual([error._tag, error._tag === "HandshakeError" && error.reason], [
          "HandshakeError",
          "Open"
        ])
        assert.strictEqual(retried, 3)
        retried = 0
        yield* Effect.flip(dial(url, { reconnect: counting }))
        assert.strictEqual(retried, 0)
      }))

    it.scopedLive("a refused upgrade carries its HTTP status; 401, 403 and 404 are not retried, 408, 429 and 503 are", () =>
      Effect.gen(function*() {
        for (const status of [401, 403, 404, 408, 429, 503]) {
          const { upgrades, url } = yield* refusingServer(status)
          const error = yield* Effect.flip(
            dial(url, { reconnect: Schedule.recurs(2), retryFirstDial: true, reconnectProbe: "direct" })
          )
          assert.deepStrictEqual([error._tag, error._tag === "HandshakeError" && error.status], [
            "HandshakeError",
            status
          ])
          assert.strictEqual(
            error.message,
            `handshake failed (Open, HTTP ${status}): the server answered the upgrade with ${status} ${
              Http.STATUS_CODES[status]
            }`
          )
          assert.strictEqual(upgrades(), status === 408 || status === 429 || status === 503 ? 3 : 1, `${status}`)
        }
      }))

    it.scopedLive("gives up after the schedule's attempts", () =>
      Effect.gen(function*() {
        const { server, url } = yield* startServer({ events: captureEvents, idGenerator: () => "lonely" })
        const conn = yield* dial(url, {
          events: Events.client({ default: {} }),
          reconnect: Schedule.recurs(2)
        })
        yield* server.shutdown
        yield* conn.awaitClose
        assert.strictEqual((yield* conn.currentState)._tag, "Closed")
      }))
  })

  it.scopedLive("a server-side Deferred proves the client answers within its handler order", () =>
    Effect.gen(function*() {
      const done = yield* Deferred.make<string>()
      const events = Events.namespaces({
        default: {
          _OnNamespaceConnected: (ns) =>
            Effect.flatMap(ns.ask("first", ""), (reply) => Deferred.succeed(done, Message.bodyText(reply))).pipe(
              Effect.asVoid
            )
        }
      })
      const { url } = yield* startServer({ events })
      const conn = yield* dial(url, {
        events: Events.client({ default: { first: () => Effect.succeed(Reply.text("answered")) } })
      })
      yield* conn.connect("default")
      assert.strictEqual(yield* Deferred.await(done), "answered")
    }))
})
