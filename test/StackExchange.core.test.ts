/**
 * The broker-neutral exchange on an in-memory transport, and its envelope and
 * channel names: what does not need a real broker.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Errors from "effect-neffos/Errors"
import * as Message from "effect-neffos/Message"
import * as StackExchange from "effect-neffos/StackExchange"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as envelope from "../src/internal/envelope.js"
import { Outbox } from "../src/internal/outbox.js"
import { Publisher } from "../src/internal/publisher.js"

// -----------------------------------------------------------------------------
// an in-memory broker
// -----------------------------------------------------------------------------

interface Node {
  readonly handlers: StackExchange.TransportHandlers
  readonly channels: Set<string>
}

const memoryBroker = () => {
  const nodes = new Set<Node>()
  let up = true
  /** while frozen (as by SIGSTOP), the connections stay up but nothing is answered or delivered */
  let frozen: Deferred.Deferred<void> | undefined
  const thawed = Effect.suspend(() => frozen === undefined ? Effect.void : Deferred.await(frozen))
  /** the size of every batch handed to the broker */
  const batches: Array<number> = []
  const unavailable = (operation: string) =>
    Effect.fail(new Errors.StackExchangeError({ operation, reason: "Broker", cause: new Error("down") }))
  const acquire = (handlers: StackExchange.TransportHandlers) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const node: Node = { handlers, channels: new Set() }
        nodes.add(node)
        return node
      }),
      (node) => Effect.sync(() => nodes.delete(node))
    ).pipe(Effect.map((node): StackExchange.Transport => ({
      publish: (batch) =>
        Effect.suspend(() => {
          if (!up) return unavailable("publish")
          batches.push(batch.length)
          return Effect.zipRight(
            thawed,
            Effect.sync(() =>
              batch.map(({ channel, payload }) => {
                let receivers = 0
                for (const other of nodes) {
                  if (!other.channels.has(channel)) continue
                  receivers++
                  // a broker delivers later, never inside the publish call
                  queueMicrotask(() => other.handlers.onMessage(channel, payload))
                }
                return receivers
              })
            )
          )
        }),
      ping: Effect.suspend(() => up ? thawed : unavailable("ping")),
      subscribe: (channels) =>
        Effect.suspend(() => {
          if (!up) return unavailable("subscribe")
          for (const channel of channels) node.channels.add(channel)
          return thawed
        }),
      unsubscribe: (channels) =>
        Effect.suspend(() => {
          if (!up) return unavailable("unsubscribe")
          for (const channel of channels) node.channels.delete(channel)
          return thawed
        })
    })))
  return {
    acquire,
    batches,
    channels: () => Array.from(nodes, (node) => [...node.channels].sort()),
    down: () => {
      up = false
      for (const node of nodes) {
        node.channels.clear()
        node.handlers.onStatus({
          _tag: "Down",
          error: new Errors.StackExchangeError({ operation: "connection", reason: "Broker", cause: new Error("down") })
        })
      }
    },
    up: () => {
      up = true
      for (const node of nodes) node.handlers.onStatus({ _tag: "Up" })
    },
    freeze: () => {
      frozen ??= Deferred.unsafeMake<void>(FiberId.none)
    },
    thaw: () => {
      if (frozen !== undefined) Deferred.unsafeDone(frozen, Effect.void)
      frozen = undefined
    }
  }
}

interface FakeServer extends StackExchange.LocalServer {
  readonly delivered: Array<{ readonly message: Message.Message; readonly to: string | undefined }>
  readonly statuses: Array<StackExchange.Status["_tag"]>
  readonly active: Map<string, StackExchange.Topic>
  /** waits (bounded) until `count` statuses were reported */
  readonly awaitStatuses: (count: number) => Effect.Effect<ReadonlyArray<StackExchange.Status>>
}

const fakeServer = (instanceId: string): FakeServer => {
  const delivered: FakeServer["delivered"] = []
  const statuses: FakeServer["statuses"] = []
  const reported = Effect.runSync(Queue.unbounded<StackExchange.Status>())
  const active = new Map<string, StackExchange.Topic>()
  return {
    instanceId,
    delivered,
    statuses,
    active,
    awaitStatuses: (count) =>
      Effect.map(
        Queue.takeBetween(reported, count, count).pipe(
          Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error(`fewer than ${count} statuses`) }),
          Effect.orDie
        ),
        Chunk.toReadonlyArray
      ),
    topics: () => Array.from(active.values()),
    deliver: (message, { to }) => {
      delivered.push({ message, to })
      return 1
    },
    ask: (request) => Effect.fail(new Errors.ConnectionNotFound({ id: request.to })),
    count: () => 0,
    connectionCount: () => 1,
    close: () => 0,
    reportStatus: (status) => {
      statuses.push(status._tag)
      reported.unsafeOffer(status)
    }
  }
}

const attach = (exchange: StackExchange.StackExchange, server: FakeServer) =>
  Effect.map(exchange.attach(server), (bridge) => {
    const change = (topic: StackExchange.Topic, on: boolean) => {
      if (on) server.active.set(JSON.stringify(topic), topic)
      else server.active.delete(JSON.stringify(topic))
      bridge.topicChanged(topic, on)
    }
    return { bridge, change }
  })

const exchangeOn = (
  broker: ReturnType<typeof memoryBroker>,
  options?: StackExchange.Options
): Effect.Effect<StackExchange.StackExchange, Errors.StackExchangeError, Scope.Scope> =>
  StackExchange.make(broker.acquire, { prefix: "p", requestTimeout: "100 millis", ...options })

const chat = Message.make({ namespace: "chat", event: "say", body: "hi" })
const numbered = (i: number) => Message.make({ namespace: "chat", event: "seq", body: String(i) })
const sequence = (count: number) => Array.from({ length: count }, (_, i) => String(i))

describe("StackExchange core (in-memory broker)", () => {
  it.scopedLive("subscriptions are reference-counted per channel across servers", () =>
    Effect.gen(function*() {
      const broker = memoryBroker()
      const exchange = yield* exchangeOn(broker)
      const one = yield* attach(exchange, fakeServer("one"))
      const two = yield* attach(exchange, fakeServer("two"))
      const topic: StackExchange.Topic = { _tag: "Namespace", namespace: "chat" }
      one.change(topic, true)
      two.change(topic, true)
      yield* exchange.settled
      assert.include(yield* exchange.subscriptions, "p.ns.chat")
      one.change(topic, false)
      yield* exchange.settled
      assert.include(yield* exchange.subscriptions, "p.ns.chat")
      two.change(topic, false)
      yield* exchange.settled
      assert.notInclude(yield* exchange.subscriptions, "p.ns.chat")
      assert.deepStrictEqual(broker.channels(), [yield* exchange.subscriptions])
    }))

  it.scopedLive("a server never receives its own broadcasts; the others on the same exchange do", () =>
    Effect.gen(function*() {
      const broker = memoryBroker()
      const exchange = yield* exchangeOn(broker)
      const serverOne = fakeServer("one")
      const serverTwo = fakeServer("two")
      const one = yield* attach(exchange, serverOne)
      const two = yield* attach(exchange, serverTwo)
      one.change({ _tag: "Namespace", namespace: "chat" }, true)
      two.change({ _tag: "Namespace", namespace: "chat" }, true)
      yield* exchange.settled
      yield* one.bridge.publish(chat, { except: {} })
      // the request round trip below is answered after the broadcast (per-publisher order)
      assert.strictEqual(yield* one.bridge.connectionCount, 2)
      assert.strictEqual(serverOne.delivered.length, 0)
      assert.strictEqual(serverTwo.delivered.length, 1)
      assert.strictEqual(Message.bodyText(serverTwo.delivered[0].message), "hi")
    }))

  it.scopedLive("broker down: fail fast, count, report; back: resubscribe the current topics, then report Up", () =>
    Effect.gen(function*() {
      const broker = memoryBroker()
      const exchange = yield* exchangeOn(broker)
      const server = fakeServer("one")
      const { bridge, change } = yield* attach(exchange, server)
      change({ _tag: "Namespace", namespace: "before" }, true)
      change({ _tag: "Room", namespace: "before", room: "r" }, true)
      yield* exchange.settled

      const failuresBefore = (yield* Metric.value(StackExchange.failures)).count
      broker.down()
      assert.deepStrictEqual(server.statuses, ["Down"])
      const exit = yield* Effect.exit(bridge.publish(chat, { except: {} }))
      assert.isTrue(Exit.isFailure(exit))
      const count = yield* Effect.flip(bridge.connectionCount)
      assert.strictEqual(count._tag, "StackExchangeError")
      assert.isAtLeast((yield* Metric.value(StackExchange.failures)).count - failuresBefore, 3)

      // membership changes while the broker is away
      change({ _tag: "Room", namespace: "before", room: "r" }, false)
      change({ _tag: "Connection", id: "during" }, true)
      broker.up()
      yield* exchange.settled
      assert.deepStrictEqual(server.statuses, ["Down", "Up"])
      assert.deepStrictEqual(broker.channels(), [["p.all", "p.id.during", "p.inbox.one", "p.ns.before"]])
      yield* bridge.publish(chat, { except: {} })
    }))

  it.scopedLive("calls after the server detached are harmless", () =>
    Effect.gen(function*() {
      const broker = memoryBroker()
      const exchange = yield* exchangeOn(broker)
      const { bridge, change } = yield* Effect.scoped(attach(exchange, fakeServer("gone")))
      const failuresBefore = (yield* Metric.value(StackExchange.failures)).count
      change({ _tag: "Namespace", namespace: "late" }, true)
      const error = yield* Effect.flip(bridge.publish(chat, { except: {} }))
      assert.strictEqual(error._tag, "StackExchangeError")
      assert.strictEqual((yield* Effect.flip(bridge.send("x", chat)))._tag, "StackExchangeError")
      assert.strictEqual((yield* Effect.flip(bridge.close("x", 1000, "")))._tag, "StackExchangeError")
      yield* exchange.settled
      assert.deepStrictEqual(yield* exchange.subscriptions, [])
      // not the broker's fault: not counted
      assert.strictEqual((yield* Metric.value(StackExchange.failures)).count, failuresBefore)
    }))

  it.scopedLive("requests complete as soon as every receiver the broker counted has answered", () =>
    Effect.gen(function*() {
      const broker = memoryBroker()
      const exchange = yield* exchangeOn(broker)
      const { bridge } = yield* attach(exchange, fakeServer("one"))
      const started = Date.now()
      const error = yield* Effect.flip(bridge.send("nobody", chat))
      assert.strictEqual(error._tag, "ConnectionNotFound")
      assert.strictEqual(yield* bridge.connectionCount, 1)
      assert.isBelow(Date.now() - started, 100)
    }))

  it.scopedLive("what one event-loop turn publishes leaves as one batch, in call order", () =>
    Effect.gen(function*() {
      const broker = memoryBroker()
      const exchange = yield* exchangeOn(broker)
      const serverTwo = fakeServer("two")
      const one = yield* attach(exchange, fakeServer("one"))
      const two = yield* attach(exchange, serverTwo)
      two.change({ _tag: "Namespace", namespace: "chat" }, true)
      yield* exchange.settled
      broker.batches.length = 0
      for (let i = 0; i < 100; i++) yield* one.bridge.publish(numbered(i), { except: {} })
      // the request is queued behind the broadcasts, in the same turn, and answered after them
      assert.strictEqual(yield* one.bridge.connectionCount, 2)
      assert.strictEqual(broker.batches[0], 101)
      assert.deepStrictEqual(serverTwo.delivered.map(({ message }) => Message.bodyText(message)), sequence(100))
    }))

  it.live("a turn's batch leaves before the turn's socket writes, whatever was queued first", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const sink = { write: () => void log.push("write"), bufferedAmount: () => 0, whenFlushed: (f: () => void) => f() }
      const outbox = new Outbox(16, "sliding", 1024, Infinity, sink, { onOutboxOverflow: () => {} })
      const publisher = new Publisher({ maxPendingPublishes: 16, maxPendingBytes: 1 << 20 }, {
        closed: false,
        connected: true,
        downCause: undefined,
        publish: (batch) => Effect.sync(() => batch.map(() => (log.push("publish"), 1))),
        run: (effect) => void Effect.runFork(effect)
      })
      // the local delivery dirties an outbox first, then the broadcast is queued for the broker
      outbox.put("local frame")
      const refused = publisher.post("broadcast", "chat.ns.chat", {
        _tag: "Broadcast",
        origin: "one",
        to: undefined,
        exceptConnection: undefined,
        exceptId: undefined,
        message: chat
      })
      assert.isUndefined(refused)
      assert.deepStrictEqual(log, [])
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      assert.deepStrictEqual(log, ["publish", "write"])
    }))

  it.scopedLive("beyond maxPendingPublishes nothing waits: publishes are dropped and counted, a confirm fails", () =>
    Effect.gen(function*() {
      const broker = memoryBroker()
      const exchange = yield* exchangeOn(broker, { maxPendingPublishes: 10, brokerTimeout: Duration.infinity })
      const serverTwo = fakeServer("two")
      const one = yield* attach(exchange, fakeServer("one"))
      const two = yield* attach(exchange, serverTwo)
      two.change({ _tag: "Namespace", namespace: "chat" }, true)
      yield* exchange.settled
      const droppedBefore = (yield* Metric.value(StackExchange.droppedPublishes)).count
      const dropped = Effect.map(Metric.value(StackExchange.droppedPublishes), ({ count }) => count - droppedBefore)

      broker.freeze()
      const first = yield* Effect.fork(one.bridge.publish(numbered(0), { except: {}, confirm: true }))
      // the forked publish runs first (the scheduler is FIFO) and is queued before the others
      yield* Effect.yieldNow()
      for (let i = 1; i < 30; i++) yield* one.bridge.publish(numbered(i), { except: {} })
      assert.strictEqual(yield* dropped, 20)
      const refused = yield* Effect.flip(one.bridge.publish(chat, { except: {}, confirm: true }))
      assert.deepStrictEqual([refused.operation, refused.reason], ["publish", "Overloaded"])
      assert.strictEqual(yield* dropped, 21)

      broker.thaw()
      yield* Fiber.join(first)
      assert.strictEqual(yield* one.bridge.connectionCount, 2)
      assert.deepStrictEqual(serverTwo.delivered.map(({ message }) => Message.bodyText(message)), sequence(10))
    }))

  it.scopedLive("a broker that leaves a ping unanswered for brokerTimeout is reported down, and up once it answers", () =>
    Effect.gen(function*() {
      const broker = memoryBroker()
      const exchange = yield* exchangeOn(broker, { brokerTimeout: "100 millis" })
      const server = fakeServer("one")
      const { bridge, change } = yield* attach(exchange, server)
      change({ _tag: "Namespace", namespace: "chat" }, true)
      yield* exchange.settled

      broker.freeze()
      const [down] = yield* server.awaitStatuses(1)
      assert.isTrue(down._tag === "Down" && down.error.reason === "Timeout")
      // while down, what needs the broker fails at once
      assert.strictEqual((yield* Effect.flip(bridge.publish(chat, { except: {} }))).reason, "Down")
      assert.strictEqual((yield* Effect.flip(bridge.connectionCount)).reason, "Down")

      broker.thaw()
      const [up] = yield* server.awaitStatuses(1)
      assert.strictEqual(up._tag, "Up")
      assert.deepStrictEqual(server.statuses, ["Down", "Up"])
      assert.deepStrictEqual(broker.channels(), [["p.all", "p.inbox.one", "p.ns.chat"]])
      yield* bridge.publish(chat, { except: {}, confirm: true })
    }))

  it.scoped("an invalid prefix is refused", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(StackExchange.make(memoryBroker().acquire, { prefix: "a.*" }))
      assert.strictEqual(error.operation, "configure")
    }))
})

// -----------------------------------------------------------------------------
// channel names and envelopes
// -----------------------------------------------------------------------------

const safeSegment = /^(_|~[0-9a-f]{64}|[A-Za-z0-9_-]+)$/

describe("channel names", () => {
  it("segments are non-empty, literal-safe for Redis and NATS, and injective", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.string({ unit: "binary" }), (a, b) => {
        const sa = envelope.segment(a)
        assert.match(sa, safeSegment)
        if (a !== b) assert.notStrictEqual(sa, envelope.segment(b))
      })
    )
    assert.strictEqual(envelope.segment(""), "_")
    assert.strictEqual(envelope.segment("_"), "_5F")
    assert.strictEqual(envelope.segment("a.b*c d"), "a_2Eb_2Ac_20d")
    assert.match(envelope.segment("ü".repeat(500)), /^~[0-9a-f]{64}$/)
  })

  it("a connection id never shares a channel with a namespace or a room", () => {
    const names = envelope.channels("neffos")
    assert.notStrictEqual(names.id("default"), names.namespace("default"))
    assert.notStrictEqual(names.namespace("a.b"), names.room("a", "b"))
    assert.strictEqual(names.namespace(""), "neffos.ns._")
    assert.strictEqual(names.room("chat", "lobby"), "neffos.room.chat.lobby")
  })
})

const messageArb = fc.record({
  namespace: fc.string({ unit: "binary" }),
  room: fc.string({ unit: "binary" }),
  event: fc.string({ unit: "binary" }),
  body: fc.oneof(fc.string({ unit: "binary" }), fc.uint8Array()),
  error: fc.option(fc.string({ unit: "binary" }), { nil: undefined }),
  isNoOp: fc.boolean()
}).map((init) => Message.make(init))

const fields = (m: Message.Message) => ({
  namespace: m.namespace,
  room: m.room,
  event: m.event,
  body: typeof m.body === "string" ? m.body : Array.from(m.body),
  error: m.error,
  binary: m.binary,
  isNoOp: m.isNoOp
})

describe("envelopes", () => {
  it("broadcasts round-trip with exclusions, target and binary flag", () => {
    fc.assert(
      fc.property(
        messageArb,
        fc.string(),
        fc.option(fc.string(), { nil: undefined }),
        fc.option(fc.record({ instance: fc.uuid(), key: fc.nat() }), { nil: undefined }),
        fc.option(fc.string(), { nil: undefined }),
        (message, origin, to, exceptConnection, exceptId) => {
          const decoded = envelope.decode(
            envelope.encode({ _tag: "Broadcast", origin, to, exceptConnection, exceptId, message })
          )
          assert(decoded !== undefined && decoded._tag === "Broadcast")
          assert.deepStrictEqual(
            {
              origin: decoded.origin,
              to: decoded.to,
              exceptConnection: decoded.exceptConnection,
              id: decoded.exceptId
            },
            { origin, to, exceptConnection, id: exceptId }
          )
          assert.deepStrictEqual(fields(decoded.message), fields(message))
        }
      )
    )
  })

  it("requests and replies round-trip, failures keep their type", () => {
    const reply = Message.make({ namespace: "n", event: "e", body: new Uint8Array([1, 59, 2]) })
    const cases: ReadonlyArray<envelope.Envelope> = [
      { _tag: "Send", origin: "o", correlation: 2 ** 40, to: "id;1", message: chat },
      { _tag: "Ask", origin: "o", correlation: 7, to: "x", timeoutMs: 30_000, message: chat },
      // the caller's span: a cross-instance send or ask continues its trace
      {
        _tag: "Send",
        origin: "o",
        correlation: 3,
        to: "x",
        message: chat,
        trace: { traceId: "a".repeat(32), spanId: "b".repeat(16), sampled: true }
      },
      {
        _tag: "Ask",
        origin: "o",
        correlation: 4,
        to: "x",
        timeoutMs: 5,
        message: chat,
        trace: { traceId: "c".repeat(32), spanId: "d".repeat(16), sampled: false }
      },
      { _tag: "Info", origin: "o", payload: new Uint8Array([123, 125]) },
      { _tag: "Close", origin: "o", correlation: 8, id: "x", code: 4000, reason: "bye" },
      { _tag: "Count", origin: "o", correlation: 9 },
      { _tag: "Ack", correlation: 10, count: 3 },
      { _tag: "Cluster", origin: "o", to: undefined, payload: new Uint8Array([123, 0, 255]) },
      { _tag: "Cluster", origin: "o", to: "instance;2", payload: new Uint8Array() },
      { _tag: "Result", correlation: 11, outcome: { _tag: "Reply", message: reply } },
      {
        _tag: "Result",
        correlation: 12,
        outcome: {
          _tag: "Failure",
          error: new Errors.RemoteError({ text: "no", namespace: "n", room: "", event: "e" })
        }
      }
    ]
    for (const original of cases) {
      const decoded = envelope.decode(envelope.encode(original))
      assert(decoded !== undefined)
      assert.strictEqual(decoded._tag, original._tag)
      if (decoded._tag === "Result" && original._tag === "Result") {
        if (decoded.outcome._tag === "Failure") assert.instanceOf(decoded.outcome.error, Errors.RemoteError)
        else assert.deepStrictEqual(fields(decoded.outcome.message), fields(reply))
      } else {
        assert.deepStrictEqual(
          JSON.stringify(decoded, (_, v) => Message.isMessage(v) ? fields(v) : v),
          JSON.stringify(original, (_, v) => Message.isMessage(v) ? fields(v) : v)
        )
      }
    }
  })

  it("anything else decodes to undefined, never throws", () => {
    fc.assert(fc.property(fc.uint8Array(), (bytes) => {
      envelope.decode(bytes)
    }))
    const valid = envelope.encode({ _tag: "Send", origin: "o", correlation: 1, to: "x", message: chat })
    for (let end = 0; end < 12; end++) assert.isUndefined(envelope.decode(valid.subarray(0, end)))
  })
})
