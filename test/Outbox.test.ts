/**
 * The outbox, the write path's hot spot: batching keeps order, each overflow
 * policy does what it says, congestion holds frames back, nothing is written
 * before a hold is released.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Events from "../src/Events.js"
import { OfferResult, Outbox } from "../src/internal/outbox.js"
import { SharedText } from "../src/internal/transport.js"
import * as Message from "../src/Message.js"
import * as TestServer from "../src/TestServer.js"
import { RecordingSink, turn } from "./outboxSink.js"

const make = (
  capacity: number,
  strategy: "sliding" | "dropping" | "disconnect",
  onOverflow = () => {},
  maxBytes = Infinity
) => {
  const sink = new RecordingSink()
  return { sink, outbox: new Outbox(capacity, strategy, 1024, maxBytes, sink, { onOutboxOverflow: onOverflow }) }
}

/** An outbox whose socket is backed up (past the high-water mark): a slow consumer, whose policy drops. */
const backedUp = (
  capacity: number,
  strategy: "sliding" | "dropping" | "disconnect",
  onOverflow = () => {},
  maxBytes = Infinity
) => {
  const made = make(capacity, strategy, onOverflow, maxBytes)
  made.sink.buffered = 4096
  return made
}

const offerAll = (outbox: Outbox, frames: ReadonlyArray<string>) => frames.map((f) => outbox.put(f))

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => String(from + i))

describe("Outbox", () => {
  it.live("writes what one turn queued as one batch, in order, across ring wrap-arounds", () =>
    Effect.gen(function*() {
      const { outbox, sink } = make(8, "sliding")
      offerAll(outbox, range(0, 5))
      yield* turn
      offerAll(outbox, range(5, 13)) // wraps around the ring and grows it
      yield* turn
      assert.deepStrictEqual(sink.batches, [range(0, 5), range(5, 13)])
      assert.strictEqual(outbox.written, 13)
      assert.strictEqual(outbox.length, 0)
    }))

  it.live("sliding keeps the newest frames and counts the drops", () =>
    Effect.gen(function*() {
      const { outbox, sink } = backedUp(4, "sliding")
      const results = offerAll(outbox, range(0, 10))
      assert.strictEqual(results.filter((r) => r === OfferResult.Dropped).length, 6)
      sink.drain()
      yield* turn
      assert.deepStrictEqual(sink.written, range(6, 10))
      assert.strictEqual(outbox.dropped, 6)
    }))

  it.live("dropping keeps the oldest frames and counts the drops", () =>
    Effect.gen(function*() {
      const { outbox, sink } = backedUp(4, "dropping")
      offerAll(outbox, range(0, 10))
      sink.drain()
      yield* turn
      assert.deepStrictEqual(sink.written, range(0, 4))
      assert.strictEqual(outbox.dropped, 6)
    }))

  it.live("a full outbox whose socket is not backed up is written at once instead of dropping", () =>
    Effect.gen(function*() {
      for (const strategy of ["sliding", "dropping", "disconnect"] as const) {
        const { outbox, sink } = make(4, strategy, () => assert.fail("no overflow"))
        const results = offerAll(outbox, range(0, 10))
        assert.isTrue(results.every((r) => r === OfferResult.Queued), strategy)
        // the first four went out when the fifth came, the next four with the ninth
        assert.deepStrictEqual(sink.batches, [range(0, 4), range(4, 8)], strategy)
        yield* turn
        assert.deepStrictEqual(sink.written, range(0, 10), strategy)
        assert.strictEqual(outbox.dropped, 0, strategy)
      }
    }))

  it.live("the write-through stops once the socket is backed up: then the policy drops", () =>
    Effect.gen(function*() {
      const { outbox, sink } = make(2, "sliding")
      offerAll(outbox, ["a", "b"])
      sink.buffered = 4096 // the next write-through leaves the socket backed up
      offerAll(outbox, ["c"])
      assert.deepStrictEqual(sink.written, []) // backed up before writing: nothing written
      assert.strictEqual(outbox.dropped, 1)
      sink.drain()
      yield* turn
      assert.deepStrictEqual(sink.written, ["b", "c"])
    }))

  it.live("an outbox is bounded by bytes: sliding drops as many old frames as the new one needs", () =>
    Effect.gen(function*() {
      const { outbox, sink } = backedUp(100, "sliding", undefined, 10)
      offerAll(outbox, ["aaaa", "bbbb", "cc"]) // 10 bytes
      assert.strictEqual(outbox.bytes, 10)
      offerAll(outbox, ["dddddd"]) // needs 6: drops aaaa and bbbb
      assert.strictEqual(outbox.bytes, 8)
      assert.strictEqual(outbox.dropped, 2)
      offerAll(outbox, ["x".repeat(50)]) // larger than the bound: taken alone
      assert.strictEqual(outbox.length, 1)
      assert.strictEqual(outbox.dropped, 4)
      sink.drain()
      yield* turn
      assert.deepStrictEqual(sink.written, ["x".repeat(50)])
      assert.strictEqual(outbox.bytes, 0)
    }))

  it.live("offerIfRoom stores nothing when full; onRoom calls back once a flush made room", () =>
    Effect.gen(function*() {
      const { outbox, sink } = backedUp(2, "sliding")
      assert.isTrue(outbox.offerIfRoom("a"))
      assert.isTrue(outbox.offerIfRoom("b"))
      assert.isFalse(outbox.offerIfRoom("c"))
      let room = false
      outbox.onRoom(() => (room = true), "c")
      assert.isFalse(room)
      sink.drain()
      yield* turn
      assert.isTrue(room)
      assert.isTrue(outbox.offerIfRoom("c"))
      assert.strictEqual(outbox.dropped, 0)
    }))

  it.live("onRoom waits until that frame fits by bytes too, not just until a frame would fit", () =>
    Effect.gen(function*() {
      const { outbox, sink } = backedUp(100, "sliding", undefined, 10)
      assert.isTrue(outbox.offerIfRoom("aaaaaaaa")) // 8 bytes of 10
      const big = "bbbbbb" // 6 more would pass 10
      assert.isFalse(outbox.offerIfRoom(big))
      let room = false
      outbox.onRoom(() => (room = outbox.offerIfRoom(big)), big)
      assert.isFalse(room) // (it used to call back at once, and a strict broadcast recursed until the stack overflowed)
      sink.drain()
      yield* turn
      assert.isTrue(room)
      assert.deepStrictEqual(sink.written, ["aaaaaaaa"])
    }))

  it.live("disconnect reports the overflow once and takes nothing more after a close", () =>
    Effect.gen(function*() {
      let overflows = 0
      const { outbox } = backedUp(2, "disconnect", () => {
        overflows++
        outbox.close()
      })
      assert.deepStrictEqual(offerAll(outbox, ["a", "b", "c", "d"]), [
        OfferResult.Queued,
        OfferResult.Queued,
        OfferResult.Overflow,
        OfferResult.Closed
      ])
      assert.strictEqual(overflows, 1)
      assert.isTrue(outbox.isClosed)
    }))

  it.live("a congested socket holds frames in the outbox until it drains", () =>
    Effect.gen(function*() {
      const { outbox, sink } = make(100, "sliding")
      sink.buffered = 4096 // past the high-water mark
      offerAll(outbox, range(0, 3))
      yield* turn
      assert.deepStrictEqual(sink.batches, [])
      assert.strictEqual(outbox.length, 3)
      offerAll(outbox, range(3, 5))
      sink.drain()
      yield* turn
      assert.deepStrictEqual(sink.written, range(0, 5))
    }))

  it.live("nothing is written while held (a server before A<id>); the release writes in order", () =>
    Effect.gen(function*() {
      const { outbox, sink } = make(10, "sliding")
      outbox.hold()
      offerAll(outbox, ["x", "y"])
      outbox.flushNow()
      yield* turn
      assert.deepStrictEqual(sink.batches, [])
      outbox.release()
      yield* turn
      assert.deepStrictEqual(sink.batches, [["x", "y"]])
    }))

  it.live("flushDirty writes a dirty outbox now; onEmpty and onRoom wait for it", () =>
    Effect.gen(function*() {
      const { outbox, sink } = make(2, "dropping")
      const events: Array<string> = []
      offerAll(outbox, ["a", "b"])
      outbox.onRoom(() => events.push("room"), "c")
      outbox.onEmpty(() => events.push("empty"))
      assert.deepStrictEqual(events, [])
      outbox.flushDirty()
      assert.deepStrictEqual(sink.batches, [["a", "b"]])
      assert.deepStrictEqual(events, ["room", "empty"])
    }))

  it.live("a shared broadcast frame is offered to many outboxes and written by each", () =>
    Effect.gen(function*() {
      const frame = new SharedText("hello")
      const outboxes = [make(4, "sliding"), make(4, "sliding"), make(4, "sliding")]
      for (const { outbox } of outboxes) outbox.put(frame)
      yield* turn
      for (const { sink } of outboxes) assert.deepStrictEqual(sink.batches, [["hello"]])
      assert.deepStrictEqual([...frame.bytes], [...new TextEncoder().encode("hello")])
    }))

  it.effect("conn.outbox is an honest Queue.Enqueue: inspect it, offer a raw frame, shut it down", () =>
    Effect.gen(function*() {
      const client = yield* TestServer.connect({ id: "q" })
      yield* client.connect("default")
      const outbox = client.conn.outbox
      assert.isTrue(Queue.isEnqueue(outbox))
      assert.strictEqual(Queue.capacity(outbox), 1024)
      assert.isTrue(yield* Queue.isEmpty(outbox))
      yield* client.pause
      const frame = Message.encode(Message.make({ namespace: "default", event: "raw", body: "queued" }))
      assert.isTrue(yield* Queue.offer(outbox, frame))
      assert.strictEqual(yield* Queue.size(outbox), 1)
      assert.deepStrictEqual(outbox.unsafeSize(), Option.some(1))
      yield* client.resume
      yield* client.expect({ event: "raw", body: "queued" })
      yield* Queue.shutdown(outbox)
      assert.isTrue(yield* Queue.isShutdown(outbox))
      assert.isFalse(yield* Queue.offer(outbox, frame))
    }).pipe(Effect.provide(TestServer.layer({ events: Events.namespaces({ default: {} }) }))))
})
