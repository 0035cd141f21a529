/**
 * Recoverable rooms on one instance, with the test kit under TestClock: the
 * in-memory store's bounds, the resume decision, positions on the wire (only to
 * clients that ask), a resume after a reconnect (what waited during the replay
 * comes after it, exactly once), a gap larger than the history, a resync after a
 * dropped frame, and `server.history`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import * as Client from "../src/Client.js"
import type * as Conn from "../src/Conn.js"
import * as Events from "../src/Events.js"
import * as History from "../src/History.js"
import { MemoryStore, type Read } from "../src/internal/historyStore.js"
import { decide } from "../src/internal/recoveryWire.js"
import * as Message from "../src/Message.js"
import * as Server from "../src/Server.js"
import * as TestServer from "../src/TestServer.js"
import type { RawSocket } from "../src/Transport.js"

/** Dies after a real second: every wait here has its own deadline. */
const within = <A, E, R>(effect: Effect.Effect<A, E, R>, what: string): Effect.Effect<A, E, R> =>
  TestServices.provideWithLive(
    effect,
    Effect.timeoutFailCause({
      duration: Duration.seconds(1),
      onTimeout: () => Cause.die(new Error(`no ${what} within 1 s`))
    })
  )

const message = (body: string, room = "chat-1") => Message.make({ namespace: "default", room, event: "msg", body })

describe("the in-memory store", () => {
  const settings = { size: 3, ttl: 60_000 }

  it("keeps the last `size` messages of a room, with contiguous offsets", () => {
    const store = new MemoryStore({ maxBytes: 1 << 20, maxRooms: 10 }, () => 0)
    for (let i = 1; i <= 10; i++) store.append("default", "chat-1", settings, message(`m${i}`))
    assert.strictEqual(store.roomSize("default", "chat-1"), 3)
    const { epoch } = store.position("default", "chat-1")
    const read = store.read("default", "chat-1", settings, { epoch, offset: 7 }, 10)
    assert.deepStrictEqual(read.entries.map((e) => [e.stored.offset, e.stored.prev, Message.bodyText(e.message)]), [
      [8, 7, "m8"],
      [9, 8, "m9"],
      [10, 9, "m10"]
    ])
    assert.isTrue(read.covered)
    // offset 6 is gone: what follows 5 is not all there
    assert.isFalse(store.read("default", "chat-1", settings, { epoch, offset: 5 }, 10).covered)
  })

  it("drops messages older than `ttl`, keeping the room's epoch and offset", () => {
    let now = 0
    const store = new MemoryStore({ maxBytes: 1 << 20, maxRooms: 10 }, () => now)
    store.append("default", "chat-1", settings, message("old"))
    now = 60_001
    const read = store.read("default", "chat-1", settings, { ...store.position("default", "chat-1"), offset: 0 }, 10)
    assert.deepStrictEqual([read.entries.length, read.covered, read.position.offset], [0, false, 1])
    assert.strictEqual(store.roomSize("default", "chat-1"), 0)
    // an idle client at the top still recovers
    assert.isTrue(store.read("default", "chat-1", settings, store.position("default", "chat-1"), 10).covered)
  })

  it("stays within maxBytes and maxRooms under 100,000 broadcasts into 1,000 rooms", () => {
    const store = new MemoryStore({ maxBytes: 256 * 1024, maxRooms: 500 }, () => 0)
    const big = { size: 1000, ttl: 60_000 }
    let peakBytes = 0
    let peakRooms = 0
    for (let i = 0; i < 100_000; i++) {
      store.append("default", `room-${i % 1000}`, big, message(`message number ${i}`, `room-${i % 1000}`))
      peakBytes = Math.max(peakBytes, store.bytes)
      peakRooms = Math.max(peakRooms, store.roomCount)
    }
    assert.isAtMost(peakBytes, 256 * 1024)
    assert.isAtMost(peakRooms, 500)
    assert.isAbove(store.size, 0)
  })
})

describe("the resume decision", () => {
  const settings = { size: 10, ttl: 1000 }
  const stored = (offset: number, time = 0) => ({
    stored: { epoch: "e", offset, prev: offset - 1, time },
    message: message(`m${offset}`),
    exceptId: undefined
  })
  const read = (top: number, entries: Read["entries"], covered = true): Read => ({
    position: { epoch: "e", offset: top },
    entries,
    covered,
    count: undefined
  })

  it("recovers a complete gap, and a client that missed nothing", () => {
    assert.isUndefined(decide({ epoch: "e", offset: 2 }, read(4, [stored(3), stored(4)]), settings, 10, 0))
    assert.isUndefined(decide({ epoch: "e", offset: 4 }, read(4, []), settings, 10, 0))
  })

  it("says why not: another epoch, a position from the future, a trimmed gap, too many, too old", () => {
    assert.strictEqual(decide({ epoch: "x", offset: 2 }, read(4, []), settings, 10, 0), "epochChanged")
    assert.strictEqual(decide({ epoch: "e", offset: 9 }, read(4, []), settings, 10, 0), "epochChanged")
    assert.strictEqual(decide({ epoch: "e", offset: 2 }, read(4, [stored(4)], false), settings, 10, 0), "trimmed")
    const many = Array.from({ length: 4 }, (_, i) => stored(3 + i))
    assert.strictEqual(decide({ epoch: "e", offset: 2 }, read(6, many), settings, 3, 0), "tooMany")
    assert.strictEqual(decide({ epoch: "e", offset: 2 }, read(3, [stored(3, 0)]), settings, 10, 1001), "trimmed")
  })
})

// -----------------------------------------------------------------------------
// with the test kit
// -----------------------------------------------------------------------------

const events = Events.namespaces({
  default: {
    say: (ns, msg) => ns.broadcastOthers({ room: msg.room, event: "msg", body: msg.body }),
    // what the server sends while a client (re)joins: it waits for the replay, then comes once
    _OnRoomJoined: (ns, msg) => ns.broadcast({ room: msg.room, event: "joined", body: ns.conn.id })
  }
})

const history: History.Options = { rooms: [{ namespace: "default", room: /^chat-/, size: 5, ttl: "1 minute" }] }

/** The kit's transport behind a door: `drop` cuts the socket, `hold` keeps the next attempt waiting until `open`. */
const makeDoor = Effect.gen(function*() {
  const testServer = yield* TestServer.TestServer
  const latch = yield* Effect.makeLatch(true)
  let socket: RawSocket | undefined
  const transport: Client.ClientTransport = {
    open: (url, options) =>
      Effect.zipRight(
        latch.await,
        Effect.tap(testServer.clientTransport.open(url, options), (opened) => (socket = opened.socket))
      )
  }
  return { transport, hold: latch.close, open: latch.open, drop: Effect.sync(() => socket!.terminate()) }
})

type Received = readonly [event: string, body: string, offset: number | undefined]

/** A client of the kit that reconnects every 100 ms (virtual) and records what its room gets, with positions. */
const recoveringClient = (
  id: string,
  options?: { readonly recovery?: Client.DialOptions<never, never>["recovery"] }
) =>
  Effect.gen(function*() {
    const door = yield* makeDoor
    const received = yield* Queue.unbounded<Received>()
    const record = (_ns: Conn.ClientNSConn, msg: Message.Message) =>
      Queue.offer(received, [
        msg.event,
        Message.bodyText(msg),
        Option.getOrUndefined(Option.map(History.position(msg), (p) => p.offset))
      ]).pipe(Effect.asVoid)
    const conn = yield* Client.dial(`ws://effect-neffos.test/?id=${id}`, {
      events: Events.client({ default: { msg: record, joined: record } }),
      reconnect: Schedule.spaced("100 millis"),
      reconnectProbe: "direct",
      recovery: options?.recovery
    }).pipe(Effect.provideService(Client.ClientTransport, door.transport))
    const recovery = yield* Queue.unbounded<History.RecoveryEvent>()
    yield* Effect.forkScoped(Stream.runForEach(History.events(conn), (event) => Queue.offer(recovery, event)))
    const take = (n: number) =>
      within(Effect.forEach(Array.from({ length: n }), () => Queue.take(received)), `${n} messages`)
    const state = (tag: Client.ConnectionState["_tag"]) =>
      within(Stream.runHead(Stream.filter(conn.state, (s) => s._tag === tag)), `state ${tag}`)
    return { conn, door, received, take, recovery, state }
  })

const send = (server: Server.Server, from: number, to: number, room = "chat-1") =>
  Effect.forEach(
    Array.from({ length: to - from + 1 }, (_, i) => from + i),
    (i) => server.broadcast({ namespace: "default", room, event: "msg", body: `m${i}` }),
    { discard: true }
  )

const kit = <A, E>(body: Effect.Effect<A, E, TestServer.TestServer | Server.Server | Scope.Scope>) =>
  body.pipe(
    Effect.scoped,
    Effect.provide(
      TestServer.layer({
        events,
        history,
        idGenerator: (request) => new URL(request.url, "http://x").searchParams.get("id") ?? "anonymous"
      })
    )
  )

describe("recoverable rooms", () => {
  it.effect("positions reach a client that asks and its handlers; a neffos client gets the frames it always got", () =>
    kit(Effect.gen(function*() {
      const server = yield* Server.Server
      const alice = yield* recoveringClient("alice")
      const ns = yield* alice.conn.connect("default")
      yield* ns.joinRoom("chat-1")
      assert.deepStrictEqual(yield* alice.take(1), [["joined", "alice", 1]])

      // a neffos.js-like peer: raw frames, no header
      const testServer = yield* TestServer.TestServer
      const raw = yield* testServer.open({ id: "bob" })
      yield* raw.send("M")
      assert.strictEqual(yield* within(raw.next, "A"), "Abob")
      yield* raw.send("$1;default;;_OnNamespaceConnect;0;0;")
      assert.strictEqual(yield* within(raw.next, "connect reply"), "$1;;;;;;")
      yield* raw.send("$2;default;chat-1;_OnRoomJoin;0;0;")
      // as ever (and as with Go neffos), what _OnRoomJoined broadcasts is written before the join reply
      assert.strictEqual(yield* within(raw.next, "joined"), ";default;chat-1;joined;0;0;bob")
      assert.strictEqual(yield* within(raw.next, "join reply"), "$2;;;;;;")
      assert.deepStrictEqual(yield* alice.take(1), [["joined", "bob", 2]])

      yield* send(server, 1, 2)
      assert.deepStrictEqual(yield* alice.take(2), [["msg", "m1", 3], ["msg", "m2", 4]])
      assert.strictEqual(yield* within(raw.next, "m1"), ";default;chat-1;msg;0;0;m1")
      assert.strictEqual(yield* within(raw.next, "m2"), ";default;chat-1;msg;0;0;m2")

      // another room is not recoverable: no position
      yield* ns.joinRoom("lobby")
      yield* server.broadcast({ namespace: "default", room: "lobby", event: "msg", body: "plain" })
      assert.deepStrictEqual(yield* alice.take(1), [["msg", "plain", undefined]])
      const positions = yield* History.positions(alice.conn)
      assert.deepStrictEqual(positions.map((p) => [p.room, p.position.offset]), [["chat-1", 4]])
    })))

  it.effect("a resume replays what was missed, then what waited for the replay, exactly once and in order", () =>
    kit(Effect.gen(function*() {
      const server = yield* Server.Server
      const alice = yield* recoveringClient("alice")
      const ns = yield* alice.conn.connect("default")
      yield* ns.joinRoom("chat-1")
      yield* send(server, 1, 2)
      yield* alice.take(3)

      yield* alice.door.hold
      yield* alice.door.drop
      yield* alice.state("Reconnecting")
      yield* send(server, 3, 6)
      yield* alice.door.open
      yield* TestClock.adjust("100 millis")
      // m3..m6 missed; alice's own "joined" was broadcast while her resume was answered
      assert.deepStrictEqual(yield* alice.take(5), [
        ["msg", "m3", 4],
        ["msg", "m4", 5],
        ["msg", "m5", 6],
        ["msg", "m6", 7],
        ["joined", "alice", 8]
      ])
      const event = yield* within(Queue.take(alice.recovery), "recovery event")
      // the read saw her "joined" too: it is replayed, and its live copy dropped as a duplicate
      assert.deepInclude(event, { _tag: "Recovered", room: "chat-1", replayed: 5 })
      yield* send(server, 7, 7)
      assert.deepStrictEqual(yield* alice.take(1), [["msg", "m7", 9]])
      assert.isTrue(Option.isNone(yield* Queue.poll(alice.received)))
    })))

  it.effect("a gap larger than the history is not recovered: a typed event and the handler, then live", () =>
    kit(Effect.gen(function*() {
      const server = yield* Server.Server
      const notRecovered = yield* Queue.unbounded<History.NotRecovered>()
      const alice = yield* recoveringClient("alice", {
        recovery: { onNotRecovered: (event) => Queue.offer(notRecovered, event) }
      })
      const ns = yield* alice.conn.connect("default")
      yield* ns.joinRoom("chat-1")
      yield* alice.take(1)
      yield* alice.door.hold
      yield* alice.door.drop
      yield* alice.state("Reconnecting")
      yield* send(server, 1, 8) // size is 5
      yield* alice.door.open
      yield* TestClock.adjust("100 millis")
      const event = yield* within(Queue.take(notRecovered), "onNotRecovered")
      assert.deepStrictEqual([event.room, event.reason, event.position?.offset], ["chat-1", "trimmed", 9])
      assert.deepInclude(yield* within(Queue.take(alice.recovery), "event"), {
        _tag: "NotRecovered",
        reason: "trimmed"
      })
      // nothing of the gap is replayed; live goes on from the room's position
      assert.deepStrictEqual(yield* alice.take(1), [["joined", "alice", 10]])
      yield* send(server, 9, 9)
      assert.deepStrictEqual(yield* alice.take(1), [["msg", "m9", 11]])
    })))

  it.effect("a client that lost frames to its outbox notices the gap and resyncs: every message once, in order", () =>
    Effect.gen(function*() {
      const testServer = yield* TestServer.TestServer
      const server = yield* Server.Server
      const alice = yield* testServer.connect({ id: "alice", headers: {} })
      const ns = yield* alice.connect("default")
      yield* ns.joinRoom("chat-1")
      yield* alice.next
      yield* alice.pause
      yield* send(server, 1, 8) // the outbox keeps 4: m1..m4 are dropped
      yield* alice.resume
      // m5 shows that m4 never arrived: the resync replays m1..m4, then m5..m8 come once
      const got = yield* within(Effect.forEach(Array.from({ length: 8 }), () => alice.next), "8 messages")
      assert.deepStrictEqual(got.map(Message.bodyText), ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"])
      yield* alice.expectNone
    }).pipe(
      Effect.scoped,
      Effect.provide(TestServer.layer({
        events,
        history: { rooms: [{ room: "chat-1", size: 20, ttl: "1 minute" }] },
        outbox: { capacity: 4, strategy: "sliding" }
      }))
    ))

  it.effect("the excluded sender gets a marker: its position moves on and nothing is dispatched", () =>
    kit(Effect.gen(function*() {
      const alice = yield* recoveringClient("alice")
      const bob = yield* recoveringClient("bob")
      const aliceNs = yield* alice.conn.connect("default")
      const bobNs = yield* bob.conn.connect("default")
      const aliceRoom = yield* aliceNs.joinRoom("chat-1")
      yield* bobNs.joinRoom("chat-1")
      yield* alice.take(2)
      yield* bob.take(1)
      yield* aliceRoom.emit("say", "hello")
      assert.deepStrictEqual(yield* bob.take(1), [["msg", "hello", 3]])
      yield* Effect.repeat(History.positions(alice.conn), {
        until: (positions) => positions[0]?.position.offset === 3,
        schedule: Schedule.spaced("1 millis")
      }).pipe(TestServices.provideLive, (e) => within(e, "alice's position"))
      assert.isTrue(Option.isNone(yield* Queue.poll(alice.received)))
    })))

  it.effect("server.history: the position and the latest messages, or those after a position", () =>
    kit(Effect.gen(function*() {
      const server = yield* Server.Server
      yield* send(server, 1, 7)
      const latest = yield* server.history("default", "chat-1", { limit: 2 })
      assert.deepStrictEqual(latest.entries.map((e) => [e.position.offset, Message.bodyText(e.message)]), [
        [6, "m6"],
        [7, "m7"]
      ])
      assert.strictEqual(latest.position.offset, 7)
      const since = yield* server.history("default", "chat-1", { since: { epoch: latest.position.epoch, offset: 4 } })
      assert.deepStrictEqual([since.complete, since.entries.map((e) => e.position.offset)], [true, [5, 6, 7]])
      const gone = yield* server.history("default", "chat-1", { since: { epoch: latest.position.epoch, offset: 1 } })
      assert.isFalse(gone.complete)
      const error = yield* Effect.flip(server.history("default", "lobby"))
      assert.strictEqual(error.reason, "NotRecoverable")
      // virtual time: a minute later the messages are too old
      yield* TestClock.adjust("61 seconds")
      assert.deepStrictEqual((yield* server.history("default", "chat-1")).entries, [])
    })))

  it.effect("a room without a rule, a client that turned recovery off: nothing changes", () =>
    kit(Effect.gen(function*() {
      const server = yield* Server.Server
      const carol = yield* recoveringClient("carol", { recovery: false })
      const ns = yield* carol.conn.connect("default")
      yield* ns.joinRoom("chat-1")
      yield* send(server, 1, 1)
      // (what _OnRoomJoined broadcast reached the connection before its join reply, and the client dropped it,
      // as neffos clients do: only a client that asks for positions gets it, after the reply)
      assert.deepStrictEqual(yield* carol.take(1), [["msg", "m1", undefined]])
      const fiber = yield* Effect.fork(Stream.runCollect(History.events(carol.conn)))
      yield* Fiber.interrupt(fiber)
    })))
})
