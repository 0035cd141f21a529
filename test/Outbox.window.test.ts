/**
 * The write coalescing window (`outbox.flushInterval`): frames queued within it
 * leave in one write when it elapses, not before; replies and requests do not wait;
 * the overflow policy, strict mode, close and shutdown see the frames it holds; a
 * closed connection is not kept by it. Timing under TestClock, a burst over real
 * sockets.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Events from "../src/Events.js"
import { Outbox } from "../src/internal/outbox.js"
import { Timers } from "../src/internal/timers.js"
import * as Message from "../src/Message.js"
import * as Reply from "../src/Reply.js"
import * as Server from "../src/Server.js"
import * as TestServer from "../src/TestServer.js"
import { RecordingSink, turn } from "./outboxSink.js"
import { handshaken, type RawClient, startServer } from "./utils.js"

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => String(from + i))

/** Timers on the test's clock, run for the scope, and a 2 ms window on them. */
const windowed = Effect.gen(function*() {
  const timers = yield* Timers.make
  yield* Effect.forkScoped(timers.run)
  const window = timers.queue<Outbox>(2, (outbox) => outbox.windowElapsed())
  const make = (capacity = 100, strategy: "sliding" | "dropping" = "sliding", maxBytes = Infinity) => {
    const sink = new RecordingSink()
    return {
      sink,
      outbox: new Outbox(capacity, strategy, 1024, maxBytes, sink, { onOutboxOverflow: () => {} }, window)
    }
  }
  return { make, window }
})

describe("Outbox flush window", () => {
  it.scoped("frames queued within the window leave in one write when it elapses, not before", () =>
    Effect.gen(function*() {
      const { make } = yield* windowed
      const { outbox, sink } = make()
      outbox.put("a")
      yield* turn
      outbox.put("b")
      outbox.put("c")
      yield* turn
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(sink.batches, [])
      assert.strictEqual(outbox.length, 3)
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(sink.batches, [["a", "b", "c"]])
      // the next frame opens the next window
      outbox.put("d")
      yield* turn
      assert.deepStrictEqual(sink.batches, [["a", "b", "c"]])
      yield* TestClock.adjust("2 millis")
      assert.deepStrictEqual(sink.batches, [["a", "b", "c"], ["d"]])
      assert.strictEqual(outbox.written, 4)
    }))

  it.scoped("an expedited frame (a reply) leaves at the end of the turn, behind what the window held", () =>
    Effect.gen(function*() {
      const { make } = yield* windowed
      const { outbox, sink } = make()
      outbox.put("a")
      outbox.put("b")
      outbox.putExpedited("reply")
      outbox.put("c") // queued in the same turn: it goes with them
      yield* turn
      assert.deepStrictEqual(sink.batches, [["a", "b", "reply", "c"]])
      // an expedited frame into a clean outbox does not wait either
      outbox.putExpedited("reply2")
      yield* turn
      assert.deepStrictEqual(sink.batches, [["a", "b", "reply", "c"], ["reply2"]])
      yield* TestClock.adjust("2 millis")
      assert.strictEqual(sink.batches.length, 2)
    }))

  it.scoped("a read's flushDirty leaves a window alone; flushNow (before a close) writes what it holds", () =>
    Effect.gen(function*() {
      const { make } = yield* windowed
      const { outbox, sink } = make()
      outbox.put("a")
      outbox.flushDirty()
      assert.deepStrictEqual(sink.batches, [])
      outbox.flushNow()
      assert.deepStrictEqual(sink.batches, [["a"]])
      // the window's flush was cancelled: the next frame opens a window of its own
      outbox.put("b")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(sink.batches, [["a"]])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(sink.batches, [["a"], ["b"]])
    }))

  it.scoped("frames held in the window count against the bounds: written early, or dropped by the policy", () =>
    Effect.gen(function*() {
      const { make } = yield* windowed
      // a socket that reads: a full outbox is written at once, nothing is dropped
      const reading = make(4)
      for (const frame of range(0, 10)) reading.outbox.put(frame)
      assert.deepStrictEqual(reading.sink.batches, [range(0, 4), range(4, 8)])
      yield* TestClock.adjust("2 millis")
      assert.deepStrictEqual(reading.sink.written, range(0, 10))
      assert.strictEqual(reading.outbox.dropped, 0)
      // a backed-up socket: the policy drops, by frames and by bytes
      const sliding = make(4)
      sliding.sink.buffered = 4096
      for (const frame of range(0, 10)) sliding.outbox.put(frame)
      const dropping = make(100, "dropping", 3)
      dropping.sink.buffered = 4096
      for (const frame of ["a", "b", "c", "d"]) dropping.outbox.put(frame)
      yield* TestClock.adjust("2 millis")
      assert.deepStrictEqual(sliding.sink.batches, [])
      assert.strictEqual(sliding.outbox.dropped, 6)
      assert.strictEqual(dropping.outbox.dropped, 1)
      sliding.sink.drain()
      dropping.sink.drain()
      yield* turn
      assert.deepStrictEqual(sliding.sink.written, range(6, 10))
      assert.deepStrictEqual(dropping.sink.written, ["a", "b", "c"])
    }))

  it.scoped("a closed outbox is let go by the window at once", () =>
    Effect.gen(function*() {
      const gc = (globalThis as { gc?: () => void }).gc
      assert.isDefined(gc, "run vitest with --expose-gc (vitest.config.ts)")
      const { make } = yield* windowed
      const refs: Array<WeakRef<Outbox>> = []
      // a helper, so that no variable of this generator holds an outbox
      const openAndClose = () => {
        const { outbox, sink } = make()
        outbox.put("held")
        outbox.close()
        assert.deepStrictEqual(sink.batches, [])
        refs.push(new WeakRef(outbox))
      }
      for (let i = 0; i < 20; i++) openAndClose()
      for (let round = 0; round < 5 && refs.some((ref) => ref.deref() !== undefined); round++) {
        yield* turn
        gc!()
      }
      assert.deepStrictEqual(refs.flatMap((ref, i) => ref.deref() === undefined ? [] : [i]), [], "held by the window")
      // their window still elapses, with nothing to do
      yield* TestClock.adjust("2 millis")
    }))
})

const bodies = (messages: ReadonlyArray<Message.Message>) => messages.map(Message.bodyText)

const take = (client: TestServer.TestClient, n: number) => Effect.forEach(range(0, n), () => client.next)

const events = Events.namespaces({
  default: {
    echo: (_ns, message) => Effect.succeed(Reply.make(message.body))
  }
})

const connectAll = (ids: ReadonlyArray<string>) =>
  Effect.forEach(ids, (id) =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect({ id, headers: { "x-window": id } })
      yield* client.connect("default")
      return client
    }))

const broadcast = (bodies: ReadonlyArray<string>) =>
  Effect.flatMap(
    Server.Server,
    (server) =>
      Effect.forEach(bodies, (body) => server.broadcast({ namespace: "default", event: "n", body }), {
        discard: true
      })
  )

/** What the server's side of a connection holds and has written. */
const held = (client: TestServer.TestClient) =>
  Effect.map(client.conn.stats, (stats) => ({ queued: stats.outboxSize, written: stats.written }))

describe("Server with a flush window", () => {
  it.effect("broadcasts wait for the window and arrive in order; replies do not wait, and carry them", () =>
    Effect.gen(function*() {
      const [alice, bob] = yield* connectAll(["alice", "bob"])
      const before = yield* held(alice)
      yield* broadcast(["1", "2"])
      yield* turn
      yield* broadcast(["3"])
      yield* turn
      assert.deepStrictEqual(yield* held(alice), { queued: 3, written: before.written })
      assert.deepStrictEqual(yield* alice.takeAll, [])
      yield* TestClock.adjust("5 millis")
      assert.deepStrictEqual(bodies(yield* take(alice, 3)), ["1", "2", "3"])
      assert.deepStrictEqual(bodies(yield* take(bob, 3)), ["1", "2", "3"])
      // an ask's reply is not held: it leaves at the end of the turn, behind the broadcast the window held
      yield* broadcast(["4"])
      const ns = yield* alice.client.namespace("default")
      const reply = yield* ns.ask("echo", "hi")
      assert.strictEqual(Message.bodyText(reply), "hi")
      assert.deepStrictEqual(bodies(yield* take(alice, 1)), ["4"])
      assert.deepStrictEqual(yield* held(bob), { queued: 1, written: before.written + 3 })
      yield* TestClock.adjust("5 millis")
      assert.deepStrictEqual(bodies(yield* take(bob, 1)), ["4"])
    }).pipe(Effect.provide(TestServer.layer({ events, outbox: { flushInterval: "5 millis" } }))))

  it.effect("per connection: the outbox function gives one connection a window, another none", () =>
    Effect.gen(function*() {
      const [slow, fast] = yield* connectAll(["slow", "fast"])
      yield* broadcast(["1", "2"])
      assert.deepStrictEqual(bodies(yield* take(fast, 2)), ["1", "2"])
      assert.strictEqual((yield* held(slow)).queued, 2)
      yield* TestClock.adjust("10 millis")
      assert.deepStrictEqual(bodies(yield* take(slow, 2)), ["1", "2"])
    }).pipe(Effect.provide(TestServer.layer({
      events,
      outbox: (request) => request.headers["x-window"] === "slow" ? { flushInterval: "10 millis" } : {}
    }))))

  it.effect("a close writes what the window holds before the close frame", () =>
    Effect.gen(function*() {
      const [alice] = yield* connectAll(["alice"])
      yield* broadcast(["1", "2"])
      yield* alice.conn.close({ code: 4000, reason: "bye" })
      assert.deepStrictEqual(bodies(yield* take(alice, 2)), ["1", "2"])
      assert.deepStrictEqual(yield* alice.closed, { code: 4000, reason: "bye" })
    }).pipe(Effect.provide(TestServer.layer({ events, outbox: { flushInterval: "1 minute" } }))))

  it.effect("shutdown writes what the windows hold, then closes with 1001, without waiting for them", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const [alice, bob] = yield* connectAll(["alice", "bob"])
      yield* broadcast(["1", "2"])
      // the kit's waits have real-time deadlines; the clock is never moved
      const shutdown = yield* Effect.fork(server.shutdown)
      for (const client of [alice, bob]) {
        assert.deepStrictEqual(bodies(yield* take(client, 2)), ["1", "2"])
        assert.deepStrictEqual(yield* client.closed, { code: 1001, reason: "server shutdown" })
      }
      yield* Fiber.join(shutdown)
    }).pipe(Effect.provide(TestServer.layer({ events, outbox: { flushInterval: "1 minute" } }))))

  it.effect("strict mode: a broadcaster waits for room in a full outbox; nothing is lost or reordered", () =>
    Effect.gen(function*() {
      const [reader, paused] = yield* connectAll(["reader", "paused"])
      yield* paused.pause
      const sent = range(0, 12)
      const broadcasting = yield* Effect.fork(broadcast(sent))
      // the reader's full outbox is written at once; the broadcaster waits for the paused one's room
      assert.deepStrictEqual(bodies(yield* take(reader, 4)), range(0, 4))
      assert.isTrue(Option.isNone(yield* Fiber.poll(broadcasting)))
      yield* paused.resume
      for (let i = 0; i < 20 && Option.isNone(yield* Fiber.poll(broadcasting)); i++) {
        yield* TestClock.adjust("2 millis")
      }
      yield* Fiber.join(broadcasting)
      yield* TestClock.adjust("2 millis")
      assert.deepStrictEqual(bodies(yield* take(paused, 12)), sent)
      assert.deepStrictEqual(bodies(yield* take(reader, 8)), range(4, 12))
      assert.strictEqual((yield* paused.conn.stats).dropped, 0)
    }).pipe(
      Effect.provide(TestServer.layer({ events, strict: true, outbox: { capacity: 4, flushInterval: "2 millis" } }))
    ))
})

const connected = (url: string) =>
  Effect.gen(function*() {
    const { client } = yield* handshaken(url)
    yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
    assert.strictEqual(yield* client.nextText, "$c;;;;;;")
    return client
  })

const receiveAll = (client: RawClient, count: number) =>
  Effect.gen(function*() {
    const received: Array<string> = []
    for (let i = 0; i < count; i++) {
      const frame = yield* client.next
      const text = typeof frame === "string" ? frame : new TextDecoder().decode(frame)
      received.push(text.slice(text.indexOf(";0;0;") + 5))
    }
    return received
  })

describe("Flush window over real sockets", () => {
  it.scopedLive("a burst within the window arrives intact and in order, across frame length classes", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events, outbox: { flushInterval: "2 millis" } })
      const clients = yield* Effect.all([connected(url), connected(url)])
      const sizes = [0, 1, 100, 125, 126, 127, 1000, 65535, 65536, 100_000]
      const sent = Array.from({ length: 300 }, (_, i) => `${i}:` + "é".repeat(sizes[i % sizes.length] >> 1))
      for (const [i, body] of sent.entries()) {
        yield* server.broadcast({ namespace: "default", event: "n", body })
        if (i % 7 === 0) yield* turn
      }
      for (const client of clients) assert.deepStrictEqual(yield* receiveAll(client, sent.length), sent)
    }))
})
