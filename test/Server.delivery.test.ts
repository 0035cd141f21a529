/**
 * Delivery semantics over real sockets: order, exclusions, slow consumers and the
 * outbox policies, strict mode.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import type * as Net from "node:net"
import * as Events from "../src/Events.js"
import * as Server from "../src/Server.js"
import { handshaken, type RawClient, startServer } from "./utils.js"

const events = Events.namespaces({ default: {} })

const joinDefault = (url: string) =>
  Effect.gen(function*() {
    const { client, id } = yield* handshaken(url)
    yield* client.send("$c;default;;_OnNamespaceConnect;0;0;")
    assert.strictEqual(yield* client.nextText, "$c;;;;;;")
    return { client, id }
  })

const tcpOf = (client: RawClient) => (client.ws as unknown as { _socket: Net.Socket })._socket

/** The sequence numbers a client receives from `;default;;n;0;0;<seq>:<padding>` frames. */
const seqOf = (frame: string | Uint8Array): number => {
  const text = typeof frame === "string" ? frame : new TextDecoder().decode(frame)
  const body = text.slice(text.indexOf(";0;0;") + 5)
  return Number(body.slice(0, body.indexOf(":")))
}

const receiveAll = (client: RawClient, count: number) =>
  Effect.gen(function*() {
    const seqs: Array<number> = []
    for (let i = 0; i < count; i++) seqs.push(seqOf(yield* client.next))
    return seqs
  })

/** An id generator naming the first connection `first` and the others `reader-<n>`. */
const firstIs = (first: string) => {
  let n = 0
  return () => (n++ === 0 ? first : `reader-${n}`)
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

const padding = "x".repeat(4000)

/**
 * Broadcasts `total` numbered 4 KB messages in rounds smaller than an outbox,
 * waiting after each round until every reader has received it, so that only the
 * paused client falls behind.
 */
const broadcastPaced = (
  server: Server.Server,
  readers: ReadonlyArray<RawClient>,
  total: number,
  round = 32
) =>
  Effect.gen(function*() {
    const received = readers.map(() => [] as Array<number>)
    for (let start = 0; start < total; start += round) {
      const end = Math.min(total, start + round)
      for (let seq = start; seq < end; seq++) {
        yield* server.broadcast({ namespace: "default", event: "n", body: `${seq}:${padding}` })
      }
      for (let r = 0; r < readers.length; r++) {
        received[r].push(...(yield* receiveAll(readers[r], end - start)))
      }
    }
    return received
  })

describe("Server delivery", () => {
  it.scopedLive("50 back-to-back broadcasts all arrive, in order, at each of several clients", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events })
      const clients = yield* Effect.all([joinDefault(url), joinDefault(url), joinDefault(url)])
      for (let seq = 0; seq < 50; seq++) {
        yield* server.broadcast({ namespace: "default", event: "n", body: `${seq}:` })
      }
      for (const { client } of clients) assert.deepStrictEqual(yield* receiveAll(client, 50), range(50))
    }))

  it.scopedLive("broadcast frames of every WebSocket length class arrive intact", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events })
      const { client } = yield* joinDefault(url)
      const header = ";default;;n;0;0;".length
      // payload lengths around the 7-bit, 16-bit and 64-bit length encodings
      const sizes = [0, 1, 125, 126, 127, 65535, 65536, 100_000].map((n) => Math.max(0, n - header))
      for (const size of sizes) {
        yield* server.broadcast({
          namespace: "default",
          event: "n",
          body: "é".repeat(size >> 1) + "x".repeat(size & 1)
        })
      }
      for (const size of sizes) {
        assert.strictEqual(yield* client.nextText, ";default;;n;0;0;" + "é".repeat(size >> 1) + "x".repeat(size & 1))
      }
    }))

  it.scopedLive("an excluded first message does not stop the next one (neffos's aborted batch)", () =>
    Effect.gen(function*() {
      const { server, url } = yield* startServer({ events })
      const { client } = yield* joinDefault(url)
      yield* server.broadcast({ namespace: "default", event: "n", body: "0:", to: "nobody" })
      yield* server.broadcast({ namespace: "default", event: "n", body: "1:" })
      assert.strictEqual(seqOf(yield* client.next), 1)
    }))

  it.scopedLive("except: an exact connection, or every connection with an id", () =>
    Effect.gen(function*() {
      const ids = ["a", "b", "b"]
      let n = 0
      const { server, url } = yield* startServer({ events, idGenerator: () => ids[n++] })
      const a = yield* joinDefault(url)
      const b1 = yield* joinDefault(url)
      const b2 = yield* joinDefault(url)
      const connA = yield* server.connection("a")
      yield* server.broadcast({ namespace: "default", event: "n", body: "0:" }, { except: connA })
      yield* server.broadcast({ namespace: "default", event: "n", body: "1:" }, { except: "b" })
      yield* server.broadcast({ namespace: "default", event: "n", body: "2:" }, { except: "a" })
      assert.deepStrictEqual(yield* receiveAll(a.client, 1), [1])
      assert.deepStrictEqual(yield* receiveAll(b1.client, 2), [0, 2])
      assert.deepStrictEqual(yield* receiveAll(b2.client, 2), [0, 2])
    }))

  it.scopedLive("send reaches every connection with the id; ConnectionNotFound otherwise", () =>
    Effect.gen(function*() {
      const ids = ["x", "y"]
      let n = 0
      const { server, url } = yield* startServer({ events, idGenerator: () => ids[n++] })
      const x = yield* joinDefault(url)
      yield* joinDefault(url)
      yield* server.send("x", { namespace: "default", event: "n", body: "7:" })
      assert.strictEqual(seqOf(yield* x.client.next), 7)
      const missing = yield* Effect.flip(server.send("nobody", { namespace: "default", event: "n", body: "0:" }))
      assert.strictEqual(missing._tag, "ConnectionNotFound")
      const otherNamespace = yield* Effect.flip(server.send("x", { namespace: "other", event: "n" }))
      assert.strictEqual(otherNamespace._tag, "ConnectionNotFound")
    }))

  describe("a client that stops reading while 5,000 messages are broadcast", () => {
    const capacity = 64
    const total = 5000

    const setup = (strategy: "sliding" | "dropping" | "disconnect") =>
      Effect.gen(function*() {
        const { server, url } = yield* startServer({
          events,
          idGenerator: firstIs("slow"),
          outbox: { capacity, strategy, highWaterMark: 16 * 1024 }
        })
        const slow = yield* joinDefault(url)
        const readers = [(yield* joinDefault(url)).client, (yield* joinDefault(url)).client]
        tcpOf(slow.client).pause()
        const slowConn = yield* server.connection("slow")
        return { server, slow: slow.client, slowConn, readers }
      })

    it.scopedLive("sliding: the others get everything in order; the slow one keeps the newest", () =>
      Effect.gen(function*() {
        const { readers, server, slow, slowConn } = yield* setup("sliding")
        // counted by policy
        const sliding = Server.metrics.droppedFrames.pipe(Metric.tagged("policy", "sliding"))
        const droppedBefore = (yield* Metric.value(sliding)).count
        const received = yield* broadcastPaced(server, readers, total)
        for (const seqs of received) assert.deepStrictEqual(seqs, range(total))
        const stats = yield* slowConn.stats
        assert.isAtMost(stats.outboxSize, capacity)
        assert.isAbove(stats.dropped, 0)
        assert.strictEqual(stats.written + stats.outboxSize + stats.dropped, total + 1)
        const droppedAfter = (yield* Metric.value(sliding)).count
        assert.isAtLeast(droppedAfter - droppedBefore, stats.dropped)
        tcpOf(slow).resume()
        const got = yield* receiveAll(slow, total - stats.dropped)
        assert.deepStrictEqual(got, [...got].sort((a, b) => a - b))
        assert.strictEqual(got[got.length - 1], total - 1)
      }))

    it.scopedLive("dropping: the others get everything in order; the slow one keeps the oldest", () =>
      Effect.gen(function*() {
        const { readers, server, slow, slowConn } = yield* setup("dropping")
        const received = yield* broadcastPaced(server, readers, total)
        for (const seqs of received) assert.deepStrictEqual(seqs, range(total))
        const stats = yield* slowConn.stats
        assert.isAtMost(stats.outboxSize, capacity)
        assert.isAbove(stats.dropped, 0)
        tcpOf(slow).resume()
        const got = yield* receiveAll(slow, total - stats.dropped)
        assert.deepStrictEqual(got, range(got.length))
      }))

    it.scopedLive("disconnect: the slow one is closed with 1008, the others are unaffected", () =>
      Effect.gen(function*() {
        const { readers, server } = yield* setup("disconnect")
        const lifecycle = yield* server.subscribe
        const received = yield* broadcastPaced(server, readers, total)
        for (const seqs of received) assert.deepStrictEqual(seqs, range(total))
        let event = yield* Queue.take(lifecycle)
        while (event._tag !== "Disconnected") event = yield* Queue.take(lifecycle)
        assert.strictEqual(event.conn.id, "slow")
        assert.strictEqual(event.code, 1008)
        assert.strictEqual(event.reason, "slow consumer")
        assert.strictEqual(yield* server.connectionCount, 2)
      }))
  })

  describe("strict mode", () => {
    it.scopedLive("lossless and in order at every receiver while the slow one catches up", () =>
      Effect.gen(function*() {
        const { server, url } = yield* startServer({
          events,
          idGenerator: firstIs("slow"),
          strict: { writeTimeout: "30 seconds" },
          outbox: { capacity: 64, highWaterMark: 16 * 1024 }
        })
        const slow = (yield* joinDefault(url)).client
        const reader = (yield* joinDefault(url)).client
        tcpOf(slow).pause()
        const total = 2000
        const broadcaster = yield* Effect.fork(
          Effect.forEach(
            range(total),
            (seq) => server.broadcast({ namespace: "default", event: "n", body: `${seq}:${padding}` }),
            { discard: true }
          )
        )
        // the reader gets a first part; the broadcaster then waits for the slow one
        const first = yield* receiveAll(reader, 100)
        assert.deepStrictEqual(first, range(100))
        tcpOf(slow).resume()
        const slowSeqs = yield* receiveAll(slow, total)
        const rest = yield* receiveAll(reader, total - 100)
        yield* Fiber.join(broadcaster)
        assert.deepStrictEqual(slowSeqs, range(total))
        assert.deepStrictEqual([...first, ...rest], range(total))
        const stats = yield* (yield* server.connection("slow")).stats
        assert.strictEqual(stats.dropped, 0)
      }))

    it.scopedLive("a receiver that stays full past the write timeout is disconnected", () =>
      Effect.gen(function*() {
        const { server, url } = yield* startServer({
          events,
          idGenerator: firstIs("stuck"),
          // long enough that the reader, in this same busy process, is never the one that stays full
          strict: { writeTimeout: "1 second" },
          outbox: { capacity: 64, highWaterMark: 16 * 1024 }
        })
        const lifecycle = yield* server.subscribe
        const stuck = (yield* joinDefault(url)).client
        const reader = (yield* joinDefault(url)).client
        tcpOf(stuck).pause()
        const total = 2000
        yield* Effect.fork(
          Effect.forEach(range(total), (seq) =>
            server.broadcast({ namespace: "default", event: "n", body: `${seq}:${padding}` }), { discard: true })
        )
        assert.deepStrictEqual(yield* receiveAll(reader, total), range(total))
        let event = yield* Queue.take(lifecycle)
        while (event._tag !== "Disconnected") {
          event = yield* Queue.take(lifecycle)
        }
        assert.deepStrictEqual([event.conn.id, event.code, event.reason], ["stuck", 1008, "slow consumer"])
      }))
  })
})
