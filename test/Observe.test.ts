/**
 * Spans, metrics and logs of a server and its clients (the in-memory test kit;
 * the cross-instance trace is in StackExchange.suite.ts, the dashboard in
 * Admin.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Client from "effect-neffos/Client"
import * as Events from "effect-neffos/Events"
import * as Message from "effect-neffos/Message"
import * as Metrics from "effect-neffos/Metrics"
import * as Reply from "effect-neffos/Reply"
import * as Server from "effect-neffos/Server"
import * as TestServer from "effect-neffos/TestServer"
import type { RawSocket } from "effect-neffos/Transport"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { installedTracer } from "../src/internal/trace.js"
import { recorder } from "./tracing.js"

class Refused extends Data.TaggedError("Refused")<{ readonly message: string }> {}

const handlers = {
  echo: (_ns: unknown, m: Message.Message) => Effect.succeed(Reply.make(m.body)),
  later: (_ns: unknown, m: Message.Message) =>
    Effect.succeed(Reply.make(m.body)).pipe(Effect.delay("1 millis"), Effect.withSpan("inside the handler")),
  refuse: () => Effect.fail(new Refused({ message: "no" })),
  crash: () => Effect.suspend(() => Effect.die(new Error("boom"))),
  note: () => Effect.void
}

const events = Events.namespaces({ default: handlers })

/** A test server, built with `tracer` installed (when given), and the kit. */
const kit = (options?: { readonly tracer?: Tracer.Tracer; readonly namespace?: string }) =>
  Effect.gen(function*() {
    const layer = TestServer.layer({
      events: options?.namespace === undefined ? events : Events.namespaces({ [options.namespace]: handlers })
    })
    const context = yield* Layer.build(
      options?.tracer === undefined ? layer : layer.pipe(Layer.provide(Layer.setTracer(options.tracer)))
    )
    return { server: Context.get(context, Server.Server), test: Context.get(context, TestServer.TestServer) }
  })

describe("Spans", () => {
  it.scopedLive("a handler run is a span with its namespace, room, event, connection and outcome", () =>
    Effect.gen(function*() {
      const rec = recorder()
      const { server, test } = yield* kit({ tracer: rec.tracer })
      const client = yield* test.connect({ id: "alice" })
      const ns = yield* client.connect("default")
      const room = yield* client.join("default", "lobby")
      yield* ns.ask("echo", "hi") // answered in the reader
      yield* room.ask("later", "hey") // answered by the dispatcher
      yield* Effect.flip(ns.ask("refuse"))
      yield* Effect.flip(ns.ask("crash"))
      yield* ns.emit("note", "fire and forget")

      const echo = yield* rec.ended("echo", (s) => s.name === "effect-neffos.handle default.echo")
      assert.strictEqual(echo.kind, "server")
      assert.isUndefined(echo.parentId)
      assert.deepStrictEqual(Object.fromEntries(echo.attributes), {
        "neffos.namespace": "default",
        "neffos.room": "",
        "neffos.event": "echo",
        "neffos.connection_id": "alice",
        "neffos.instance_id": server.instanceId,
        "neffos.outcome": "ok"
      })
      const later = yield* rec.ended("later", (s) => s.name === "effect-neffos.handle default.later")
      assert.strictEqual(later.attributes.get("neffos.room"), "lobby")
      assert.strictEqual(later.attributes.get("neffos.outcome"), "ok")
      // the handler's own spans are its children
      const inside = yield* rec.ended("inside", (s) => s.name === "inside the handler")
      assert.strictEqual(inside.parentId, later.spanId)
      assert.strictEqual(inside.traceId, later.traceId)

      const refuse = yield* rec.ended("refuse", (s) => s.name === "effect-neffos.handle default.refuse")
      assert.strictEqual(refuse.attributes.get("neffos.outcome"), "error")
      assert.isTrue(refuse.failed)
      const crash = yield* rec.ended("crash", (s) => s.name === "effect-neffos.handle default.crash")
      assert.strictEqual(crash.attributes.get("neffos.outcome"), "defect")
      const note = yield* rec.ended("note", (s) => s.name === "effect-neffos.handle default.note")
      assert.strictEqual(note.kind, "consumer")
      // every handler run is a trace of its own (the client sent no span)
      assert.strictEqual(new Set([echo, later, refuse, crash, note].map((s) => s.traceId)).size, 5)
    }))

  it.scopedLive("server asks, broadcasts and sends have spans; so have the handshake and the connection", () =>
    Effect.gen(function*() {
      const rec = recorder()
      const { server, test } = yield* kit({ tracer: rec.tracer })
      const bob = yield* test.connect({
        id: "bob",
        events: Events.client({ default: { confirm: () => Effect.succeed(Reply.text("yes")) } })
      })
      yield* bob.join("default", "lobby")
      const carol = yield* test.connect({ id: "carol" })
      yield* carol.join("default", "lobby")

      const handshake = yield* rec.ended(
        "handshake",
        (s) => s.name === "effect-neffos.handshake" && s.attributes.get("neffos.connection_id") === "bob"
      )
      assert.strictEqual(handshake.attributes.get("neffos.outcome"), "accepted")

      yield* Effect.withSpan(
        server.ask({ to: "bob", namespace: "default", event: "confirm" }),
        "caller"
      ).pipe(Effect.withTracer(rec.tracer), Effect.orDie)
      const caller = rec.named("caller")[0]
      const ask = yield* rec.ended("ask", (s) => s.name === "effect-neffos.ask default.confirm")
      assert.strictEqual(ask.kind, "client")
      assert.strictEqual(ask.parentId, caller.spanId)
      assert.strictEqual(ask.attributes.get("neffos.connection_id"), "bob")

      yield* server.broadcast({ namespace: "default", room: "lobby", event: "news", body: "x" }, { except: "carol" })
        .pipe(Effect.withTracer(rec.tracer), Effect.orDie)
      const broadcast = yield* rec.ended("broadcast", (s) => s.name === "effect-neffos.broadcast")
      assert.strictEqual(broadcast.kind, "producer")
      assert.strictEqual(broadcast.attributes.get("neffos.room"), "lobby")
      assert.strictEqual(broadcast.attributes.get("neffos.receivers"), 1)
      assert.strictEqual(broadcast.attributes.get("neffos.dropped"), 0)
      assert.strictEqual(broadcast.attributes.get("neffos.strict_waits"), 0)
      yield* bob.awaitMessage({ event: "news", body: "x" })

      yield* server.send("carol", { namespace: "default", event: "dm", body: "psst" }).pipe(
        Effect.withTracer(rec.tracer),
        Effect.orDie
      )
      const send = yield* rec.ended("send", (s) => s.name === "effect-neffos.send")
      assert.strictEqual(send.attributes.get("neffos.to"), "carol")

      yield* bob.close({ code: 4001 })
      const connection = yield* rec.ended(
        "connection",
        (s) => s.name === "effect-neffos.connection" && s.attributes.get("neffos.connection_id") === "bob"
      )
      assert.strictEqual(connection.attributes.get("neffos.close_code"), 4001)
      assert.strictEqual(connection.traceId, connection.spanId.padStart(32, "0"), "a root")
    }))

  it.scopedLive("a client that propagates its span makes the server's handler continue the caller's trace", () =>
    Effect.gen(function*() {
      const rec = recorder()
      const { test } = yield* kit({ tracer: rec.tracer })
      const dial = (propagateTrace: boolean) =>
        Client.dial("ws://test/", { propagateTrace, events: Events.client({ default: {} }) }).pipe(
          Effect.provideService(Client.ClientTransport, test.clientTransport),
          Effect.withTracer(rec.tracer)
        )
      const traced = yield* dial(true)
      const ns = yield* traced.connect("default")
      yield* Effect.withSpan(ns.ask("echo", "hi"), "caller").pipe(Effect.withTracer(rec.tracer))
      const caller = rec.named("caller")[0]
      const clientAsk = yield* rec.ended(
        "client ask",
        (s) => s.name === "effect-neffos.ask default.echo" && s.parentId === caller.spanId
      )
      assert.strictEqual(clientAsk.kind, "client")
      const handled = yield* rec.ended("handler", (s) => s.name === "effect-neffos.handle default.echo")
      assert.strictEqual(handled.traceId, caller.traceId)
      assert.strictEqual(handled.parentId, clientAsk.spanId)

      // an emit carries the caller's span; its token is taken off before the handler sees the message
      yield* Effect.withSpan(ns.emit("note", "n"), "emitter").pipe(Effect.withTracer(rec.tracer))
      const emitter = rec.named("emitter")[0]
      const note = yield* rec.ended("note", (s) => s.name === "effect-neffos.handle default.note")
      assert.strictEqual(note.traceId, emitter.traceId)
      assert.strictEqual(note.parentId, emitter.spanId)
      assert.strictEqual(note.kind, "consumer")

      // without propagation the handler's span is a root
      const plain = yield* dial(false)
      const plainNs = yield* plain.connect("default")
      yield* Effect.withSpan(plainNs.ask("later", "x"), "untraced caller").pipe(Effect.withTracer(rec.tracer))
      const untraced = rec.named("untraced caller")[0]
      const later = yield* rec.ended("later", (s) => s.name === "effect-neffos.handle default.later")
      assert.isUndefined(later.parentId)
      assert.notStrictEqual(later.traceId, untraced.traceId)
    }))

  it.effect("spans are made only when a tracer other than Effect's default one is installed", () =>
    Effect.gen(function*() {
      assert.isUndefined(yield* installedTracer)
      const rec = recorder()
      assert.strictEqual(yield* installedTracer.pipe(Effect.withTracer(rec.tracer)), rec.tracer)
      assert.isUndefined(yield* installedTracer.pipe(Effect.withTracer(rec.tracer), Effect.withTracerEnabled(false)))
    }))
})

const valueOf = (metric: Metric.Metric.Counter<number>, labels: Record<string, string>) =>
  Effect.map(
    Metric.value(Object.entries(labels).reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)),
    (state) => state.count
  )

const histogramCount = (
  metric: typeof Metrics.handlerDuration,
  labels: Record<string, string>
) =>
  Effect.map(
    Metric.value(Object.entries(labels).reduce((m, [k, v]) => Metric.tagged(m, k, v), metric)),
    (state) => (state as { readonly count: number }).count
  )

describe("Metrics", () => {
  it.scopedLive("count messages, bytes, handler runs, asks and connections per namespace", () =>
    Effect.gen(function*() {
      // a namespace of this test's own: the registry is global
      const namespace = `metrics-${crypto.randomUUID().slice(0, 8)}`
      const label = { namespace }
      const { server, test } = yield* kit({ namespace })
      const accepted = yield* valueOf(Metrics.handshakes, { outcome: "accepted" })
      const closed1000 = yield* valueOf(Metrics.disconnects, { code: "1000" })
      const answering = Events.client({ [namespace]: { confirm: () => Effect.succeed(Reply.text("ok")) } })
      const alice = yield* test.connect({ id: "alice", events: answering })
      const bob = yield* test.connect({ id: "bob" })
      const a = yield* alice.connect(namespace)
      yield* bob.connect(namespace)
      assert.strictEqual(
        (yield* Metric.value(Metrics.namespaceConnections.pipe(Metric.tagged("namespace", namespace)))).value,
        2
      )
      assert.strictEqual((yield* valueOf(Metrics.handshakes, { outcome: "accepted" })) - accepted, 2)

      yield* a.ask("echo", "1")
      yield* a.ask("echo", "22")
      yield* Effect.flip(a.ask("refuse"))
      yield* a.emit("note")
      yield* alice.sync
      yield* server.broadcast({ namespace, event: "all", body: "hello" }).pipe(Effect.orDie)
      yield* alice.expect({ event: "all" })
      yield* bob.expect({ event: "all" })
      yield* server.ask({ to: "alice", namespace, event: "confirm" }).pipe(Effect.orDie)
      yield* Metrics.flush

      // in: 2 connects, 3 asks, 1 emit, the reply to the server's ask (alice's sync is a system event of namespace "")
      assert.strictEqual(yield* valueOf(Metrics.messagesReceived, label), 7)
      // out: 3 answers (2 replies, 1 error), 2 broadcast deliveries, 1 ask; acknowledgements name no namespace
      assert.strictEqual(yield* valueOf(Metrics.messagesSent, label), 6)
      const broadcastFrame = Message.encode(Message.make({ namespace, event: "all", body: "hello" })).length
      assert.isAtLeast(yield* valueOf(Metrics.bytesSent, label), 2 * broadcastFrame)
      assert.isAbove(yield* valueOf(Metrics.bytesReceived, label), 0)
      assert.strictEqual(yield* histogramCount(Metrics.handlerDuration, { ...label, outcome: "ok" }), 3)
      assert.strictEqual(yield* histogramCount(Metrics.handlerDuration, { ...label, outcome: "error" }), 1)
      assert.strictEqual(yield* histogramCount(Metrics.askDuration, { ...label, outcome: "ok" }), 1)
      assert.strictEqual(yield* histogramCount(Metrics.clientAskDuration, { ...label, outcome: "ok" }), 2)
      assert.strictEqual(yield* histogramCount(Metrics.clientAskDuration, { ...label, outcome: "error" }), 1)

      yield* alice.close()
      yield* bob.close()
      yield* Effect.repeat(server.connectionCount, { until: (n) => n === 0 }).pipe(
        Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error("still connected") }),
        Effect.orDie
      )
      assert.strictEqual(
        (yield* Metric.value(Metrics.namespaceConnections.pipe(Metric.tagged("namespace", namespace)))).value,
        0
      )
      assert.strictEqual((yield* valueOf(Metrics.disconnects, { code: "1000" })) - closed1000, 2)
    }))

  it.scopedLive("a client counts its reconnects and their attempts", () =>
    Effect.gen(function*() {
      const { test } = yield* kit()
      const ok = yield* valueOf(Metrics.clientReconnects, { outcome: "ok" })
      const attempts = (yield* Metric.value(Metrics.clientReconnectAttempts)).count
      let socket: RawSocket | undefined
      const transport: Client.ClientTransport = {
        open: (url, options) =>
          Effect.map(test.clientTransport.open(url, options), (opened) => {
            socket = opened.socket
            return opened
          })
      }
      const conn = yield* Client.dial("ws://test/", {
        events: Events.client({ default: {} }),
        reconnect: Schedule.spaced("10 millis"),
        reconnectProbe: "direct"
      }).pipe(Effect.provideService(Client.ClientTransport, transport))
      yield* conn.connect("default")
      socket!.terminate()
      yield* conn.state.pipe(
        Stream.filter((state) => state._tag === "Open" && conn.reconnectTries > 0),
        Stream.runHead,
        Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error("no reconnect") }),
        Effect.orDie
      )
      assert.strictEqual((yield* valueOf(Metrics.clientReconnects, { outcome: "ok" })) - ok, 1)
      assert.isAtLeast((yield* Metric.value(Metrics.clientReconnectAttempts)).count - attempts, 1)
    }))

  it.scopedLive("metrics: false leaves messages uncounted; the rare events are still counted", () =>
    Effect.gen(function*() {
      const namespace = `quiet-${crypto.randomUUID().slice(0, 8)}`
      const context = yield* Layer.build(
        TestServer.layer({ events: Events.namespaces({ [namespace]: handlers }), metrics: false })
      )
      const test = Context.get(context, TestServer.TestServer)
      const client = yield* test.connect()
      const ns = yield* client.connect(namespace)
      yield* ns.ask("echo", "1")
      yield* Metrics.flush
      assert.strictEqual(yield* valueOf(Metrics.messagesReceived, { namespace }), 0)
      assert.strictEqual(yield* histogramCount(Metrics.handlerDuration, { namespace, outcome: "ok" }), 0)
      assert.strictEqual(
        (yield* Metric.value(Metrics.namespaceConnections.pipe(Metric.tagged("namespace", namespace)))).value,
        1
      )
    }))

  it.scopedLive("labels stay bounded: undeclared namespaces share one value; no room, id or event label", () =>
    Effect.gen(function*() {
      const { test } = yield* kit()
      const before = yield* valueOf(Metrics.messagesReceived, { namespace: "(undeclared)" })
      const socket = yield* test.open({ id: "mallory" })
      yield* socket.send("M")
      yield* socket.next
      for (let i = 0; i < 20; i++) yield* socket.send(`;ns-${i};room-${i};event-${i};0;0;x`)
      // a round trip: what was sent before has been read
      yield* socket.send("$sync;default;;_OnNamespaceConnect;0;0;")
      yield* socket.next
      yield* Metrics.flush
      assert.strictEqual((yield* valueOf(Metrics.messagesReceived, { namespace: "(undeclared)" })) - before, 20)
      const allowed = new Set(["namespace", "code", "policy", "outcome", "part"])
      for (const pair of yield* Metrics.snapshot) {
        if (!pair.metricKey.name.startsWith("effect_neffos_")) continue
        for (const tag of pair.metricKey.tags) {
          assert.isTrue(allowed.has(tag.key), `${pair.metricKey.name} has a label ${tag.key}`)
          if (tag.key === "namespace") assert.notMatch(tag.value, /^ns-\d+$/)
        }
      }
    }))

  it.scopedLive("the Prometheus text parses: HELP and TYPE, _total counters, cumulative buckets up to +Inf", () =>
    Effect.gen(function*() {
      const { test } = yield* kit()
      const client = yield* test.connect()
      const ns = yield* client.connect("default")
      yield* ns.ask("echo", "1")
      yield* Metric.increment(Metric.counter("app_custom", { description: "an application's own", incremental: true }))
      const text = yield* Metrics.prometheus
      const types = new Map<string, string>()
      const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = []
      for (const line of text.split("\n")) {
        if (line === "") continue
        const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary)$/.exec(line)
        if (type !== null) {
          assert.isFalse(types.has(type[1]), `one TYPE per family: ${type[1]}`)
          types.set(type[1], type[2])
          continue
        }
        if (line.startsWith("# HELP ")) continue
        const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line)
        assert.isNotNull(sample, `a sample line: ${line}`)
        const labels: Record<string, string> = {}
        for (const [, key, value] of (sample![3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
          labels[key] = value
        }
        samples.push({ name: sample![1], labels, value: Number(sample![4].replace("+Inf", "Infinity")) })
      }
      assert.strictEqual(types.get("effect_neffos_messages_received"), "counter")
      assert.strictEqual(types.get("app_custom"), "counter")
      assert.strictEqual(types.get("effect_neffos_connections"), "gauge")
      assert.strictEqual(types.get("effect_neffos_handler_duration_seconds"), "histogram")
      assert.isTrue(samples.some((s) => s.name === "effect_neffos_messages_received_total"))
      assert.isTrue(samples.some((s) => s.name === "app_custom_total" && s.value >= 1))
      const series = samples.filter((s) =>
        s.name.startsWith("effect_neffos_handler_duration_seconds") && s.labels.namespace === "default" &&
        s.labels.outcome === "ok"
      )
      const buckets = series.filter((s) => s.name.endsWith("_bucket"))
      assert.strictEqual(buckets.at(-1)?.labels.le, "+Inf")
      for (let i = 1; i < buckets.length; i++) assert.isAtLeast(buckets[i].value, buckets[i - 1].value)
      const count = series.find((s) => s.name.endsWith("_count"))!.value
      assert.strictEqual(buckets.at(-1)!.value, count)
      assert.isTrue(series.some((s) => s.name.endsWith("_sum")))
    }))
})

describe("Logs", () => {
  it.scopedLive("a handler's defect is logged at error level, annotated and inside the handler's span", () =>
    Effect.gen(function*() {
      const rec = recorder()
      const logs: Array<{ level: string; annotations: Record<string, unknown>; span: string | undefined }> = []
      const capture = Logger.make((options) => {
        const span = Context.getOption(
          FiberRefs.getOrDefault(options.context, FiberRef.currentContext),
          Tracer.ParentSpan
        ).pipe(Option.getOrUndefined)
        logs.push({
          level: options.logLevel.label,
          annotations: Object.fromEntries(options.annotations),
          span: span?._tag === "Span" ? span.name : undefined
        })
      })
      const { test } = yield* kit({ tracer: rec.tracer }).pipe(
        Effect.provide(
          Layer.merge(Logger.replace(Logger.defaultLogger, capture), Logger.minimumLogLevel(LogLevel.Info))
        )
      )
      const client = yield* test.connect({ id: "dora" })
      const room = yield* client.join("default", "kitchen")
      yield* Effect.flip(room.ask("crash"))
      yield* Effect.flip(room.ask("refuse"))
      const died = logs.filter((log) => log.annotations.event === "crash")
      assert.strictEqual(died.length, 1)
      assert.strictEqual(died[0].level, "ERROR")
      assert.deepStrictEqual(died[0].annotations, {
        connection: "dora",
        namespace: "default",
        room: "kitchen",
        event: "crash"
      })
      assert.strictEqual(died[0].span, "effect-neffos.handle default.crash")
      // an expected failure is answered, and logged only at debug level: not in the default output
      assert.isFalse(logs.some((log) => log.annotations.event === "refuse"))
    }))
})
