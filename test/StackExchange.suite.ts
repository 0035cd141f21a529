/**
 * The cross-instance suite, run against every backend by its own test file.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Admin from "effect-neffos/Admin"
import type * as Errors from "effect-neffos/Errors"
import * as Message from "effect-neffos/Message"
import * as StackExchange from "effect-neffos/StackExchange"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as neffos from "neffos.js"
import {
  awaitEvent,
  type Broker,
  type Client,
  client,
  freePort,
  type Instance,
  instance,
  oddNamespace,
  oddRoom
} from "./StackExchange.kit.js"
import { recorder } from "./tracing.js"

export interface Backend {
  readonly name: string
  /** an exchange on the broker of the run (test/services.ts), or on the broker of the test at `port` */
  readonly exchange: (prefix: string, port?: number, options?: StackExchange.Options) => Layer.Layer<
    StackExchange.StackExchange,
    Errors.StackExchangeError
  >
  /** a broker process of the test's own, on a spare port */
  readonly ownBroker: Effect.Effect<Broker, never, Scope.Scope>
  /** an exchange built by `layerConfig`, with `prefix` as the only configured value */
  readonly fromConfig: (prefix: string) => Layer.Layer<
    StackExchange.StackExchange,
    Errors.StackExchangeError | ConfigError.ConfigError
  >
  /** the channels of this prefix the broker itself reports subscribers for, when it can tell */
  readonly brokerChannels?: (prefix: string) => Effect.Effect<ReadonlyArray<string>, never, Scope.Scope>
}

let prefixes = 0
const freshPrefix = (backend: Backend) =>
  `test-${backend.name.toLowerCase()}-${process.pid}-${Date.now().toString(36)}-${++prefixes}`

const names = ["A", "B", "C"] as const

const cluster = (backend: Backend, count: number, port?: number) =>
  Effect.gen(function*() {
    const prefix = freshPrefix(backend)
    const instances = yield* Effect.forEach(names.slice(0, count), (name) =>
      instance(name, backend.exchange(prefix, port)))
    return { prefix, instances }
  })

/** every subscription change so far is confirmed by the broker, on every instance */
const settled = (instances: ReadonlyArray<Instance>) =>
  Effect.forEach(instances, (i) => i.exchange.settled, { discard: true }).pipe(
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("subscriptions not settled") }),
    Effect.orDie
  )

const text = (message: Message.Message) => Message.bodyText(message)

const connected = (url: string, namespace: string, id?: string, room?: string) =>
  Effect.gen(function*() {
    const c = yield* client(url, id)
    yield* c.connect(namespace)
    if (room !== undefined) yield* c.join(namespace, room)
    return c
  })

/** Sends a marker that every client in `clients` must get next: what they received before it is known. */
const marker = (from: Instance, namespace: string, clients: ReadonlyArray<Client>) =>
  Effect.gen(function*() {
    yield* from.server.broadcast({ namespace, event: "marker", body: "m" }).pipe(Effect.orDie)
    return yield* Effect.forEach(clients, (c) => c.next)
  })

const isTag = <T extends string>(tag: T) => (u: unknown): u is { readonly _tag: T } =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === tag

const failureOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.either(effect), (either) => Either.isLeft(either) ? either.left : undefined)

/** `effect`, or a defect saying what did not happen within `duration` */
const within = <A, E>(effect: Effect.Effect<A, E>, duration: Duration.DurationInput, what: string) =>
  Effect.timeout(effect, duration).pipe(
    Effect.catchTag(
      "TimeoutException",
      () => Effect.dieMessage(`${what}: not within ${Duration.format(Duration.decode(duration))}`)
    )
  )

const reasonOf = (u: unknown) => isTag("StackExchangeError")(u) ? (u as Errors.StackExchangeError).reason : u

const range = (count: number, from = 0) => Array.from({ length: count }, (_, i) => String(from + i))

/** Two instances on a broker of the test's own, with these exchange options. */
const ownPair = (backend: Backend, broker: Broker, options: StackExchange.Options) =>
  Effect.gen(function*() {
    const prefix = freshPrefix(backend)
    // room for every frame of the bursts below: the outbox policy is not what these tests are about
    const outbox = { capacity: 8192 }
    const a = yield* instance("A", backend.exchange(prefix, broker.port, options), { outbox })
    const b = yield* instance("B", backend.exchange(prefix, broker.port, options), { outbox })
    return [a, b] as const
  })

export const suite = (backend: Backend) =>
  describe(`StackExchange on ${backend.name}`, () => {
    it.scopedLive("a namespace broadcast reaches the clients of every instance", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 3)
        const [a] = instances
        const clients = yield* Effect.forEach(instances, (i) => connected(i.url, "default"))
        yield* settled(instances)
        yield* a.server.broadcast({ namespace: "default", event: "news", body: "hello" }).pipe(Effect.orDie)
        for (const c of clients) {
          const m = yield* c.next
          assert.strictEqual(m.event, "news")
          assert.strictEqual(text(m), "hello")
          assert.isFalse(m.binary)
        }
      }))

    it.scopedLive("neffos.js clients on two instances talk through the exchange", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 2)
        const [a, b] = instances
        const got = yield* Queue.unbounded<string>()
        const handlers = {
          default: {
            chat: (_ns: neffos.NSConn, msg: neffos.Message) => {
              got.unsafeOffer(msg.Body)
            }
          }
        }
        const dial = (url: string) =>
          Effect.acquireRelease(
            Effect.promise(() => neffos.dial(url, handlers)),
            (conn) => Effect.sync(() => conn.close())
          )
        const onA = yield* dial(a.url)
        const onB = yield* dial(b.url)
        const nsA = yield* Effect.promise(() => onA.connect("default"))
        const nsB = yield* Effect.promise(() => onB.connect("default"))
        yield* Effect.promise(() => nsA.joinRoom("lobby"))
        yield* Effect.promise(() => nsB.joinRoom("lobby"))
        yield* settled(instances)
        // the server's chat handler broadcasts to the others of the room
        nsA.room("lobby").emit("chat", "from A")
        assert.strictEqual(yield* Queue.take(got), "from A")
        nsB.room("lobby").emit("chat", "from B")
        assert.strictEqual(yield* Queue.take(got), "from B")
        const reply = yield* Effect.promise(() => nsB.ask("echo", "to B"))
        assert.strictEqual(reply.Body, "to B")
      }))

    it.scopedLive("a room broadcast reaches the room's members only, on every instance", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 3)
        const [a, b, c] = instances
        const inRoomA = yield* connected(a.url, "default", undefined, "r")
        const inRoomB = yield* connected(b.url, "default", undefined, "r")
        const notInRoomB = yield* connected(b.url, "default")
        yield* settled(instances)
        // C has no member of the room: it publishes without delivering locally
        yield* c.server.broadcast({ namespace: "default", room: "r", event: "roomy", body: "in r" }).pipe(
          Effect.orDie
        )
        for (const member of [inRoomA, inRoomB]) {
          const m = yield* member.next
          assert.deepStrictEqual([m.room, m.event, text(m)], ["r", "roomy", "in r"])
        }
        const [first] = yield* marker(c, "default", [notInRoomB])
        assert.strictEqual(first.event, "marker")
      }))

    it.scopedLive("a broadcast with `to` reaches the connections with that id only", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 3)
        const [a, b, c] = instances
        const aliceB = yield* connected(b.url, "default", "alice")
        const aliceC = yield* connected(c.url, "default", "alice")
        const bob = yield* connected(b.url, "default", "bob")
        yield* settled(instances)
        yield* a.server.broadcast({ namespace: "default", event: "dm", body: "for alice", to: "alice" }).pipe(
          Effect.orDie
        )
        for (const alice of [aliceB, aliceC]) assert.strictEqual((yield* alice.next).event, "dm")
        assert.strictEqual((yield* marker(a, "default", [bob]))[0].event, "marker")
      }))

    it.scopedLive("except: an exact connection only on its own instance, an id on every instance", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 3)
        const [a, b, c] = instances
        // first connections of their instances: their instance-local keys are likely equal
        const sender = yield* connected(a.url, "default", "same")
        const twinB = yield* connected(b.url, "default", "same")
        const otherA = yield* connected(a.url, "default", "other")
        const bobB = yield* connected(b.url, "default", "bob")
        const bobC = yield* connected(c.url, "default", "bob")
        const carolC = yield* connected(c.url, "default", "carol")
        yield* settled(instances)

        // the server's chat handler: broadcastOthers, i.e. except this exact connection
        yield* sender.emit({ namespace: "default", event: "chat", body: "hi all" })
        for (const receiver of [twinB, otherA, bobB, bobC, carolC]) {
          const m = yield* receiver.next
          assert.deepStrictEqual([m.event, text(m)], ["chat", "hi all"])
        }
        assert.strictEqual((yield* marker(a, "default", [sender]))[0].event, "marker")
        for (const receiver of [twinB, otherA, bobB, bobC, carolC]) yield* receiver.next

        yield* a.server.broadcast({ namespace: "default", event: "notBob", body: "x" }, { except: "bob" }).pipe(
          Effect.orDie
        )
        for (const receiver of [sender, twinB, otherA, carolC]) {
          assert.strictEqual((yield* receiver.next).event, "notBob")
        }
        for (const first of yield* marker(a, "default", [bobB, bobC])) assert.strictEqual(first.event, "marker")
      }))

    it.scopedLive("send reaches an id on another instance, and fails with ConnectionNotFound when nobody has it", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 3)
        const [a, b] = instances
        const carol = yield* connected(b.url, "default", "carol")
        const elsewhere = yield* connected(b.url, oddNamespace, "dora")
        yield* settled(instances)
        yield* a.server.send("carol", { namespace: "default", event: "notice", body: "for carol" }).pipe(Effect.orDie)
        const m = yield* carol.next
        assert.deepStrictEqual([m.event, text(m)], ["notice", "for carol"])

        // an id on this instance and another: both get it
        const carolA = yield* connected(a.url, "default", "carol")
        yield* settled(instances)
        yield* a.server.send("carol", { namespace: "default", event: "notice", body: "both" }).pipe(Effect.orDie)
        for (const c of [carolA, carol]) assert.strictEqual(text(yield* c.next), "both")

        const nobody = yield* failureOf(a.server.send("nobody", { namespace: "default", event: "notice" }))
        assert.isTrue(isTag("ConnectionNotFound")(nobody))
        // dora exists, but not in this namespace
        const wrongNamespace = yield* failureOf(a.server.send("dora", { namespace: "default", event: "notice" }))
        assert.isTrue(isTag("ConnectionNotFound")(wrongNamespace))
        assert.strictEqual(elsewhere.received.length, 0)
      }))

    it.scopedLive("a cross-instance ask is answered, refused, timed out or not found, with typed errors", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 2)
        const [a, b] = instances
        yield* connected(b.url, "default", "dave")
        yield* settled(instances)
        const ask = (event: string, options?: { readonly timeout?: Duration.DurationInput }, to = "dave") =>
          a.server.ask({ to, namespace: "default", event, body: "q" }, options)

        const answer = yield* Effect.orDie(ask("ping"))
        assert.deepStrictEqual([answer.event, text(answer)], ["ping", "pong:q"])

        const refused = yield* failureOf(ask("refuse"))
        assert.isTrue(isTag("RemoteError")(refused))
        assert.strictEqual((refused as Errors.RemoteError).text, "refused")

        const started = Date.now()
        const timedOut = yield* failureOf(ask("silent", { timeout: "300 millis" }))
        assert.isTrue(isTag("AskTimeout")(timedOut))
        assert.isAtLeast(Date.now() - started, 250)

        const notFound = yield* failureOf(ask("ping", undefined, "nobody"))
        assert.isTrue(isTag("ConnectionNotFound")(notFound))
      }))

    it.scopedLive("a cross-instance ask and send continue the caller's trace: the same trace id on both instances", () =>
      Effect.gen(function*() {
        const rec = recorder()
        // both instances, their exchanges and the caller report to one tracer
        const traced = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.withTracer(effect, rec.tracer)
        const { instances } = yield* traced(cluster(backend, 2))
        const [a, b] = instances
        yield* connected(b.url, "default", "dave")
        yield* settled(instances)

        const answer = yield* traced(Effect.withSpan(
          a.server.ask({ to: "dave", namespace: "default", event: "ping", body: "q" }),
          "caller"
        )).pipe(Effect.orDie)
        assert.strictEqual(text(answer), "pong:q")
        const caller = rec.named("caller")[0]
        const onA = yield* rec.ended("the ask on A", (s) =>
          s.name === "effect-neffos.ask default.ping" && s.attributes.get("neffos.instance_id") === a.server.instanceId)
        const onB = yield* rec.ended("the ask on B", (s) =>
          s.name === "effect-neffos.ask default.ping" && s.attributes.get("neffos.instance_id") === b.server.instanceId)
        assert.strictEqual(onA.parentId, caller.spanId)
        assert.isTrue(onA.attributes.get("neffos.cross_instance"))
        assert.strictEqual(onB.traceId, caller.traceId)
        assert.strictEqual(onB.parentId, onA.spanId)
        assert.strictEqual(onB.attributes.get("neffos.connection_id"), "dave")

        yield* traced(Effect.withSpan(
          a.server.send("dave", { namespace: "default", event: "notice", body: "n" }),
          "sender"
        )).pipe(Effect.orDie)
        const sender = rec.named("sender")[0]
        const sent = yield* rec.ended("the send on A", (s) =>
          s.name === "effect-neffos.send" && s.kind === "producer")
        const delivered = yield* rec.ended("the send on B", (s) =>
          s.name === "effect-neffos.send" && s.kind === "consumer")
        assert.strictEqual(sent.parentId, sender.spanId)
        assert.strictEqual(delivered.traceId, sender.traceId)
        assert.strictEqual(delivered.parentId, sent.spanId)
        assert.strictEqual(delivered.attributes.get("neffos.receivers"), 1)
      }))

    it.scopedLive("the admin dashboard of one instance shows every instance, and forgets one that stopped", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 2)
        const [a, b] = instances
        yield* connected(b.url, "default", "erin", "kitchen")
        yield* settled(instances)
        const often = { interval: "50 millis", heartbeat: "50 millis", expiry: "400 millis" } as const
        const adminA = yield* Admin.make(a.server, often)
        const scopeB = yield* Scope.make()
        yield* Admin.make(b.server, often).pipe(Scope.extend(scopeB))
        const seen = (count: number) =>
          within(
            Effect.repeat(Effect.zipLeft(adminA.state, Effect.sleep("20 millis")), {
              until: (state) =>
                state.instances.length === count
            }),
            "5 seconds",
            `${count} instances on A's dashboard`
          )
        const state = yield* seen(2)
        assert.strictEqual(state.instances[0].instance, a.server.instanceId)
        const fromB = state.instances.find((i) =>
          i.instance === b.server.instanceId
        )!
        assert.strictEqual(fromB.connections, 1)
        assert.deepStrictEqual(fromB.rooms, [{ namespace: "default", room: "kitchen", members: 1 }])
        assert.strictEqual(fromB.broker, "up")
        // B's sampler stops: A drops it after `expiry`
        yield* Scope.close(scopeB, Exit.void)
        yield* seen(1)
      }))

    it.scopedLive("binary bodies stay binary across instances", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 2)
        const [a, b] = instances
        const receiver = yield* connected(b.url, "default", "erin")
        yield* settled(instances)
        const bytes = new Uint8Array([0, 1, 2, 59, 255, 10, 13])
        yield* a.server.broadcast({ namespace: "default", event: "bin", body: bytes }).pipe(Effect.orDie)
        const m = yield* receiver.next
        assert.isTrue(m.binary)
        assert.deepStrictEqual(Array.from(m.body as Uint8Array), Array.from(bytes))

        const reply = yield* a.server.ask({ to: "erin", namespace: "default", event: "bytes", body: bytes }).pipe(
          Effect.orDie
        )
        assert.isTrue(reply.binary)
        assert.deepStrictEqual(Array.from(Message.bodyBytes(reply)), Array.from(bytes))
      }))

    it.scopedLive("names with ; . * ? [ > spaces and unicode, and the empty namespace, work across instances", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 2)
        const [a, b] = instances
        const oddId = "x;y.z* ?[ü✓]>"
        const member = yield* connected(b.url, oddNamespace, oddId, oddRoom)
        const inEmpty = yield* connected(b.url, "", "default")
        // a connection whose id is a namespace name does not receive that namespace's messages
        const namedLikeNamespace = yield* connected(b.url, "default", oddNamespace)
        yield* settled(instances)

        yield* a.server.broadcast({ namespace: oddNamespace, room: oddRoom, event: "e;v.t", body: "odd" }).pipe(
          Effect.orDie
        )
        const m = yield* member.next
        assert.deepStrictEqual([m.namespace, m.room, m.event, text(m)], [oddNamespace, oddRoom, "e;v.t", "odd"])

        yield* a.server.send(oddId, { namespace: oddNamespace, event: "direct", body: "to odd" }).pipe(Effect.orDie)
        assert.strictEqual((yield* member.next).event, "direct")
        const reply = yield* a.server.ask({ to: oddId, namespace: oddNamespace, event: "ping", body: "?" }).pipe(
          Effect.orDie
        )
        assert.strictEqual(text(reply), "pong:?")

        yield* a.server.broadcast({ namespace: "", event: "root", body: "empty ns" }).pipe(Effect.orDie)
        assert.deepStrictEqual([(yield* inEmpty.next).event], ["root"])
        assert.strictEqual(namedLikeNamespace.received.length, 0)
      }))

    it.scopedLive("1,000 messages from one instance arrive in order at the clients of every instance", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 3)
        const [a] = instances
        const clients = yield* Effect.forEach(instances, (i) =>
          connected(i.url, "default", undefined, "ordered"))
        yield* settled(instances)
        const count = 1000
        for (let i = 0; i < count; i++) {
          yield* a.server.broadcast({ namespace: "default", room: "ordered", event: "seq", body: String(i) }).pipe(
            Effect.orDie
          )
        }
        for (const c of clients) {
          yield* c.awaitCount(count)
          const seq = c.received.map(text)
          assert.deepStrictEqual(
            seq,
            Array.from({ length: count }, (_, i) =>
              String(i))
          )
        }
      }))

    it.scopedLive("cluster connection count and disconnect by id reach every instance", () =>
      Effect.gen(function*() {
        const { instances } = yield* cluster(backend, 3)
        const [a, b, c] = instances
        yield* connected(a.url, "default")
        yield* connected(b.url, "default", "gone")
        const goneC = yield* connected(c.url, "default", "gone")
        yield* connected(c.url, "default")
        yield* settled(instances)
        for (const i of instances) {
          assert.strictEqual(yield* Effect.orDie(i.server.clusterConnectionCount), 4)
        }
        const closed = yield* Effect.orDie(a.server.disconnect("gone", { code: 4000, reason: "bye" }))
        assert.strictEqual(closed, 2)
        yield* goneC.close
        yield* awaitEvent(b, "Disconnected")
        yield* awaitEvent(c, "Disconnected")
        assert.strictEqual(yield* Effect.orDie(a.server.clusterConnectionCount), 2)
      }))

    it.scopedLive("no subscription outlives its topic after 1,000 connect/join/leave/disconnect cycles", () =>
      Effect.gen(function*() {
        const { instances, prefix } = yield* cluster(backend, 2)
        const [a, b] = instances
        yield* connected(a.url, "default", "keeper")
        const cycles = 1000
        yield* Effect.forEach(
          Array.from({ length: cycles }, (_, i) =>
            i),
          (i) =>
            Effect.scoped(Effect.gen(function*() {
              const namespace = i % 3 === 0 ? oddNamespace : "default"
              const room = `room-${i % 7}`
              const c = yield* client(i % 2 === 0 ? a.url : b.url, `cycle-${i}`)
              yield* c.connect(namespace)
              yield* c.join(namespace, room)
              yield* c.leave(namespace, room)
              yield* c.disconnect(namespace)
              yield* c.close
            })),
          { concurrency: 16, discard: true }
        )
        // every cycle's close has been processed by its server
        yield* Effect.forEach([a, b], (i) => Effect.repeatN(awaitEvent(i, "Disconnected"), cycles / 2 - 1), {
          discard: true
        })
        yield* settled(instances)
        const expected = {
          A: [`${prefix}.all`, `${prefix}.id.keeper`, `${prefix}.inbox.${a.server.instanceId}`, `${prefix}.ns.default`],
          B: [`${prefix}.all`, `${prefix}.inbox.${b.server.instanceId}`]
        }
        assert.deepStrictEqual(yield* a.exchange.subscriptions, expected.A)
        assert.deepStrictEqual(yield* b.exchange.subscriptions, expected.B)
        if (backend.brokerChannels !== undefined) {
          const onBroker = [...(yield* backend.brokerChannels(prefix))].sort()
          assert.deepStrictEqual(onBroker, [...new Set([...expected.A, ...expected.B])].sort())
        }
      }))

    it.scopedLive("an instance shutting down still tells the others who left", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix(backend)
        const a = yield* instance("A", backend.exchange(prefix))
        const scopeB = yield* Scope.make()
        const b = yield* Scope.extend(instance("B", backend.exchange(prefix)), scopeB)
        const watcher = yield* connected(a.url, "presence")
        // the client stays: its server goes first
        yield* connected(b.url, "presence", "leaver")
        yield* settled([a, b])
        yield* Scope.close(scopeB, Exit.void)
        const m = yield* watcher.next
        assert.deepStrictEqual([m.event, text(m)], ["left", "leaver"])
      }))

    it.scopedLive("layerConfig reads its options from Config; an unreachable broker fails the layer", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix(backend)
        const a = yield* instance("A", backend.fromConfig(prefix))
        const subscriptions = yield* a.exchange.subscriptions
        assert.includeMembers([...subscriptions], [`${prefix}.all`, `${prefix}.inbox.${a.server.instanceId}`])

        const nobodyListens = yield* freePort
        const started = Date.now()
        const failure = yield* Effect.flip(Layer.build(backend.exchange(prefix, nobodyListens)))
        assert.strictEqual(failure._tag, "StackExchangeError")
        assert.isBelow(Date.now() - started, 5000)
      }))

    it.scopedLive("broker down: local delivery goes on, errors are typed and counted, delivery resumes after", () =>
      Effect.gen(function*() {
        const own = yield* backend.ownBroker
        const { instances } = yield* cluster(backend, 2, own.port)
        const [a, b] = instances
        const local = yield* connected(a.url, "default")
        const remote = yield* connected(b.url, "default")
        yield* settled(instances)
        const failuresBefore = (yield* Metric.value(StackExchange.failures)).count

        // a steady stream from A; every broadcast's outcome is recorded
        const errors: Array<Errors.StackExchangeError> = []
        let next = 0
        const stream = yield* Effect.forkScoped(Effect.forever(
          Effect.suspend(() =>
            a.server.broadcast({ namespace: "default", event: "seq", body: String(next++) }).pipe(
              Effect.catchTag("StackExchangeError", (error) => Effect.sync(() => errors.push(error))),
              Effect.zipRight(Effect.sleep("1 millis"))
            )
          )
        ))
        yield* remote.awaitCount(20)

        yield* own.stop
        const down = yield* awaitEvent(a, "StackExchangeDown")
        yield* awaitEvent(b, "StackExchangeDown")
        assert.strictEqual(down.error._tag, "StackExchangeError")
        const localAtDown = local.received.length
        yield* local.awaitCount(localAtDown + 50)
        const failedWhileDown = errors.length
        assert.isAtLeast(failedWhileDown, 40)
        for (const error of errors) assert.strictEqual(error._tag, "StackExchangeError")
        // the exchange refuses to take requests it cannot carry, fast
        const started = Date.now()
        const count = yield* failureOf(a.server.clusterConnectionCount)
        assert.isTrue(isTag("StackExchangeError")(count))
        assert.isBelow(Date.now() - started, 100)

        // membership changes while the broker is away: a room is joined on B
        const joinedMeanwhile = yield* connected(b.url, oddNamespace, undefined, "meanwhile")
        const subscriptionsBefore = yield* a.exchange.subscriptions

        yield* own.start
        yield* awaitEvent(a, "StackExchangeUp")
        yield* awaitEvent(b, "StackExchangeUp")
        const remoteAtUp = remote.received.length
        yield* remote.awaitCount(remoteAtUp + 20)
        yield* Fiber.interrupt(stream)

        // everything is subscribed again, the room joined meanwhile included
        assert.deepStrictEqual(yield* a.exchange.subscriptions, subscriptionsBefore)
        assert.isTrue((yield* b.exchange.subscriptions).some((channel) => channel.endsWith(".meanwhile")))
        yield* a.server.broadcast({ namespace: oddNamespace, room: "meanwhile", event: "late", body: "x" }).pipe(
          Effect.orDie
        )
        const late = yield* joinedMeanwhile.next
        assert.deepStrictEqual([late.room, late.event], ["meanwhile", "late"])

        // local delivery never missed one, the remote one kept the publisher's order
        const localSeq = local.received.map((m) => Number(text(m)))
        assert.deepStrictEqual(localSeq, Array.from({ length: localSeq.length }, (_, i) => i))
        const remoteSeq = remote.received.map((m) => Number(text(m)))
        for (let i = 1; i < remoteSeq.length; i++) assert.isAbove(remoteSeq[i], remoteSeq[i - 1])
        assert.isBelow(remoteSeq.length, localSeq.length)
        const failuresAfter = (yield* Metric.value(StackExchange.failures)).count
        assert.isAtLeast(failuresAfter - failuresBefore, errors.length)
        assert.strictEqual(yield* Effect.orDie(a.server.clusterConnectionCount), 3)
      }))
    it.scopedLive("a frozen broker delays no broadcast: 3,000 from the server and 3,000 from a handler arrive locally", () =>
      Effect.gen(function*() {
        const own = yield* backend.ownBroker
        const [a, b] = yield* ownPair(backend, own, { brokerTimeout: "10 seconds", maxPendingPublishes: 1000 })
        const reader = yield* connected(a.url, "default")
        const sender = yield* connected(a.url, "default")
        yield* connected(b.url, "default")
        yield* settled([a, b])
        const count = 3000

        yield* own.freeze
        yield* within(
          Effect.forEach(
            range(count),
            (body) => Effect.orDie(a.server.broadcast({ namespace: "default", event: "seq", body })),
            { discard: true }
          ),
          "2 seconds",
          "3,000 broadcasts from the server while the broker is frozen"
        )
        yield* reader.awaitCount(count, "2 seconds")
        // the server's chat handler broadcasts every one to the others of its namespace
        for (const body of range(count)) yield* sender.emit({ namespace: "default", event: "chat", body })
        yield* reader.awaitCount(2 * count, "3 seconds")
        // all of it while the broker is still stopped
        assert.deepStrictEqual(reader.received.slice(0, count).map(text), range(count))
        assert.deepStrictEqual(reader.received.slice(count).map(text), range(count))
        assert.isTrue(reader.received.slice(count).every((m) => m.event === "chat"))
      }))

    it.scopedLive("beyond maxPendingPublishes publishes are dropped and counted, a confirm fails, the rest crosses", () =>
      Effect.gen(function*() {
        const own = yield* backend.ownBroker
        const bound = 1000
        const [a, b] = yield* ownPair(backend, own, { brokerTimeout: "10 seconds", maxPendingPublishes: bound })
        const remote = yield* connected(b.url, "default")
        yield* settled([a, b])
        const droppedBefore = (yield* Metric.value(StackExchange.droppedPublishes)).count
        const dropped = Effect.map(Metric.value(StackExchange.droppedPublishes), ({ count }) => count - droppedBefore)
        const broadcast = (body: string) =>
          Effect.orDie(a.server.broadcast({ namespace: "default", event: "seq", body }))

        yield* own.freeze
        yield* Effect.forEach(range(bound - 1), broadcast, { discard: true })
        // the last one that fits waits for the broker; it is queued before the next ones (the scheduler is FIFO)
        const last = yield* Effect.fork(
          a.server.broadcast({ namespace: "default", event: "seq", body: String(bound - 1) }, { confirm: true })
        )
        yield* Effect.yieldNow()
        yield* within(
          Effect.forEach(range(2000, bound), broadcast, { discard: true }),
          "2 seconds",
          "broadcasts beyond the bound"
        )
        assert.strictEqual(yield* dropped, 2000)
        const refused = yield* within(
          failureOf(a.server.broadcast({ namespace: "default", event: "refused" }, { confirm: true })),
          "1 second",
          "a confirmed broadcast beyond the bound"
        )
        assert.strictEqual(reasonOf(refused), "Overloaded")
        assert.strictEqual(yield* dropped, 2001)

        yield* own.thaw
        yield* within(Fiber.join(last), "5 seconds", "the confirmation after the broker resumed").pipe(Effect.orDie)
        // what was taken crosses in order; nothing of what was dropped does
        yield* a.server.broadcast({ namespace: "default", event: "marker" }, { confirm: true }).pipe(Effect.orDie)
        yield* remote.awaitCount(bound + 1)
        assert.deepStrictEqual(remote.received.slice(0, bound).map(text), range(bound))
        assert.strictEqual(remote.received[bound].event, "marker")
      }))

    it.scopedLive("a broker that stops answering for brokerTimeout is reported down, and up once it answers", () =>
      Effect.gen(function*() {
        const own = yield* backend.ownBroker
        const [a, b] = yield* ownPair(backend, own, { brokerTimeout: "500 millis" })
        const local = yield* connected(a.url, "default")
        const remote = yield* connected(b.url, "default")
        yield* settled([a, b])

        yield* own.freeze
        const frozenAt = Date.now()
        const down = yield* awaitEvent(a, "StackExchangeDown", "2 seconds")
        yield* awaitEvent(b, "StackExchangeDown", "2 seconds")
        assert.strictEqual(down.error.reason, "Timeout")
        assert.isAtLeast(Date.now() - frozenAt, 450)
        // while it is down, local delivery goes on and what needs the broker fails at once
        const refused = yield* within(
          failureOf(a.server.broadcast({ namespace: "default", event: "during" })),
          "100 millis",
          "a broadcast while the broker is down"
        )
        assert.strictEqual(reasonOf(refused), "Down")
        assert.strictEqual((yield* local.next).event, "during")
        const count = yield* within(failureOf(a.server.clusterConnectionCount), "100 millis", "a count while down")
        assert.strictEqual(reasonOf(count), "Down")

        yield* own.thaw
        yield* awaitEvent(a, "StackExchangeUp", "5 seconds")
        yield* awaitEvent(b, "StackExchangeUp", "5 seconds")
        yield* a.server.broadcast({ namespace: "default", event: "after" }, { confirm: true }).pipe(Effect.orDie)
        assert.strictEqual((yield* remote.next).event, "after")
        assert.strictEqual(yield* Effect.orDie(b.server.clusterConnectionCount), 2)
      }))

    it.scopedLive("requests to a frozen broker fail with Timeout within their timeouts; they work again after", () =>
      Effect.gen(function*() {
        const own = yield* backend.ownBroker
        const [a, b] = yield* ownPair(backend, own, { brokerTimeout: "10 seconds" })
        yield* connected(b.url, "default", "carol")
        yield* settled([a, b])

        yield* own.freeze
        const requests = {
          count: a.server.clusterConnectionCount,
          send: a.server.send("carol", { namespace: "default", event: "notice" }),
          ask: a.server.ask({ to: "carol", namespace: "default", event: "ping" }, { timeout: "1 second" }),
          disconnect: a.server.disconnect("nobody")
        }
        for (const [name, request] of Object.entries(requests)) {
          const failure = yield* within(failureOf(request as Effect.Effect<unknown, unknown>), "2 seconds", name)
          assert.strictEqual(reasonOf(failure), "Timeout", name)
        }

        yield* own.thaw
        assert.strictEqual(yield* Effect.orDie(a.server.clusterConnectionCount), 1)
      }))
  })
