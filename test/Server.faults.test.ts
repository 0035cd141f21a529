/**
 * The README's promises under faults: shutdown with clients that do not read,
 * handshakes racing a shutdown, bursts larger than an outbox, and per-connection
 * state that a peer could grow without bound.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import WebSocket from "ws"
import * as Events from "../src/Events.js"
import * as Message from "../src/Message.js"
import * as Reply from "../src/Reply.js"
import * as Server from "../src/Server.js"
import * as TestServer from "../src/TestServer.js"
import { handshaken, rawClient, startServer } from "./utils.js"

const events = Events.namespaces({
  default: {
    echo: (_ns, msg) => Effect.succeed(Reply.text("echo:" + Message.bodyText(msg)))
  }
})

/** Fails the test with `what` when `self` has not completed after `ms` of real time (also under TestClock). */
const within =
  (ms: number, what: string | (() => string)) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.raceFirst(
      self,
      Effect.zipRight(
        TestServices.provideLive(Effect.sleep(ms)),
        Effect.suspend(() => Effect.dieMessage(`${typeof what === "string" ? what : what()}: not within ${ms} ms`))
      )
    )

const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** A raw client that completed the handshake and connected namespace `default`. */
const connected = (url: string) =>
  Effect.gen(function*() {
    const { client, id } = yield* handshaken(url)
    yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
    assert.strictEqual(yield* client.nextText.pipe(within(5000, "connect reply")), "$c;;;;;;")
    return { client, id }
  })

/** Stops reading the socket: the server's writes pile up in the kernel, then in its own buffers. */
const stopReading = (ws: WebSocket) => (ws as unknown as { _socket: { pause: () => void } })._socket.pause()

/** Counts the `n` events a client receives; their bodies start with a sequence number. */
const counting = (ws: WebSocket) => {
  const seqs: Array<number> = []
  ws.on("message", (data) => {
    const text = (data as Buffer).toString("utf8")
    if (text.startsWith(";default;;n;0;0;")) seqs.push(Number.parseInt(text.slice(16), 10))
  })
  return seqs
}

const closeOf = (ws: WebSocket) =>
  Effect.async<{ code: number; reason: string }>((resume) => {
    if (ws.readyState === WebSocket.CLOSED) return resume(Effect.die(new Error("closed before listening")))
    ws.once("close", (code, reason) => resume(Effect.succeed({ code, reason: reason.toString() })))
  })

const payload = "x".repeat(4096)

describe("Shutdown finishes within shutdownTimeout, whatever the clients do", () => {
  it.scoped("releasing the layer with a client that does not read ends at shutdownTimeout", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { server, url } = yield* startServer({ events, shutdownTimeout: "5 seconds" }).pipe(Scope.extend(scope))
      const lifecycle = yield* server.subscribe
      const reader = yield* connected(url)
      const readerSeqs = counting(reader.client.ws)
      const readerClosed = yield* Effect.fork(closeOf(reader.client.ws))
      const stuck = yield* connected(url)
      stopReading(stuck.client.ws)
      const stuckConn = yield* server.connection(stuck.id)
      // broadcast until the stuck connection's socket is backed up and its outbox holds frames
      let sent = 0
      while ((yield* stuckConn.stats).outboxSize === 0) {
        assert.isBelow(sent, 20_000, "the stuck client's socket never backed up")
        for (let i = 0; i < 50; i++) {
          yield* server.broadcast({ namespace: "default", event: "n", body: `${sent++}:${payload}` })
        }
        yield* turn
      }
      const release = yield* Effect.fork(Scope.close(scope, Exit.void))
      // the reader gets everything, then 1001, while the stuck one holds the release
      assert.deepStrictEqual(yield* Fiber.join(readerClosed).pipe(within(5000, "reader closed")), {
        code: 1001,
        reason: "server shutdown"
      })
      assert.deepStrictEqual(readerSeqs, Array.from({ length: sent }, (_, i) => i))
      assert.isTrue(Option.isNone(yield* Fiber.poll(release)))
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(release).pipe(within(2000, "the layer's release"))
      const closes: Array<[string, number, string]> = []
      for (const event of yield* Queue.takeAll(lifecycle)) {
        if (event._tag === "Disconnected") closes.push([event.conn.id, event.code, event.reason])
      }
      assert.deepStrictEqual(
        closes.sort(),
        [
          [reader.id, 1001, "server shutdown"],
          [stuck.id, 1006, "shutdown timeout"]
        ].sort()
      )
    }))

  const root = Path.join(import.meta.dirname, "..")

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it.scopedLive(
      `${signal} with clients that do not read: the process exits within shutdownTimeout + 1 s`,
      () =>
        Effect.gen(function*() {
          const shutdownTimeout = 1000
          const child = yield* Effect.acquireRelease(
            Effect.sync(() =>
              ChildProcess.spawn(
                process.execPath,
                ["--import", "tsx", "test/fixtures/shutdown-server.ts", String(shutdownTimeout)],
                { cwd: root, stdio: ["ignore", "pipe", "inherit"] }
              )
            ),
            (child) => Effect.sync(() => child.kill("SIGKILL"))
          )
          const lines = yield* Queue.unbounded<string>()
          let buffered = ""
          child.stdout.on("data", (data: Buffer) => {
            buffered += data.toString("utf8")
            let nl = buffered.indexOf("\n")
            while (nl !== -1) {
              lines.unsafeOffer(buffered.slice(0, nl))
              buffered = buffered.slice(nl + 1)
              nl = buffered.indexOf("\n")
            }
          })
          const exited = Effect.async<number | null>((resume) => {
            if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
            child.once("exit", (code) => resume(Effect.succeed(code)))
          })
          const ready = yield* Queue.take(lines).pipe(within(20_000, "the server process started"))
          assert.match(ready, /^READY ws:/)
          const url = ready.slice(6)
          const reader = yield* connected(url)
          const readerSeqs = counting(reader.client.ws)
          const readerClosed = yield* Effect.fork(closeOf(reader.client.ws))
          for (let i = 0; i < 2; i++) stopReading((yield* connected(url)).client.ws)
          assert.strictEqual(yield* Queue.take(lines).pipe(within(10_000, "a stuck outbox")), "STUCK")

          const start = Date.now()
          child.kill(signal)
          const code = yield* exited.pipe(within(10_000, "the server process exit"))
          const elapsed = Date.now() - start
          assert.strictEqual(code, 0)
          assert.isBelow(elapsed, shutdownTimeout + 1000, `exited after ${elapsed} ms`)
          assert.strictEqual((yield* Fiber.join(readerClosed)).code, 1001)
          // the reader got every broadcast from the first it saw to the last, none missing
          assert.isAbove(readerSeqs.length, 0)
          for (let i = 1; i < readerSeqs.length; i++) assert.strictEqual(readerSeqs[i], readerSeqs[i - 1] + 1)
        }),
      60_000
    )
  }
})

describe("Nothing slips in during shutdown", () => {
  it.scopedLive("a socket still in the handshake when shutdown starts is closed with 1001", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events })
      const silent = yield* rawClient(url)
      yield* server.shutdown
      assert.deepStrictEqual(yield* silent.closed.pipe(within(2000, "close of the silent socket")), {
        code: 1001,
        reason: "server shutdown"
      })
      assert.strictEqual(yield* silent.pending, 0)
    }))

  it.scopedLive("a handshake whose onConnect ends after shutdown started is refused with 1001, not A<id>", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { server, url } = yield* startServer({ events, onConnect: () => Deferred.await(gate) })
      const late = yield* rawClient(url)
      yield* late.send("M")
      yield* turn
      const shutdown = yield* Effect.fork(server.shutdown)
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* late.closed.pipe(within(2000, "close of the late socket")), {
        code: 1001,
        reason: "server shutdown"
      })
      assert.strictEqual(yield* late.pending, 0, "it must not get A<id>")
      yield* Fiber.join(shutdown)
    }))

  it.scopedLive("after shutdown started, an upgrade is answered 503 and not upgraded", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events })
      yield* server.shutdown
      const status = yield* Effect.async<number | string>((resume) => {
        const ws = new WebSocket(url)
        ws.on("unexpected-response", (_req, res) => {
          resume(Effect.succeed(res.statusCode ?? 0))
          ws.terminate()
        })
        ws.on("open", () => resume(Effect.succeed("upgraded")))
        ws.on("error", () => {})
      }).pipe(within(2000, "the refused upgrade"))
      assert.strictEqual(status, 503)
    }))
})

describe("A client that reads is never dropped because of a burst", () => {
  it.scopedLive("3,000 broadcasts in one event-loop turn all reach a reading client, in order", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events })
      const reader = yield* connected(url)
      const seqs = counting(reader.client.ws)
      const conn = yield* server.connection(reader.id)
      const broadcast = (i: number) => server.broadcast({ namespace: "default", event: "n", body: `${i}:burst` })
      yield* Effect.sync(() => {
        for (let i = 0; i < 3000; i++) Effect.runSync(broadcast(i))
      })
      yield* Effect.gen(function*() {
        while (seqs.length < 3000) yield* turn
      }).pipe(within(5000, () => `3,000 frames (got ${seqs.length})`))
      assert.deepStrictEqual(seqs, Array.from({ length: 3000 }, (_, i) => i))
      assert.strictEqual((yield* conn.stats).dropped, 0)
    }))

  it.effect("an outbox is bounded by bytes as well as by frames", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const paused = yield* TestServer.connect({ id: "paused" })
      yield* paused.connect("default")
      yield* paused.pause
      for (let i = 0; i < 10; i++) {
        yield* server.broadcast({ namespace: "default", event: "n", body: `${i}:${"y".repeat(4000)}` })
      }
      const stats = yield* paused.stats
      assert.isAtMost(stats.outboxBytes, 10_000)
      assert.strictEqual(stats.outboxSize, 2)
      assert.strictEqual(stats.dropped, 8)
    }).pipe(Effect.provide(TestServer.layer({ events, outbox: { maxBytes: 10_000 } }))))
})

describe("Bounded per-connection state", () => {
  const limited = { events, maxRoomsPerConnection: 3, maxNameLength: 16 }

  it.scopedLive("joins beyond maxRoomsPerConnection are refused with an error reply", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer(limited)
      const { client } = yield* connected(url)
      for (const room of ["a", "b", "c"]) {
        yield* client.send(`$j${room};default;${room};_OnRoomJoin;0;0;`)
        assert.strictEqual(yield* client.nextText, `$j${room};;;;;;`)
      }
      yield* client.send("$jd;default;d;_OnRoomJoin;0;0;")
      assert.strictEqual(yield* client.nextText, "$jd;default;d;_OnRoomJoin;1;0;too many rooms")
    }))

  it.scopedLive("names longer than maxNameLength bytes are refused without being echoed", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer(limited)
      const { client } = yield* connected(url)
      const long = "r".repeat(17)
      yield* client.send(`$j1;default;${long};_OnRoomJoin;0;0;`)
      assert.strictEqual(yield* client.nextText, "$j1;default;;_OnRoomJoin;1;0;name too long")
      yield* client.send(`$a1;default;;${long};0;0;body`)
      assert.strictEqual(yield* client.nextText, "$a1;default;;;1;0;name too long")
      yield* client.send(`$c2;${long};;_OnNamespaceConnect;0;0;`)
      assert.strictEqual(yield* client.nextText, "$c2;;;_OnNamespaceConnect;1;0;name too long")
      // an emit with a long name is dropped; the connection goes on
      yield* client.send(`;default;;${long};0;0;body`)
      yield* client.send("$e;default;;echo;0;0;ok")
      assert.strictEqual(yield* client.nextText, "$e;default;;echo;0;0;echo:ok")
    }))

  it.scopedLive("by default: 256-byte names (UTF-8 bytes, not characters) and 1,000 rooms", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ events })
      const { client } = yield* connected(url)
      const fits = "ü".repeat(128) // 256 bytes
      yield* client.send(`$j1;default;${fits};_OnRoomJoin;0;0;`)
      assert.strictEqual(yield* client.nextText, "$j1;;;;;;")
      yield* client.send(`$j2;default;${fits}ü;_OnRoomJoin;0;0;`)
      assert.strictEqual(yield* client.nextText, "$j2;default;;_OnRoomJoin;1;0;name too long")
      for (let i = 1; i < 1000; i++) yield* client.send(`$r${i};default;room${i};_OnRoomJoin;0;0;`)
      for (let i = 1; i < 1000; i++) assert.strictEqual(yield* client.nextText, `$r${i};;;;;;`)
      yield* client.send("$r1000;default;room1000;_OnRoomJoin;0;0;")
      assert.strictEqual(yield* client.nextText, "$r1000;default;room1000;_OnRoomJoin;1;0;too many rooms")
    }))

  it.scopedLive("closed connections are not kept alive by the keep-alive or handshake timers", () =>
    Effect.gen(function*() {
      const gc = (globalThis as { gc?: () => void }).gc
      assert.isDefined(gc, "run vitest with --expose-gc (vitest.config.ts)")
      const { server, url } = yield* startServer({ events })
      const subscription = yield* Scope.make()
      const lifecycle = yield* server.subscribe.pipe(Scope.extend(subscription))
      const refs: Array<WeakRef<object>> = []
      // a helper, so that no variable of this long-lived generator holds a connection
      const connectAndClose = Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* connected(url).pipe(Scope.extend(scope))
        let event = yield* Queue.take(lifecycle)
        while (event._tag !== "Connected") event = yield* Queue.take(lifecycle)
        refs.push(new WeakRef(event.conn))
        yield* Scope.close(scope, Exit.void)
      })
      for (let i = 0; i < 20; i++) yield* connectAndClose
      yield* Effect.gen(function*() {
        while ((yield* server.connectionCount) > 0) yield* turn
      }).pipe(within(5000, "20 disconnects"))
      yield* Scope.close(subscription, Exit.void)
      for (let round = 0; round < 5 && refs.some((ref) => ref.deref() !== undefined); round++) {
        yield* turn
        gc!()
      }
      assert.deepStrictEqual(
        refs.flatMap((ref, i) => ref.deref() === undefined ? [] : [i]),
        [],
        "closed connections still held"
      )
    }))
})

describe("The server owns what it runs", () => {
  it.scopedLive("releasing the layer interrupts an onConnect that never ends", () =>
    Effect.gen(function*() {
      const interrupted = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const scope = yield* Scope.make()
      const { url } = yield* startServer({
        events,
        onConnect: () =>
          Deferred.succeed(started, undefined).pipe(
            Effect.zipRight(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
          )
      }).pipe(Scope.extend(scope))
      const client = yield* rawClient(url)
      yield* client.send("M")
      yield* Deferred.await(started).pipe(within(2000, "onConnect started"))
      yield* Scope.close(scope, Exit.void).pipe(within(2000, "the layer's release"))
      yield* Deferred.await(interrupted).pipe(within(2000, "onConnect interrupted"))
    }))

  it.scoped("lifecycle events are kept up to lifecycleCapacity per subscriber; the oldest go first", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const events = yield* server.subscribe
      for (const id of ["a", "b", "c"]) yield* TestServer.connect({ id })
      const kept = yield* Queue.takeAll(events)
      assert.deepStrictEqual(
        Array.from(kept, (event) => event._tag === "Connected" ? event.conn.id : event._tag),
        ["b", "c"]
      )
    }).pipe(Effect.provide(TestServer.layer({ events, lifecycleCapacity: 2 }))))
})

describe("Strict delivery with the byte bound", () => {
  it.effect("a strict broadcast waits for a receiver whose outbox is full by bytes, then delivers in order", () =>
    Effect.gen(function*() {
      const server = yield* Server.Server
      const paused = yield* TestServer.connect({ id: "paused" })
      yield* paused.connect("default")
      yield* paused.pause
      const body = (i: number) => `${i}:${"z".repeat(4000)}`
      const broadcasts = yield* Effect.fork(
        Effect.forEach(
          [0, 1, 2, 3, 4],
          (i) => server.broadcast({ namespace: "default", event: "n", body: body(i) }, { strict: true }),
          { discard: true }
        )
      )
      // the broadcaster fills the outbox (two frames, 8 kB of 10 kB), then waits for room for the third
      for (let i = 0; i < 100 && (yield* paused.stats).outboxSize < 2; i++) yield* Effect.yieldNow()
      assert.strictEqual((yield* paused.stats).outboxSize, 2)
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow() // the third broadcast meets the full outbox
      assert.isTrue(
        Option.isNone(yield* Fiber.poll(broadcasts)),
        "the broadcaster waits (it used to overflow the stack)"
      )
      yield* paused.resume
      yield* Fiber.join(broadcasts)
      for (let i = 0; i < 5; i++) yield* paused.expect({ event: "n", body: body(i) })
      assert.strictEqual((yield* paused.stats).dropped, 0)
    }).pipe(Effect.provide(TestServer.layer({ events, outbox: { maxBytes: 10_000 } }))))
})
