/**
 * Presence on one instance (the test kit, virtual time) and the cluster agent's
 * sync rules, driven message by message: what needs no broker.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Events from "effect-neffos/Events"
import * as Message from "effect-neffos/Message"
import type * as Presence from "effect-neffos/Presence"
import * as Server from "effect-neffos/Server"
import * as TestServer from "effect-neffos/TestServer"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Cluster from "../src/internal/cluster.js"
import * as wire from "../src/internal/clusterWire.js"
import { Registry } from "../src/internal/registry.js"
import type { ServerConn } from "../src/internal/serverConn.js"

const events = Events.namespaces({
  default: {
    // the client names itself; the server keeps it as presence metadata
    name: (ns, msg) =>
      Effect.flatMap(Server.Server, (server) => server.presence.setMetadata(ns.conn, { name: Message.bodyText(msg) }))
  },
  other: {}
})

const refs = (members: ReadonlyArray<Presence.Member>) => members.map((m) => m.id).sort()

describe("Presence on one instance", () => {
  it.effect("members, counts by connection and by id, metadata, grouping", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const alice1 = yield* TestServer.connect({ id: "alice" })
      const alice2 = yield* TestServer.connect({ id: "alice" })
      const bob = yield* TestServer.connect({ id: "bob" })
      for (const c of [alice1, alice2, bob]) yield* c.connect("default")
      yield* alice1.join("default", "lobby")
      yield* bob.join("default", "lobby")

      assert.deepStrictEqual(yield* server.presence.count("default"), { connections: 3, ids: 2 })
      assert.deepStrictEqual(yield* server.presence.count("default", "lobby"), { connections: 2, ids: 2 })
      assert.deepStrictEqual(yield* server.presence.count("other"), { connections: 0, ids: 0 })
      assert.deepStrictEqual(refs(yield* server.presence.members("default", "lobby")), ["alice", "bob"])
      const groups = yield* server.presence.byId("default")
      assert.deepStrictEqual(
        groups.map((g) => [g.id, g.members.length]).sort(),
        [["alice", 2], ["bob", 1]]
      )
      const [member] = (yield* server.presence.members("default", "lobby")).filter((m) => m.id === "bob")
      assert.strictEqual(member.instance, server.instanceId)
      assert.strictEqual(member.room, "lobby")
      assert.isTrue(member.ref.startsWith(`${server.instanceId}/`))

      // the server sets metadata from a handler: every member of the connection shows it
      const ns = yield* bob.connect("default")
      yield* ns.emit("name", "Bob B.")
      yield* bob.sync
      for (const m of (yield* server.presence.members("default")).filter((m) => m.id === "bob")) {
        assert.deepStrictEqual(m.metadata, { name: "Bob B." })
      }
      assert.deepStrictEqual(
        (yield* server.presence.members("default", "lobby")).find((m) => m.id === "bob")?.metadata,
        { name: "Bob B." }
      )

      yield* bob.close()
      yield* alice2.close()
      yield* alice1.sync
      assert.deepStrictEqual(yield* server.presence.count("default"), { connections: 1, ids: 1 })
      assert.deepStrictEqual(yield* server.presence.count("default", "lobby"), { connections: 1, ids: 1 })
    }).pipe(Effect.provide(TestServer.layer({ events, presence: true }))))

  it.effect("changes: join, update and leave in order; watch starts with the state and never repeats it", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const early = yield* TestServer.connect({ id: "early" })
      yield* early.join("default", "r")
      const watching = yield* server.presence.watch("default", "r").pipe(Stream.take(4), Stream.runCollect, Effect.fork)
      const all = yield* server.presence.changes.pipe(Stream.take(5), Stream.runCollect, Effect.fork)
      yield* Effect.yieldNow()

      const late = yield* TestServer.connect({ id: "late" })
      const ns = yield* late.connect("default")
      yield* late.join("default", "r")
      yield* ns.emit("name", "Late")
      yield* late.sync
      yield* late.close()

      const view = Chunk.toReadonlyArray(yield* Fiber.join(watching))
      assert.deepStrictEqual(view.map((v) => v._tag), ["State", "Join", "Update", "Leave"])
      const state = view[0] as Presence.State
      assert.deepStrictEqual(refs(state.members), ["early"])
      assert.isTrue(view.slice(1).every((c) => c._tag !== "State" && c.member.id === "late"))
      const update = view[2] as Extract<Presence.Change, { _tag: "Update" }>
      assert.deepStrictEqual([update.previous, update.member.metadata], [undefined, { name: "Late" }])
      assert.strictEqual((view[3] as Extract<Presence.Change, { _tag: "Leave" }>).reason, "Left")

      const changes = Chunk.toReadonlyArray(yield* Fiber.join(all))
      assert.deepStrictEqual(
        changes.map((c) => `${c._tag}:${c.member.room}`),
        ["Join:", "Join:r", "Update:", "Update:r", "Leave:r"]
      )
      for (let i = 1; i < changes.length; i++) assert.strictEqual(changes[i].version, changes[i - 1].version + 1)
    }).pipe(Effect.provide(TestServer.layer({ events, presence: true }))))

  it.effect("without the option, presence dies with a message saying how to turn it on", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const exit = yield* Effect.exit(server.presence.count("default"))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "presence is not enabled")
    }).pipe(Effect.provide(TestServer.layer({ events }))))

  it.effect("pushes: a state to whoever joins, then one batched diff per interval to the others", () =>
    Effect.gen(function*() {
      const alice = yield* TestServer.connect({ id: "alice" })
      yield* alice.join("default", "pushed")
      yield* TestClock.adjust("50 millis")
      const first = yield* alice.expect({ room: "pushed", event: "_OnPresence" })
      const state = JSON.parse(Message.bodyText(first)) as Presence.PushFrame
      assert.strictEqual(state.type, "state")
      assert.deepStrictEqual(state.type === "state" && state.members.map((m) => m.id), ["alice"])
      assert.deepStrictEqual(state.count, { connections: 1, ids: 1 })

      // two join and one of them leaves again within one interval: alice sees one diff with bob only
      const bob = yield* TestServer.connect({ id: "bob" })
      const carol = yield* TestServer.connect({ id: "carol" })
      yield* bob.join("default", "pushed")
      yield* carol.join("default", "pushed")
      const carolNs = yield* carol.connect("default")
      yield* carolNs.emit("name", "C")
      yield* carol.sync
      yield* carol.close()
      yield* alice.sync
      yield* alice.expectNone
      yield* TestClock.adjust("50 millis")
      const diff = JSON.parse(Message.bodyText(yield* alice.expect({ event: "_OnPresence" }))) as Presence.PushFrame
      assert.strictEqual(diff.type, "diff")
      if (diff.type === "diff") {
        assert.deepStrictEqual(diff.joins.map((m) => m.id), ["bob"])
        assert.deepStrictEqual([diff.leaves.length, diff.updates.length], [0, 0])
        assert.deepStrictEqual(diff.count, { connections: 2, ids: 2 })
      }
      // bob, who joined in that interval, got the state instead
      const bobState = JSON.parse(Message.bodyText(yield* bob.expect({ event: "_OnPresence" }))) as Presence.PushFrame
      assert.deepStrictEqual(bobState.type === "state" && bobState.members.map((m) => m.id).sort(), ["alice", "bob"])

      // rooms not opted in get nothing
      yield* alice.join("default", "quiet")
      yield* bob.join("default", "quiet")
      yield* TestClock.adjust("100 millis")
      yield* alice.expectNone
      yield* bob.expectNone
    }).pipe(Effect.provide(TestServer.layer({
      events,
      presence: { push: (_namespace, room) => room === "pushed" }
    }))))
})

// -----------------------------------------------------------------------------
// the agent's sync rules, message by message
// -----------------------------------------------------------------------------

const remote = "instance-b"

/** An agent with no connections of its own, attached to a link that records what it sends. */
const agent = Effect.gen(function*() {
  const registry = new Registry<ServerConn>()
  const a = yield* Cluster.make("instance-a", registry, {}, { heartbeatInterval: "1 second", instanceTtl: "3 seconds" })
  const sent: Array<{ readonly to: string | undefined; readonly message: wire.Wire | undefined }> = []
  yield* a.attach({
    publish: (payload, to) => void sent.push({ to, message: wire.decode(payload) }),
    request: () => Effect.void,
    settled: Effect.void
  })
  const from = (message: wire.Wire) => a.receive(remote, wire.encode(message))
  const requests = () => sent.filter((s) => s.to === remote && s.message?.k === "q").length
  const ids = (room = "r") => Effect.map(a.presence.members("ns", room), refs)
  return { a, sent, from, requests, ids }
})

const join = (key: number, id: string, room = "r"): wire.Op => ["j", key, id, "ns", room, 1, null]

describe("Presence sync between instances", () => {
  it.scoped("diffs before the snapshot wait for it; the snapshot's own changes are not applied twice", () =>
    Effect.gen(function*() {
      const { a, from, ids, requests } = yield* agent
      from({ k: "d", s: 5, o: [join(1, "x")] })
      from({ k: "d", s: 6, o: [join(2, "y")] })
      assert.deepStrictEqual(yield* ids(), [])
      assert.strictEqual(requests(), 1)
      // the snapshot was taken after diff 5: it holds x; diff 6 is applied after it
      from({ k: "s", s: 5, p: 0, n: 1, c: [[1, "x", { name: "X" }, [["ns", "r", 1]]]] })
      assert.deepStrictEqual(yield* ids(), ["x", "y"])
      from({ k: "d", s: 7, o: [["l", 1, "ns", "r"], ["u", 2, { away: true }]] })
      assert.deepStrictEqual(yield* ids(), ["y"])
      assert.deepStrictEqual((yield* a.presence.members("ns", "r"))[0].metadata, { away: true })
      // a duplicate is ignored
      from({ k: "d", s: 7, o: [join(1, "x")] })
      assert.deepStrictEqual(yield* ids(), ["y"])
    }))

  it.scoped("a missed diff (seen as a gap, or by the heartbeat's number) asks for a snapshot that repairs it", () =>
    Effect.gen(function*() {
      const { from, ids, requests } = yield* agent
      from({ k: "s", s: 0, p: 0, n: 1, c: [] })
      from({ k: "d", s: 1, o: [join(1, "x")] })
      // diff 2 is lost: diff 3 waits
      from({ k: "d", s: 3, o: [join(3, "z")] })
      assert.deepStrictEqual(yield* ids(), ["x"])
      assert.strictEqual(requests(), 2)
      // the snapshot after diff 2 (x left, w joined), then the buffered diff 3
      from({ k: "s", s: 2, p: 0, n: 1, c: [[4, "w", null, [["ns", "r", 1]]]] })
      assert.deepStrictEqual(yield* ids(), ["w", "z"])

      // the heartbeat says 4 diffs were sent; only 3 arrived
      yield* TestClock.adjust("2 seconds")
      from({ k: "h", s: 4 })
      assert.strictEqual(requests(), 3)
    }))

  it.scoped("a snapshot in several parts counts once all parts are in", () =>
    Effect.gen(function*() {
      const { from, ids } = yield* agent
      const conns: Array<wire.WireConn> = Array.from(
        { length: 3000 },
        (_, i) => [i, `id-${i}`, { padding: "x".repeat(100) }, [["ns", "r", 1]]] as const
      )
      const parts = wire.snapshotParts(0, conns)
      assert.isAbove(parts.length, 1)
      for (const part of parts.slice(0, -1)) from(wire.decode(part)!)
      assert.deepStrictEqual(yield* ids(), [])
      from(wire.decode(parts[parts.length - 1])!)
      assert.strictEqual((yield* ids()).length, 3000)
    }))

  it.scoped("an instance not heard from within the TTL is dropped with all its members; a goodbye drops it at once", () =>
    Effect.gen(function*() {
      const { a, from, ids, sent } = yield* agent
      from({
        k: "s",
        s: 0,
        p: 0,
        n: 1,
        c: [[1, "x", null, [["ns", "r", 1], ["ns", "", 1]]], [2, "y", null, [["ns", "r", 1]]]]
      })
      const leaves = yield* a.presence.changes.pipe(Stream.take(3), Stream.runCollect, Effect.fork)
      yield* Effect.yieldNow()
      yield* TestClock.adjust("3 seconds")
      assert.deepStrictEqual(yield* ids(), ["x", "y"])
      // heartbeats go out every second
      assert.strictEqual(sent.filter((s) => s.message?.k === "h").length, 4)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* ids(), [])
      assert.deepStrictEqual(yield* a.presence.count("ns"), { connections: 0, ids: 0 })
      const dropped = Chunk.toReadonlyArray(yield* Fiber.join(leaves))
      assert.isTrue(dropped.every((c) => c._tag === "Leave" && c.reason === "InstanceDown"))

      // it comes back (it was only partitioned): heard again, asked again
      from({ k: "h", s: 0 })
      from({ k: "s", s: 0, p: 0, n: 1, c: [[1, "x", null, [["ns", "r", 1]]]] })
      assert.deepStrictEqual(yield* ids(), ["x"])
      from({ k: "b" })
      assert.deepStrictEqual(yield* ids(), [])
      // what it sends after its goodbye does not bring it back
      from({ k: "d", s: 1, o: [join(5, "ghost")] })
      from({ k: "s", s: 1, p: 0, n: 1, c: [[5, "ghost", null, [["ns", "r", 1]]]] })
      assert.deepStrictEqual(yield* ids(), [])
      assert.deepStrictEqual((yield* a.presence.instances).map((i) => i.instance), ["instance-a"])
    }))
})
