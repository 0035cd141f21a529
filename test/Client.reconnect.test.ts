/**
 * The client's reconnect under TestClock and a fixed `Random`, with the test kit's
 * in-memory transport behind a door the test opens, holds or shuts: the jittered
 * schedule, what is retried, `Reconnecting`, the offline queue and the probe.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import * as Client from "../src/Client.js"
import * as Errors from "../src/Errors.js"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as Reply from "../src/Reply.js"
import * as TestServer from "../src/TestServer.js"
import type { RawSocket } from "../src/Transport.js"
import { Refused } from "./fixtures.js"

/** Dies after a real (not virtual) second: every wait of these tests has its own deadline. */
const within = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string): Effect.Effect<A, E, R> =>
  TestServices.provideWithLive(
    effect,
    Effect.timeoutFailCause({
      duration: Duration.seconds(1),
      onTimeout: () => Cause.die(new Error(`no ${what} within 1 s`))
    })
  )

/**
 * The test kit's transport behind a door: `open` lets attempts through, `hold`
 * keeps the next attempt waiting until the door opens, `refuse(error)` fails
 * attempts. Every attempt is recorded with its virtual time.
 */
const makeDoor = Effect.gen(function*() {
  const testServer = yield* TestServer.TestServer
  const attempts = yield* Queue.unbounded<number>()
  const latch = yield* Effect.makeLatch(true)
  let refusal: Errors.HandshakeError | undefined
  let socket: RawSocket | undefined
  const transport: Client.ClientTransport = {
    open: (url, options) =>
      Effect.gen(function*() {
        yield* Queue.offer(attempts, yield* Clock.currentTimeMillis)
        if (refusal !== undefined) return yield* Effect.fail(refusal)
        yield* latch.await
        const opened = yield* testServer.clientTransport.open(url, options)
        socket = opened.socket
        return opened
      })
  }
  return {
    transport,
    /** the virtual time of the next attempt */
    attempt: within(Queue.take(attempts), "attempt"),
    attemptsSoFar: Effect.map(Queue.takeAll(attempts), Chunk.toReadonlyArray),
    open: Effect.zipRight(Effect.sync(() => (refusal = undefined)), latch.open),
    hold: Effect.zipRight(Effect.sync(() => (refusal = undefined)), latch.close),
    refuse: (error: Errors.HandshakeError) => Effect.sync(() => (refusal = error)),
    /** the network drops the connection (1006 on both sides) */
    drop: Effect.sync(() => socket!.terminate())
  }
})

type Door = Effect.Effect.Success<typeof makeDoor>

const dialThrough = <E = never, R = never>(
  door: Door,
  options: Client.DialOptions<E, R>
): Effect.Effect<Client.ClientConn, Errors.HandshakeRejected | Errors.HandshakeError, Scope.Scope | R> =>
  Client.dial("ws://effect-neffos.test/", { reconnectProbe: "direct", ...options }).pipe(
    Effect.provideService(Client.ClientTransport, door.transport)
  )

/** Waits until the connection's state matches. */
const awaitState = (conn: Client.ClientConn, tag: Client.ConnectionState["_tag"], attempt?: number) =>
  within(
    conn.state.pipe(
      Stream.filter((state) =>
        state._tag === tag && (attempt === undefined || ("attempt" in state && state.attempt === attempt))
      ),
      Stream.runHead,
      Effect.map(Option.getOrThrow)
    ),
    `state ${tag}`
  )

/**
 * Forks `operation` and returns once it has been made: the fiber signals, then
 * runs the operation without yielding until it waits (in the offline queue).
 */
const issue = <A, E>(operation: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(Effect.zipRight(Deferred.succeed(started, undefined), operation))
    yield* Deferred.await(started)
    return fiber
  })

const refused = (status?: number) =>
  new Errors.HandshakeError({ reason: "Open", description: "refused by the door", status })

/** Server events that log what the server handled, in order. */
const logging = (log: Queue.Queue<string>) =>
  Events.namespaces({
    default: {
      _OnNamespaceConnected: () => Queue.offer(log, "connected").pipe(Effect.asVoid),
      _OnRoomJoin: (ns, msg) =>
        ns.conn.wasReconnected && msg.room === "vip" ? Effect.fail(new Refused({ message: "not again" })) : Effect.void,
      _OnRoomJoined: (_ns, msg) => Queue.offer(log, `join:${msg.room}`).pipe(Effect.asVoid),
      chat: (_ns, msg) => Queue.offer(log, `chat:${msg.room}:${Message.bodyText(msg)}`).pipe(Effect.asVoid),
      echo: (_ns, msg) =>
        Effect.as(Queue.offer(log, `echo:${msg.room}:${Message.bodyText(msg)}`), Reply.text(Message.bodyText(msg))),
      silent: () => Effect.zipRight(Queue.offer(log, "silent"), Effect.never)
    }
  })

/** Runs `body` against a test server whose handlers log into the queue it gets. */
const withLog = <A, E>(
  body: (log: Queue.Queue<string>, door: Door) => Effect.Effect<A, E, TestServer.TestServer | Scope.Scope>
) =>
  Effect.gen(function*() {
    const log = yield* Queue.unbounded<string>()
    return yield* Effect.flatMap(makeDoor, (door) => body(log, door)).pipe(
      Effect.provide(TestServer.layer({ events: logging(log), idGenerator: () => "alice" }))
    )
  }).pipe(Effect.scoped)

const next = (log: Queue.Queue<string>) => within(Queue.take(log), "log entry")

const clientEvents = Events.client({ default: {} })

describe("Client reconnect", () => {
  it.effect("the default schedule's full jitter is drawn from Effect's Random: a fixed one decides every wait", () =>
    withLog((_log, door) =>
      Effect.gen(function*() {
        yield* dialThrough(door, { events: clientEvents, reconnect: true }).pipe(
          Effect.withRandom(Random.fixed([0.5, 0.9, 0.1]))
        )
        yield* door.attempt
        yield* door.refuse(refused(503))
        const lost = yield* Clock.currentTimeMillis
        yield* door.drop
        assert.strictEqual(yield* door.attempt, lost)
        yield* TestClock.adjust("1 second")
        // waits of 0.5 x 250 ms, 0.9 x 500 ms, 0.1 x 1 s
        assert.strictEqual(yield* door.attempt, lost + 125)
        assert.strictEqual(yield* door.attempt, lost + 125 + 450)
        assert.strictEqual(yield* door.attempt, lost + 125 + 450 + 100)
      })
    ))

  it.effect("the default schedule caps each wait at 10 s and gives up after 10 attempts", () =>
    withLog((_log, door) =>
      Effect.gen(function*() {
        const conn = yield* dialThrough(door, { events: clientEvents, reconnect: true }).pipe(
          Effect.withRandom(Random.fixed([0.75]))
        )
        yield* door.attempt
        yield* door.refuse(refused())
        yield* door.drop
        const first = yield* door.attempt
        yield* TestClock.adjust("2 minutes")
        yield* within(conn.awaitClose, "close")
        const times = [first, ...(yield* door.attemptsSoFar)]
        assert.strictEqual(times.length, 10)
        // 250 ms doubling, capped at 10 s, then 0.75 of that
        assert.deepStrictEqual(
          times.slice(1).map((time, i) => time - times[i]),
          [250, 500, 1000, 2000, 4000, 8000, 10000, 10000, 10000].map((ms) => ms * 0.75)
        )
        assert.strictEqual((yield* conn.currentState)._tag, "Closed")
      })
    ))

  it.effect("an upgrade refused with 401 is not retried; `while` can decide otherwise", () =>
    withLog((_log, door) =>
      Effect.gen(function*() {
        const conn = yield* dialThrough(door, { events: clientEvents, reconnect: Schedule.spaced("1 second") })
        yield* door.attempt
        yield* door.refuse(refused(401))
        yield* door.drop
        yield* door.attempt
        yield* within(conn.awaitClose, "close")
        const state = yield* conn.currentState
        assert.deepStrictEqual(state, {
          _tag: "Closed",
          code: 1000,
          reason: "handshake failed (Open, HTTP 401): refused by the door"
        })

        yield* door.open
        const patient = yield* dialThrough(door, {
          events: clientEvents,
          reconnect: { schedule: Schedule.spaced("1 second"), while: (error) => error.status === 401 }
        })
        yield* door.attempt
        yield* door.refuse(refused(401))
        yield* door.drop
        yield* door.attempt
        yield* TestClock.adjust("1 second")
        yield* door.attempt
        yield* door.open
        yield* TestClock.adjust("1 second")
        yield* door.attempt
        yield* awaitState(patient, "Open")
        assert.strictEqual(patient.reconnectTries, 3)
      })
    ))

  it.effect("while reconnecting, emits, asks and requests fail with Reconnecting, and so does an ask in flight", () =>
    withLog((log, door) =>
      Effect.gen(function*() {
        const conn = yield* dialThrough(door, { events: clientEvents, reconnect: Schedule.spaced("1 second") })
        yield* door.attempt
        const ns = yield* conn.connect("default")
        const room = yield* ns.joinRoom("lobby")
        assert.deepStrictEqual([yield* next(log), yield* next(log)], ["connected", "join:lobby"])
        const inFlight = yield* Effect.fork(ns.ask("silent"))
        assert.strictEqual(yield* next(log), "silent")
        yield* door.hold
        yield* door.drop
        yield* door.attempt
        yield* awaitState(conn, "Reconnecting", 1)
        assert.deepStrictEqual(
          yield* Effect.flip(Fiber.join(inFlight)),
          new Errors.Reconnecting({ id: "alice", attempt: 0 })
        )
        const failures = yield* Effect.forEach(
          [
            ns.emit("chat", "x"),
            room.emit("chat", "x"),
            ns.ask("echo", "x"),
            room.ask("echo", "x"),
            ns.joinRoom("other"),
            room.leave(),
            conn.connect("default"),
            ns.disconnect()
          ] as ReadonlyArray<Effect.Effect<unknown, unknown>>,
          Effect.flip
        )
        for (const failure of failures) {
          assert.deepStrictEqual(failure, new Errors.Reconnecting({ id: "alice", attempt: 1 }))
        }
        yield* door.open
        yield* awaitState(conn, "Open")
        assert.deepStrictEqual([yield* next(log), yield* next(log)], ["connected", "join:lobby"])
        yield* room.emit("chat", "back")
        assert.strictEqual(yield* next(log), "chat:lobby:back")
        yield* conn.close()
        assert.strictEqual((yield* Effect.flip(ns.emit("chat", "x")))._tag, "ConnectionClosed")
      })
    ))

  describe("the offline queue", () => {
    it.effect("what is sent while reconnecting goes out in order once namespaces and rooms are restored", () =>
      withLog((log, door) =>
        Effect.gen(function*() {
          const conn = yield* dialThrough(door, {
            events: clientEvents,
            reconnect: Schedule.spaced("1 second"),
            offline: { capacity: 10 }
          })
          yield* door.attempt
          const ns = yield* conn.connect("default")
          const room = yield* ns.joinRoom("lobby")
          assert.deepStrictEqual([yield* next(log), yield* next(log)], ["connected", "join:lobby"])
          yield* door.hold
          yield* door.drop
          yield* door.attempt
          const first = yield* issue(room.emit("chat", "1"))
          const second = yield* issue(ns.emit("chat", "2"))
          const asked = yield* issue(room.ask("echo", "3"))
          const queued: ReadonlyArray<Fiber.Fiber<unknown, unknown>> = [
            first,
            second,
            asked,
            yield* issue(ns.joinRoom("second")),
            yield* issue(room.emit("chat", "4"))
          ]
          for (const fiber of queued) assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "waits in the queue")
          yield* door.open
          const later = yield* issue(ns.emit("chat", "5"))
          yield* within(Effect.forEach([...queued, later], Fiber.join), "queued operations")
          assert.strictEqual(Message.bodyText(yield* Fiber.join(asked)), "3")
          const seen: Array<string> = []
          for (let i = 0; i < 8; i++) seen.push(yield* next(log))
          assert.deepStrictEqual(seen, [
            "connected",
            "join:lobby",
            "chat:lobby:1",
            "chat::2",
            "echo:lobby:3",
            "join:second",
            "chat:lobby:4",
            "chat::5"
          ])
        })
      ))

    it.effect("when it is full, dropping fails the newest and sliding the oldest with OfflineQueueFull", () =>
      withLog((log, door) =>
        Effect.gen(function*() {
          for (const strategy of ["dropping", "sliding"] as const) {
            const conn = yield* dialThrough(door, {
              events: clientEvents,
              reconnect: Schedule.spaced("1 second"),
              offline: { capacity: 2, strategy }
            })
            yield* door.attempt
            const ns = yield* conn.connect("default")
            assert.strictEqual(yield* next(log), "connected")
            yield* door.hold
            yield* door.drop
            yield* door.attempt
            const fibers = [
              yield* issue(ns.emit("chat", `${strategy}1`)),
              yield* issue(ns.emit("chat", `${strategy}2`)),
              yield* issue(ns.emit("chat", `${strategy}3`))
            ]
            const dropped = strategy === "dropping" ? fibers[2] : fibers[0]
            assert.deepStrictEqual(
              yield* within(Effect.flip(Fiber.join(dropped)), "drop"),
              new Errors.OfflineQueueFull({ id: "alice", capacity: 2 })
            )
            yield* door.open
            yield* within(Fiber.join(Fiber.all(fibers.filter((fiber) => fiber !== dropped))), "queued emits")
            const sent = strategy === "dropping" ? [1, 2] : [2, 3]
            assert.deepStrictEqual(
              [yield* next(log), yield* next(log), yield* next(log)],
              ["connected", ...sent.map((n) => `chat::${strategy}${n}`)]
            )
            yield* conn.close()
          }
        })
      ))

    it.effect("a queued ask keeps its timeout, counted from when it was made", () =>
      withLog((log, door) =>
        Effect.gen(function*() {
          const conn = yield* dialThrough(door, {
            events: clientEvents,
            reconnect: Schedule.spaced("1 second"),
            offline: { capacity: 10 }
          })
          yield* door.attempt
          const ns = yield* conn.connect("default")
          assert.strictEqual(yield* next(log), "connected")
          yield* door.hold
          yield* door.drop
          yield* door.attempt
          const asked = yield* issue(ns.ask("echo", "late", { timeout: "5 seconds" }))
          yield* TestClock.adjust("4999 millis")
          assert.isTrue(Option.isNone(yield* Fiber.poll(asked)))
          yield* TestClock.adjust("1 millis")
          const error = yield* within(Effect.flip(Fiber.join(asked)), "timeout")
          assert.deepStrictEqual([error._tag, error._tag === "AskTimeout" && error.event], ["AskTimeout", "echo"])
          yield* door.open
          yield* awaitState(conn, "Open")
          yield* ns.emit("chat", "marker")
          // the timed-out ask was taken out of the queue: it never reached the server
          assert.deepStrictEqual([yield* next(log), yield* next(log)], ["connected", "chat::marker"])
        })
      ))

    it.effect("a queued emit into a room the restore lost fails with BadRoom; a close fails the rest", () =>
      withLog((log, door) =>
        Effect.gen(function*() {
          const conn = yield* dialThrough(door, {
            events: clientEvents,
            reconnect: Schedule.spaced("1 second"),
            offline: { capacity: 10 }
          })
          yield* door.attempt
          const ns = yield* conn.connect("default")
          const vip = yield* ns.joinRoom("vip")
          assert.deepStrictEqual([yield* next(log), yield* next(log)], ["connected", "join:vip"])
          yield* door.hold
          yield* door.drop
          yield* door.attempt
          const lost = yield* issue(vip.emit("chat", "x"))
          const kept = yield* issue(ns.emit("chat", "y"))
          yield* door.open
          assert.deepStrictEqual(
            yield* within(Effect.flip(Fiber.join(lost)), "BadRoom"),
            new Errors.BadRoom({ namespace: "default", room: "vip" })
          )
          yield* within(Fiber.join(kept), "emit")
          assert.deepStrictEqual([yield* next(log), yield* next(log)], ["connected", "chat::y"])

          yield* door.hold
          yield* door.drop
          yield* door.attempt
          const pending = yield* issue(ns.emit("chat", "z"))
          yield* conn.close()
          assert.deepStrictEqual(
            yield* within(Effect.flip(Fiber.join(pending)), "ConnectionClosed"),
            new Errors.ConnectionClosed({ id: "alice" })
          )
        })
      ))

    it.effect("when the schedule gives up, queued operations fail with ConnectionClosed", () =>
      withLog((_log, door) =>
        Effect.gen(function*() {
          const conn = yield* dialThrough(door, {
            events: clientEvents,
            reconnect: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(2))),
            offline: { capacity: 10 }
          })
          yield* door.attempt
          const ns = yield* conn.connect("default")
          yield* door.refuse(refused())
          yield* door.drop
          yield* door.attempt
          const pending: ReadonlyArray<Fiber.Fiber<unknown, unknown>> = [
            yield* issue(ns.emit("chat", "x")),
            yield* issue(ns.ask("echo", "x", { timeout: "1 minute" }))
          ]
          for (const fiber of pending) assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "waits in the queue")
          yield* TestClock.adjust("2 seconds")
          for (const fiber of pending) {
            assert.deepStrictEqual(
              yield* within(Effect.flip(Fiber.join(fiber)), "ConnectionClosed"),
              new Errors.ConnectionClosed({ id: "alice" })
            )
          }
          assert.strictEqual((yield* conn.currentState)._tag, "Closed")
        })
      ))
  })

  it.effect("the HEAD probe goes through the HttpClient in the context", () =>
    withLog((_log, door) =>
      Effect.gen(function*() {
        const probes = yield* Queue.unbounded<string>()
        const httpClient = HttpClient.make((request) =>
          Effect.as(
            Queue.offer(probes, `${request.method} ${request.url}`),
            HttpClientResponse.fromWeb(request, new Response(null, { status: 302 }))
          )
        )
        const conn = yield* Client.dial("ws://effect-neffos.test/chat", {
          events: clientEvents,
          reconnect: Schedule.spaced("1 second")
        }).pipe(
          Effect.provideService(Client.ClientTransport, door.transport),
          Effect.provideService(HttpClient.HttpClient, httpClient)
        )
        yield* door.attempt
        yield* door.drop
        assert.strictEqual(yield* within(Queue.take(probes), "probe"), "HEAD http://effect-neffos.test/chat")
        yield* door.attempt
        yield* awaitState(conn, "Open")
      })
    ))
})
