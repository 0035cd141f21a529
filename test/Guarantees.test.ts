/**
 * The ordering and timing guarantees of README's "Delivery guarantees", proven with
 * the test kit under TestClock: no sockets, no real sleeps.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as Reply from "../src/Reply.js"
import * as Server from "../src/Server.js"
import * as TestServer from "../src/TestServer.js"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

const bodies = (messages: ReadonlyArray<Message.Message>) => messages.map(Message.bodyText)

/** The next `n` messages a client receives. */
const take = (client: TestServer.TestClient, n: number) => Effect.forEach(range(n), () => client.next)

/** The next `Disconnected` lifecycle event. */
const nextDisconnect = (events: Queue.Dequeue<Server.ServerEvent>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100; i++) {
      const event = yield* Queue.take(events)
      if (event._tag === "Disconnected") return { id: event.conn.id, code: event.code, reason: event.reason }
    }
    return yield* Effect.die(new Error("no Disconnected event"))
  })

const lifecycle: Effect.Effect<Queue.Dequeue<Server.ServerEvent>, never, Server.Server | Scope.Scope> = Effect
  .flatMap(Server.Server, (server) => server.subscribe)

const broadcastAll = Events.namespaces({ default: { chat: (ns, msg) => ns.broadcast(msg) } })

/** Connects clients with these ids to namespace `default`. */
const connectAll = (ids: ReadonlyArray<string>) =>
  Effect.forEach(ids, (id) =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect({ id })
      yield* client.connect("default")
      return client
    }))

describe("Delivery guarantees", () => {
  describe("order", () => {
    it.effect("FIFO per receiver: a handler's emits, sends and broadcasts arrive in the order they were made", () =>
      Effect.gen(function*() {
        const [alice, bob] = yield* connectAll(["alice", "bob"])
        const ns = yield* alice.client.namespace("default")
        yield* ns.emit("burst")
        assert.deepStrictEqual(bodies(yield* take(alice, 30)), range(30).map(String))
        assert.deepStrictEqual(bodies(yield* take(bob, 10)), range(10).map((i) => String(i * 3 + 2)))
        yield* alice.expectNone
        yield* bob.expectNone
      }).pipe(Effect.provide(TestServer.layer({
        events: Events.namespaces({
          default: {
            // in turn: an emit to this connection, a send to its id, a broadcast to the namespace
            burst: (ns) =>
              Effect.forEach(range(30), (i): Effect.Effect<void, unknown, Server.Server> => {
                const message = { namespace: "default", event: "n", body: String(i) }
                if (i % 3 === 0) return ns.emit("n", String(i))
                if (i % 3 === 1) return Effect.flatMap(Server.Server, (server) => server.send(ns.conn.id, message))
                return ns.broadcast(message)
              }, { discard: true })
          }
        })
      }))))

    it.effect("FIFO per sender: a connection's messages are handled one at a time, in the order it sent them", () =>
      Effect.gen(function*() {
        const handled = yield* Ref.make<ReadonlyArray<number>>([])
        const started = yield* Deferred.make<void>()
        const program = Effect.gen(function*() {
          const client = yield* TestServer.connect()
          const ns = yield* client.connect("default")
          // the first message's handler takes the longest: concurrent handling would reverse the order
          for (let i = 0; i < 20; i++) yield* ns.emit("work", String(i))
          yield* Deferred.await(started)
          yield* TestClock.adjust("1 second")
          yield* client.sync
          assert.deepStrictEqual(yield* Ref.get(handled), range(20))
        })
        yield* Effect.provide(
          program,
          TestServer.layer({
            events: Events.namespaces({
              default: {
                work: (_ns, msg) => {
                  const i = Number(Message.bodyText(msg))
                  return Deferred.succeed(started, void 0).pipe(
                    Effect.zipRight(Effect.sleep(`${20 - i} millis`)),
                    Effect.zipRight(Ref.update(handled, (all) => [...all, i]))
                  )
                }
              }
            })
          })
        )
      }))

    it.effect("concurrent broadcasters (two clients' handlers, two server fibers): every receiver sees one order", () =>
      Effect.gen(function*() {
        const server = yield* Server.Server
        const clients = yield* connectAll(["a", "b", "r1", "r2", "r3"])
        const [a, b] = yield* Effect.forEach(clients.slice(0, 2), (client) => client.client.namespace("default"))
        const fromClient = (ns: typeof a, tag: string) =>
          Effect.forEach(range(50), (i) => Effect.zipRight(ns.emit("chat", `${tag}${i}`), Effect.yieldNow()))
        const fromServer = (tag: string) =>
          Effect.forEach(range(50), (i) =>
            Effect.zipRight(
              server.broadcast({ namespace: "default", event: "chat", body: `${tag}${i}` }),
              Effect.yieldNow()
            ))
        yield* Effect.all([fromClient(a, "a"), fromClient(b, "b"), fromServer("x"), fromServer("y")], {
          concurrency: "unbounded",
          discard: true
        })
        const seen = yield* Effect.forEach(clients, (client) => Effect.map(take(client, 200), bodies))
        for (const order of seen) assert.deepStrictEqual(order, seen[0])
        for (const tag of ["a", "b", "x", "y"]) {
          assert.deepStrictEqual(seen[0].filter((body) => body.startsWith(tag)), range(50).map((i) => `${tag}${i}`))
        }
      }).pipe(Effect.provide(TestServer.layer({ events: broadcastAll }))))
  })

  describe("a paused receiver in the default mode: its policy drops, nobody else is affected", () => {
    /** Ten broadcasts; the readers read each before the next is sent, the paused one reads nothing. */
    const withPausedReceiver = <A, E>(
      strategy: "sliding" | "dropping",
      f: (slow: TestServer.TestClient, readers: ReadonlyArray<TestServer.TestClient>) => Effect.Effect<A, E>
    ) =>
      Effect.gen(function*() {
        const server = yield* Server.Server
        const [slow, ...readers] = yield* connectAll(["slow", "reader-1", "reader-2"])
        yield* slow.pause
        for (let i = 0; i < 10; i++) {
          yield* server.broadcast({ namespace: "default", event: "n", body: String(i) })
          for (const reader of readers) yield* reader.expect({ event: "n", body: String(i) })
        }
        for (const reader of readers) assert.strictEqual((yield* reader.stats).dropped, 0)
        return yield* f(slow, readers)
      }).pipe(Effect.provide(TestServer.layer({ events: broadcastAll, outbox: { capacity: 4, strategy } })))

    for (
      const { keeps, kept, strategy } of [
        { strategy: "sliding", keeps: "newest", kept: ["6", "7", "8", "9"] },
        { strategy: "dropping", keeps: "oldest", kept: ["0", "1", "2", "3"] }
      ] as const
    ) {
      it.effect(`${strategy}: the paused receiver keeps the ${keeps} N`, () =>
        withPausedReceiver(strategy, (slow, readers) =>
          Effect.gen(function*() {
            const stats = yield* slow.stats
            assert.deepStrictEqual([stats.outboxSize, stats.dropped], [4, 6])
            yield* slow.resume
            assert.deepStrictEqual(bodies(yield* take(slow, 4)), [...kept])
            yield* slow.expectNone
            for (const reader of readers) yield* reader.expectNone
          })))
    }

    it.scoped("disconnect: the paused receiver is closed with 1008 \"slow consumer\" at its first overflow", () =>
      Effect.gen(function*() {
        const events = yield* lifecycle
        const server = yield* Server.Server
        const [slow, ...readers] = yield* connectAll(["slow", "reader-1", "reader-2"])
        yield* slow.pause
        const broadcast = (i: number) =>
          Effect.gen(function*() {
            yield* server.broadcast({ namespace: "default", event: "n", body: String(i) })
            for (const reader of readers) yield* reader.expect({ event: "n", body: String(i) })
          })
        for (let i = 0; i < 4; i++) yield* broadcast(i)
        assert.isFalse(yield* slow.conn.isClosed)
        yield* broadcast(4)
        assert.isTrue(yield* slow.conn.isClosed)
        assert.deepStrictEqual(yield* nextDisconnect(events), { id: "slow", code: 1008, reason: "slow consumer" })
        // it never read the close frame: to the client the connection was dropped
        assert.deepStrictEqual(yield* slow.closed, { code: 1006, reason: "" })
        for (let i = 5; i < 10; i++) yield* broadcast(i)
        for (const reader of readers) yield* reader.expectNone
        assert.strictEqual(yield* server.connectionCount, 2)
      }).pipe(
        Effect.provide(TestServer.layer({ events: broadcastAll, outbox: { capacity: 4, strategy: "disconnect" } }))
      ))
  })

  describe("strict mode", () => {
    const lossless = (name: string, strictLayer: boolean, strictCall: boolean) =>
      it.effect(`${name}: lossless and in the same order at every receiver while one is paused`, () =>
        Effect.gen(function*() {
          const server = yield* Server.Server
          const [slow, fast] = yield* connectAll(["slow", "fast"])
          yield* slow.pause
          const broadcaster = (tag: string) =>
            Effect.forEach(range(10), (i) =>
              Effect.zipRight(
                server.broadcast(
                  { namespace: "default", event: "n", body: `${tag}${i}` },
                  strictCall ? { strict: true } : undefined
                ),
                Effect.yieldNow()
              ))
          const broadcasters = yield* Effect.fork(
            Effect.all([broadcaster("a"), broadcaster("b")], { concurrency: "unbounded", discard: true })
          )
          // four fit in the paused one's outbox; the fifth reaches the fast one, then waits
          const first = bodies(yield* take(fast, 5))
          yield* fast.expectNone
          assert.isTrue(Option.isNone(yield* Fiber.poll(broadcasters)))
          const stats = yield* slow.stats
          assert.deepStrictEqual([stats.outboxSize, stats.dropped], [4, 0])
          yield* slow.resume
          yield* Fiber.join(broadcasters)
          const fastAll = [...first, ...bodies(yield* take(fast, 15))]
          const slowAll = bodies(yield* take(slow, 20))
          assert.deepStrictEqual(slowAll, fastAll)
          for (const tag of ["a", "b"]) {
            assert.deepStrictEqual(fastAll.filter((body) => body.startsWith(tag)), range(10).map((i) => `${tag}${i}`))
          }
          assert.strictEqual((yield* slow.stats).dropped, 0)
        }).pipe(Effect.provide(TestServer.layer({
          events: broadcastAll,
          outbox: { capacity: 4 },
          strict: strictLayer
        }))))

    lossless("Server.layer({ strict: true })", true, false)
    lossless("broadcast(msg, { strict: true })", false, true)

    it.effect("strict with except: the excepted connection gets nothing, the others everything", () =>
      Effect.gen(function*() {
        const server = yield* Server.Server
        const [slow, fast, skipped] = yield* connectAll(["slow", "fast", "skipped"])
        yield* slow.pause
        const broadcasts = yield* Effect.fork(
          Effect.forEach(range(6), (i) =>
            server.broadcast({ namespace: "default", event: "n", body: String(i) }, {
              strict: true,
              except: skipped.conn
            }), { discard: true })
        )
        assert.deepStrictEqual(bodies(yield* take(fast, 5)), ["0", "1", "2", "3", "4"])
        yield* slow.resume
        yield* Fiber.join(broadcasts)
        assert.deepStrictEqual(bodies(yield* take(fast, 1)), ["5"])
        assert.deepStrictEqual(bodies(yield* take(slow, 6)), ["0", "1", "2", "3", "4", "5"])
        yield* skipped.expectNone
      }).pipe(Effect.provide(TestServer.layer({ events: broadcastAll, outbox: { capacity: 4 } }))))

    it.effect("a handler's broadcastOthers on a strict server skips its sender and waits for a paused receiver", () =>
      Effect.gen(function*() {
        const [sender, slow, fast] = yield* connectAll(["sender", "slow", "fast"])
        const ns = yield* sender.client.namespace("default")
        yield* slow.pause
        for (let i = 0; i < 6; i++) yield* ns.emit("relay", String(i))
        assert.deepStrictEqual(bodies(yield* take(fast, 5)), ["0", "1", "2", "3", "4"])
        yield* slow.resume
        assert.deepStrictEqual(bodies(yield* take(fast, 1)), ["5"])
        assert.deepStrictEqual(bodies(yield* take(slow, 6)), ["0", "1", "2", "3", "4", "5"])
        assert.strictEqual((yield* slow.stats).dropped, 0)
        yield* sender.expectNone
      }).pipe(Effect.provide(TestServer.layer({
        events: Events.merge(
          broadcastAll,
          Events.namespaces({ default: { relay: (ns, msg) => ns.broadcastOthers("n", msg.body) } })
        ),
        outbox: { capacity: 4 },
        strict: true
      }))))

    it.scoped("a receiver still full after writeTimeout is closed at exactly that virtual time", () =>
      Effect.gen(function*() {
        const events = yield* lifecycle
        const server = yield* Server.Server
        const [slow, fast] = yield* connectAll(["slow", "fast"])
        yield* slow.pause
        const broadcasts = yield* Effect.fork(
          Effect.forEach(range(10), (i) => server.broadcast({ namespace: "default", event: "n", body: String(i) }))
        )
        assert.deepStrictEqual(bodies(yield* take(fast, 5)), ["0", "1", "2", "3", "4"])
        yield* TestClock.adjust("2999 millis")
        assert.isFalse(yield* slow.conn.isClosed)
        assert.isTrue(Option.isNone(yield* Fiber.poll(broadcasts)))
        yield* TestClock.adjust("1 millis")
        assert.isTrue(yield* slow.conn.isClosed)
        assert.deepStrictEqual(yield* nextDisconnect(events), { id: "slow", code: 1008, reason: "slow consumer" })
        yield* Fiber.join(broadcasts)
        assert.deepStrictEqual(bodies(yield* take(fast, 5)), ["5", "6", "7", "8", "9"])
        assert.isFalse(yield* fast.isClosed)
      }).pipe(Effect.provide(TestServer.layer({
        events: broadcastAll,
        outbox: { capacity: 4 },
        strict: { writeTimeout: "3 seconds" }
      }))))
  })

  describe("timeouts in virtual time", () => {
    it.effect("a server ask fails at exactly its timeout; the late reply is dropped", () =>
      Effect.gen(function*() {
        const dispatched = yield* Ref.make(0)
        const replied = yield* Deferred.make<void>()
        const program = Effect.gen(function*() {
          const server = yield* Server.Server
          const alice = yield* TestServer.connect({
            id: "alice",
            events: Events.client({
              default: {
                slow: () =>
                  Effect.sleep("3 seconds").pipe(
                    Effect.zipRight(Deferred.succeed(replied, void 0)),
                    Effect.as(Reply.text("late"))
                  ),
                quick: () => Effect.succeed(Reply.text("on time"))
              }
            })
          })
          yield* alice.connect("default")
          const ask = yield* Effect.fork(
            server.ask({ to: "alice", namespace: "default", event: "slow" }, { timeout: "2 seconds" })
          )
          yield* alice.expect("slow")
          yield* TestClock.adjust("1999 millis")
          assert.isTrue(Option.isNone(yield* Fiber.poll(ask)))
          yield* TestClock.adjust("1 millis")
          const error = yield* Effect.flip(Fiber.join(ask))
          assert.strictEqual(error._tag, "AskTimeout")
          // the client answers at 3 s; the round trip proves the server has read that reply
          yield* TestClock.adjust("1 second")
          yield* Deferred.await(replied)
          yield* alice.sync
          assert.strictEqual(yield* Ref.get(dispatched), 0)
          const reply = yield* server.ask({ to: "alice", namespace: "default", event: "quick" })
          assert.strictEqual(Message.bodyText(reply), "on time")
        })
        yield* Effect.provide(
          program,
          TestServer.layer({
            events: Events.namespaces({ default: { slow: () => Ref.update(dispatched, (n) => n + 1) } })
          })
        )
      }))

    it.effect("a client ask fails at exactly its timeout; the late reply is dropped", () =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const replied = yield* Deferred.make<void>()
        const program = Effect.gen(function*() {
          const dispatched = yield* Ref.make(0)
          const client = yield* TestServer.connect({
            events: Events.client({ default: { slow: () => Ref.update(dispatched, (n) => n + 1) } })
          })
          const ns = yield* client.connect("default")
          const ask = yield* Effect.fork(ns.ask("slow", "", { timeout: "2 seconds" }))
          yield* Deferred.await(started)
          yield* TestClock.adjust("1999 millis")
          assert.isTrue(Option.isNone(yield* Fiber.poll(ask)))
          yield* TestClock.adjust("1 millis")
          const error = yield* Effect.flip(Fiber.join(ask))
          assert.strictEqual(error._tag, "AskTimeout")
          yield* TestClock.adjust("1 second")
          yield* Deferred.await(replied)
          yield* client.sync
          assert.strictEqual(yield* Ref.get(dispatched), 0)
          yield* client.expectNone
          assert.strictEqual(Message.bodyText(yield* ns.ask("quick")), "on time")
        })
        yield* Effect.provide(
          program,
          TestServer.layer({
            events: Events.namespaces({
              default: {
                slow: () =>
                  Deferred.succeed(started, void 0).pipe(
                    Effect.zipRight(Effect.sleep("3 seconds")),
                    Effect.zipRight(Deferred.succeed(replied, void 0)),
                    Effect.as(Reply.text("late"))
                  ),
                quick: () => Effect.succeed(Reply.text("on time"))
              }
            })
          })
        )
      }))

    it.scoped("a silent client is closed exactly pingInterval + pingTimeout after it connected; one that answers stays", () =>
      Effect.gen(function*() {
        const events = yield* lifecycle
        const [silent, talker] = yield* connectAll(["silent", "talker"])
        yield* silent.setSilent(true)
        yield* TestClock.adjust("14999 millis")
        assert.isFalse(yield* silent.conn.isClosed)
        assert.isFalse(yield* silent.isClosed)
        yield* TestClock.adjust("1 millis")
        assert.isTrue(yield* silent.conn.isClosed)
        assert.deepStrictEqual(yield* nextDisconnect(events), { id: "silent", code: 1006, reason: "ping timeout" })
        assert.deepStrictEqual(yield* silent.closed, { code: 1006, reason: "" })
        yield* TestClock.adjust("1 minute")
        assert.isFalse(yield* talker.isClosed)
      }).pipe(Effect.provide(TestServer.layer({
        events: broadcastAll,
        pingInterval: "10 seconds",
        pingTimeout: "5 seconds"
      }))))

    it.effect("a silent client is closed even when pings are more frequent than the pong timeout", () =>
      Effect.gen(function*() {
        const [silent, talker] = yield* connectAll(["silent", "talker"])
        yield* silent.setSilent(true)
        // first ping at 10 s, unanswered: its deadline is 40 s, whatever the pings sent meanwhile
        yield* TestClock.adjust("39999 millis")
        assert.isFalse(yield* silent.conn.isClosed)
        yield* TestClock.adjust("1 millis")
        assert.isTrue(yield* silent.conn.isClosed)
        yield* TestClock.adjust("1 minute")
        assert.isFalse(yield* talker.isClosed)
      }).pipe(Effect.provide(TestServer.layer({
        events: broadcastAll,
        pingInterval: "10 seconds",
        pingTimeout: "30 seconds"
      }))))

    it.effect("a socket that never sends M is closed with 1008 at exactly handshakeTimeout", () =>
      Effect.gen(function*() {
        const mute = yield* TestServer.open()
        const polite = yield* TestServer.open()
        yield* polite.send("M")
        assert.isTrue((yield* polite.next).toString().startsWith("A"))
        yield* TestClock.adjust("9999 millis")
        assert.isFalse(yield* mute.isClosed)
        yield* TestClock.adjust("1 millis")
        assert.isTrue(yield* mute.isClosed)
        assert.deepStrictEqual(yield* mute.closed, { code: 1008, reason: "handshake timeout" })
        assert.isFalse(yield* polite.isClosed)
      }).pipe(Effect.provide(TestServer.layer({ events: broadcastAll }))))

    it.effect("an onConnect that outlasts handshakeTimeout is cut off at exactly that time", () =>
      Effect.gen(function*() {
        const dial = yield* Effect.fork(TestServer.connect())
        yield* TestClock.adjust("4999 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(dial)))
        yield* TestClock.adjust("1 millis")
        const error = yield* Effect.flip(Fiber.join(dial))
        assert.deepStrictEqual([error._tag, error.message], [
          "HandshakeError",
          "handshake failed (Closed): the socket closed (1008 handshake timeout) before A<id>"
        ])
      }).pipe(Effect.provide(TestServer.layer({
        events: broadcastAll,
        handshakeTimeout: "5 seconds",
        onConnect: () => Effect.sleep("1 minute")
      }))))

    it.effect("shutdown drains every outbox; a client that does not read is dropped at exactly shutdownTimeout", () =>
      Effect.gen(function*() {
        const server = yield* Server.Server
        const [reader, paused] = yield* connectAll(["reader", "paused"])
        yield* paused.pause
        for (let i = 0; i < 3; i++) yield* server.broadcast({ namespace: "default", event: "n", body: String(i) })
        const shutdown = yield* Effect.fork(server.shutdown)
        assert.deepStrictEqual(bodies(yield* take(reader, 3)), ["0", "1", "2"])
        assert.deepStrictEqual(yield* reader.closed, { code: 1001, reason: "server shutdown" })
        const refused = yield* Effect.flip(TestServer.connect())
        assert.strictEqual(refused._tag, "HandshakeError")
        yield* TestClock.adjust("2999 millis")
        assert.isFalse(yield* paused.conn.isClosed)
        assert.isTrue(Option.isNone(yield* Fiber.poll(shutdown)))
        yield* TestClock.adjust("1 millis")
        assert.isTrue(yield* paused.conn.isClosed)
        yield* Fiber.join(shutdown)
        // its socket was backed up: it is dropped, not closed behind frames it would never read
        assert.deepStrictEqual(yield* paused.closed, { code: 1006, reason: "" })
      }).pipe(Effect.provide(TestServer.layer({ events: broadcastAll, shutdownTimeout: "3 seconds" }))))
  })
})
