/**
 * Presence and remote control across three instances, run against every backend
 * by its own test file.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cluster from "effect-neffos/Cluster"
import type * as Errors from "effect-neffos/Errors"
import type * as Presence from "effect-neffos/Presence"
import type * as StackExchange from "effect-neffos/StackExchange"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as neffos from "neffos.js"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { agree, cluster, type PresenceInstance, presenceInstance, proxy, truth, until, view } from "./Presence.kit.js"
import { awaitEvent, type Broker, client } from "./StackExchange.kit.js"

export interface Backend {
  readonly name: string
  /** an exchange on the broker of the run, or on the broker at `port` */
  readonly exchange: (prefix: string, port?: number) => Layer.Layer<
    StackExchange.StackExchange,
    Errors.StackExchangeError
  >
  /** the port of the run's broker */
  readonly port: number
  /** a broker process of the test's own, on a spare port */
  readonly ownBroker: Effect.Effect<Broker, never, Scope.Scope>
  /** the fixture's backend and broker arguments */
  readonly childArgs: ReadonlyArray<string>
}

let prefixes = 0
const freshPrefix = (backend: Backend) =>
  `presence-${backend.name.toLowerCase()}-${process.pid}-${Date.now().toString(36)}-${++prefixes}`

const ttl = Duration.toMillis(Duration.decode(cluster.instanceTtl))
const heartbeat = Duration.toMillis(Duration.decode(cluster.heartbeatInterval))
/** how long a change may take to be seen everywhere */
const bounded = "3 seconds"
/** a dead instance is dropped at most one heartbeat after the TTL; the rest is slack for a loaded machine */
const ttlBound = Duration.millis(ttl + heartbeat + 1500)

const trio = (backend: Backend, port?: number) =>
  Effect.gen(function*() {
    const prefix = freshPrefix(backend)
    const instances = yield* Effect.forEach(["A", "B", "C"], (name) =>
      presenceInstance(name, backend.exchange(prefix, port)))
    return { prefix, instances }
  })

const connected = (url: string, namespace: string, id: string, room?: string) =>
  Effect.gen(function*() {
    const c = yield* client(url, id)
    yield* c.connect(namespace)
    if (room !== undefined) yield* c.join(namespace, room)
    return c
  })

const everywhere = (instances: ReadonlyArray<PresenceInstance>, room: string | undefined, what: string) =>
  until(instances, agree(instances, instances, "default", room), what, bounded)

/** A neffos.js client that records the rooms the server joins it to and leaves, and what it receives. */
const neffosClient = (url: string) =>
  Effect.gen(function*() {
    const seen = yield* Queue.unbounded<string>()
    const conn = yield* Effect.acquireRelease(
      Effect.promise(() =>
        neffos.dial(url, {
          default: {
            _OnRoomJoined: (_ns: neffos.NSConn, msg: neffos.Message) => void seen.unsafeOffer(`joined ${msg.Room}`),
            _OnRoomLeft: (_ns: neffos.NSConn, msg: neffos.Message) => void seen.unsafeOffer(`left ${msg.Room}`),
            chat: (_ns: neffos.NSConn, msg: neffos.Message) => void seen.unsafeOffer(`chat ${msg.Room} ${msg.Body}`)
          }
        })
      ),
      (conn) => Effect.sync(() => conn.close())
    )
    const ns = yield* Effect.promise(() => conn.connect("default"))
    const next = Queue.take(seen).pipe(
      Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("the neffos.js client saw nothing") }),
      Effect.orDie
    )
    return { next, join: (room: string) => Effect.promise(() => ns.joinRoom(room)) }
  })

const outcomeOf = <A>(result: Cluster.Result<A>, instance: PresenceInstance) =>
  result.instances.find((o) => o.instance === instance.server.instanceId)

export const suite = (backend: Backend) =>
  describe(`Presence on ${backend.name}`, () => {
    it.scopedLive("members and counts agree on every instance within a bounded time after each change", () =>
      Effect.gen(function*() {
        const { instances } = yield* trio(backend)
        const [a, b, c] = instances
        yield* connected(a.url, "default", "alice", "lobby")
        const alice2 = yield* connected(c.url, "default", "alice", "lobby")
        const bob = yield* connected(b.url, "default", "bob", "lobby")
        const carol = yield* connected(c.url, "default", "carol")
        yield* everywhere(instances, undefined, "connections")
        yield* everywhere(instances, "lobby", "joins")
        for (const i of instances) {
          assert.deepStrictEqual(yield* i.server.presence.count("default"), { connections: 4, ids: 3 })
          assert.deepStrictEqual(yield* i.server.presence.count("default", "lobby"), { connections: 3, ids: 2 })
          assert.deepStrictEqual(yield* view(instances, i, "default", "lobby"), ["alice@A", "alice@C", "bob@B"])
        }

        yield* bob.leave("default", "lobby")
        yield* everywhere(instances, "lobby", "a leave")
        yield* carol.join("default", "lobby")
        yield* everywhere(instances, "lobby", "a join")

        // metadata set by the server on B reaches every instance, on each of bob's members
        yield* bob.emit({ namespace: "default", event: "name", body: "Bob" })
        yield* until(
          instances,
          Effect.map(Effect.forEach(instances, (i) => i.server.presence.members("default")), (lists) => {
            const bobs = lists.flat().filter((m) => m.id === "bob")
            return bobs.length === 3 && bobs.every((m) => m.metadata?.name === "Bob")
              ? undefined
              : JSON.stringify(bobs.map((m) => m.metadata))
          }),
          "metadata everywhere",
          bounded
        )

        yield* alice2.close
        yield* everywhere(instances, undefined, "a closed connection")
        yield* everywhere(instances, "lobby", "a closed connection's room")
        for (const i of instances) {
          assert.deepStrictEqual(yield* i.server.presence.count("default", "lobby"), { connections: 2, ids: 2 })
          const groups = yield* i.server.presence.byId("default")
          assert.deepStrictEqual(groups.map((g) => `${g.id}:${g.members.length}`).sort(), [
            "alice:1",
            "bob:1",
            "carol:1"
          ])
        }
      }))

    it.scopedLive("a client of a pushed room gets the state, then diffs of joins and leaves on other instances", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix(backend)
        const options = { presence: { push: true, pushInterval: "20 millis" } } as const
        const instances = yield* Effect.forEach(["A", "B"], (name) =>
          presenceInstance(name, backend.exchange(prefix), options))
        const [a, b] = instances
        const watcher = yield* connected(a.url, "default", "watcher", "lobby")
        // its namespace's frames come too: only the room's are looked at
        const roomFrame: Effect.Effect<Presence.PushFrame> = Effect.flatMap(watcher.next, (m) => {
          assert.strictEqual(m.event, "_OnPresence")
          return m.room === "lobby" ? Effect.succeed(JSON.parse(String(m.body)) as Presence.PushFrame) : roomFrame
        })
        const state = yield* roomFrame
        assert.deepStrictEqual(
          state.type === "state" && state.members.map((m) =>
            m.id
          ),
          ["watcher"]
        )

        const other = yield* connected(b.url, "default", "other", "lobby")
        const joined = yield* roomFrame
        assert.deepStrictEqual(
          joined.type === "diff" && [joined.joins.map((m) => m.id), joined.count],
          [["other"], { connections: 2, ids: 2 }]
        )
        yield* other.close
        const left = yield* roomFrame
        assert.deepStrictEqual(left.type === "diff" && left.leaves.map((m) => m.id), ["other"])
      }))

    it.scopedLive("a killed instance's members vanish from the others within the TTL, together", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix(backend)
        const a = yield* presenceInstance("A", backend.exchange(prefix))
        const b = yield* presenceInstance("B", backend.exchange(prefix))
        const link = yield* proxy(backend.port)
        const victim = yield* presenceInstance("V", backend.exchange(prefix, link.port))
        const all = [a, b, victim]
        yield* connected(a.url, "default", "stays", "lobby")
        for (const id of ["v1", "v2", "v3"]) yield* connected(victim.url, "default", id, "lobby")
        yield* everywhere(all, "lobby", "the victim's members")
        const leaves = yield* a.server.presence.changes.pipe(
          Stream.filter((change) => change.member.instance === victim.server.instanceId),
          Stream.take(6),
          Stream.runCollect,
          Effect.fork
        )
        yield* Effect.yieldNow()

        // no goodbye, no leave: its broker connections are simply gone
        const cutAt = Date.now()
        yield* link.cut
        yield* until([a, b], agree([a, b], [a, b], "default", "lobby"), "the dead instance's members vanish", ttlBound)
        yield* until([a, b], agree([a, b], [a, b], "default"), "its namespace members too", "1 second")
        const elapsed = Date.now() - cutAt
        // the heartbeat TTL removed them, not a message
        assert.isAtLeast(elapsed, ttl - heartbeat)
        const dropped = Chunk.toReadonlyArray(yield* Fiber.join(leaves))
        assert.isTrue(dropped.every((c) => c._tag === "Leave" && c.reason === "InstanceDown"))
        const known = (yield* a.server.presence.instances).map((i) => i.instance)
        assert.notInclude(known, victim.server.instanceId)
        yield* victim.close
      }))

    it.live("a SIGKILLed instance process disappears from presence within the TTL", () =>
      Effect.scoped(Effect.gen(function*() {
        const prefix = freshPrefix(backend)
        const a = yield* presenceInstance("A", backend.exchange(prefix))
        const b = yield* presenceInstance("B", backend.exchange(prefix))
        const root = Path.join(import.meta.dirname, "..")
        const child = yield* Effect.acquireRelease(
          Effect.sync(() =>
            ChildProcess.spawn(
              process.execPath,
              [
                "--import",
                "tsx",
                "test/fixtures/presence-instance.ts",
                ...backend.childArgs,
                prefix,
                String(heartbeat),
                String(ttl)
              ],
              { cwd: root, stdio: ["ignore", "pipe", "inherit"] }
            )
          ),
          (child) =>
            Effect.sync(() => child.kill("SIGKILL"))
        )
        const ready = yield* Effect.async<{ url: string; instance: string }>((resume) => {
          let out = ""
          child.stdout.on("data", (data: Buffer) => {
            out += data.toString("utf8")
            const match = /READY (\S+) (\S+)\n/.exec(out)
            if (match !== null) resume(Effect.succeed({ url: match[1], instance: match[2] }))
          })
        }).pipe(
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("the instance did not start") }),
          Effect.orDie
        )
        yield* connected(ready.url, "default", "k1", "lobby")
        yield* connected(ready.url, "default", "k2", "lobby")
        const fromChild = (i: PresenceInstance) =>
          Effect.map(
            i.server.presence.members("default", "lobby"),
            (ms) => ms.filter((m) => m.instance === ready.instance).map((m) => m.id).sort()
          )
        yield* until(
          [a, b],
          Effect.map(Effect.forEach([a, b], fromChild), (lists) =>
            lists.every((ids) => ids.join() === "k1,k2")
              ? undefined
              : JSON.stringify(lists)),
          "the child's members",
          "10 seconds"
        )
        const killedAt = Date.now()
        child.kill("SIGKILL")
        yield* until(
          [a, b],
          Effect.map(
            Effect.forEach([a, b], fromChild),
            (lists) => lists.every((ids) => ids.length === 0) ? undefined : JSON.stringify(lists)
          ),
          "the killed process's members vanish",
          ttlBound
        )
        assert.isAtLeast(Date.now() - killedAt, ttl - heartbeat)
      })), 30_000)

    it.scopedLive("a restarted broker is refilled by the live instances, changes made meanwhile included", () =>
      Effect.gen(function*() {
        const own = yield* backend.ownBroker
        const { instances } = yield* trio(backend, own.port)
        const [a, b, c] = instances
        const leaver = yield* connected(a.url, "default", "leaver", "lobby")
        yield* connected(b.url, "default", "bob", "lobby")
        const closer = yield* connected(c.url, "default", "closer", "lobby")
        yield* everywhere(instances, "lobby", "before the restart")

        yield* own.stop
        yield* Effect.forEach(instances, (i) =>
          awaitEvent(i, "StackExchangeDown"), { discard: true })
        yield* leaver.leave("default", "lobby")
        yield* closer.close
        yield* connected(b.url, "default", "newcomer", "lobby")
        yield* own.start
        yield* Effect.forEach(instances, (i) =>
          awaitEvent(i, "StackExchangeUp"), { discard: true })

        yield* everywhere(instances, "lobby", "after the restart")
        yield* everywhere(instances, undefined, "namespaces after the restart")
        assert.deepStrictEqual(yield* view(instances, a, "default", "lobby"), ["bob@B", "newcomer@B"])
      }))

    it.scopedLive("no ghost members after 1,000 join/leave cycles with an instance killed every 100", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix(backend)
        const a = yield* presenceInstance("A", backend.exchange(prefix))
        const b = yield* presenceInstance("B", backend.exchange(prefix))
        const victim = (n: number) =>
          Effect.gen(function*() {
            const link = yield* proxy(backend.port)
            const instance = yield* presenceInstance(`V${n}`, backend.exchange(prefix, link.port))
            return { instance, kill: Effect.zipRight(link.cut, instance.close) }
          })
        const rooms = ["r0", "r1", "r2", "r3"]
        let current = yield* victim(0)
        const started = Date.now()
        for (let block = 0; block < 10; block++) {
          const targets = [a, b, current.instance]
          yield* Effect.forEach(
            Array.from({ length: 100 }, (_, i) =>
              block * 100 + i),
            (i) =>
              Effect.gen(function*() {
                const c = yield* connected(targets[i % 3].url, "default", `u${i % 37}`, rooms[i % 4])
                if (i % 5 !== 0) {
                  yield* c.leave("default", rooms[i % 4])
                }
                if (i % 2 === 0) {
                  yield* c.close
                }
              }),
            { concurrency: 16, discard: true }
          )
          yield* current.kill
          current = yield* victim(block + 1)
        }
        const live = [a, b, current.instance]
        for (const room of [undefined, ...rooms]) {
          yield* until(live, agree(live, live, "default", room), `room ${room ?? "(namespace)"}`, ttlBound)
        }
        // something is left to compare: the cycles that stayed on A and B
        assert.isAbove((yield* truth(live, "default")).length, 100)
        assert.isBelow(Date.now() - started, 60_000)
      }), 90_000)

    it.scopedLive("remote join and leave by id and by room reach a connection on another instance and its client", () =>
      Effect.gen(function*() {
        const { instances } = yield* trio(backend)
        const [a, b, c] = instances
        const dora = yield* neffosClient(`${c.url}?id=dora`)
        const erin = yield* neffosClient(`${b.url}?id=erin`)
        yield* erin.join("lobby")
        assert.strictEqual(yield* erin.next, "joined lobby")

        const joined = yield* a.server.joinRoom({ namespace: "default", id: "dora" }, "vip")
        assert.isTrue(joined.complete)
        assert.strictEqual(joined.value.count, 1)
        assert.deepStrictEqual(
          instances.map((i) => {
            const outcome = outcomeOf(joined, i)
            return outcome?._tag === "Ok" ? outcome.value.count : outcome?._tag
          }),
          [0, 0, 1]
        )
        assert.strictEqual(yield* dora.next, "joined vip")
        // the join completed with C subscribed to the room: a broadcast made now reaches her
        yield* a.server.broadcast({ namespace: "default", room: "vip", event: "chat", body: "welcome" })
        assert.strictEqual(yield* dora.next, "chat vip welcome")
        yield* everywhere(instances, "vip", "a remote join in presence")

        const info = yield* b.server.connectionsInfo({ id: "dora" })
        assert.isTrue(info.complete)
        assert.deepStrictEqual(info.value.map((i) => [i.id, i.instance, i.namespaces]), [
          ["dora", c.server.instanceId, [{ namespace: "default", rooms: ["vip"] }]]
        ])
        const inLobby = yield* c.server.connectionsInfo({ namespace: "default", room: "lobby" })
        assert.deepStrictEqual(inLobby.value.map((i) => [i.id, i.instance]), [["erin", b.server.instanceId]])

        // everyone in the lobby (erin, on B) joins vip too; then vip's members leave it, from B
        const moved = yield* c.server.joinRoom({ namespace: "default", room: "lobby" }, "vip")
        assert.strictEqual(moved.value.count, 1)
        assert.strictEqual(yield* erin.next, "joined vip")
        const left = yield* b.server.leaveRoom({ namespace: "default", room: "vip" }, "vip")
        assert.isTrue(left.complete)
        assert.strictEqual(left.value.count, 2)
        assert.strictEqual(yield* dora.next, "left vip")
        assert.strictEqual(yield* erin.next, "left vip")
        yield* everywhere(instances, "vip", "remote leaves in presence")
        assert.deepStrictEqual(yield* view(instances, a, "default", "vip"), [])

        const closed = yield* a.server.disconnectConnections({ namespace: "default", room: "lobby" })
        assert.strictEqual(closed.value.count, 1)
        yield* everywhere(instances, undefined, "a remote disconnect in presence")
        assert.deepStrictEqual(yield* view(instances, a, "default"), ["dora@C"])
      }))

    it.scopedLive("an instance that does not answer is reported TimedOut, a client that does not answer as a failure", () =>
      Effect.gen(function*() {
        const prefix = freshPrefix(backend)
        const a = yield* presenceInstance("A", backend.exchange(prefix))
        const b = yield* presenceInstance("B", backend.exchange(prefix))
        const link = yield* proxy(backend.port)
        const victim = yield* presenceInstance("V", backend.exchange(prefix, link.port))
        // the kit's raw client never answers a server's join request
        yield* connected(a.url, "default", "frank")
        yield* connected(victim.url, "default", "frank")
        yield* until([a], agree([a, b, victim], [a], "default"), "frank on both")

        yield* link.cut
        const started = Date.now()
        const result = yield* a.server.joinRoom({ namespace: "default", id: "frank" }, "vip", { timeout: "600 millis" })
        assert.isBelow(Date.now() - started, ttl)
        assert.isFalse(result.complete)
        const mine = outcomeOf(result, a)
        assert.strictEqual(mine?._tag, "Ok")
        if (mine?._tag === "Ok") {
          assert.strictEqual(mine.value.count, 0)
          assert.deepStrictEqual(mine.value.failures.map((f) => [f.id, f.error]), [["frank", "AskTimeout"]])
        }
        assert.strictEqual(outcomeOf(result, b)?._tag, "Ok")
        assert.deepStrictEqual(outcomeOf(result, victim), { _tag: "TimedOut", instance: victim.server.instanceId })

        const incomplete = yield* Effect.flip(
          a.server.connectionsInfo({ id: "frank" }, { timeout: "300 millis" }).pipe(
            Cluster.requireComplete("connectionsInfo")
          )
        )
        assert.strictEqual(incomplete._tag, "Incomplete")
        assert.deepStrictEqual(
          (incomplete.result.value as ReadonlyArray<Cluster.ConnectionInfo>).map((i) =>
            i.instance
          ),
          [a.server.instanceId]
        )
        yield* victim.close
      }))
  })
