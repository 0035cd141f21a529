/**
 * A connection's bounded outbox and the process-wide flusher that drains outboxes
 * onto their sockets.
 *
 * Offering is synchronous and never blocks: the frame is stored in a ring buffer
 * and the connection is marked dirty; one flush per event-loop turn writes every
 * dirty connection's frames as one corked batch. There is deliberately no fiber
 * per connection on this path: waking a fiber per receiver costs more than the
 * socket write itself (see README, "Design").
 *
 * With a flush window (`flushInterval`), a frame that finds the outbox clean waits
 * for the window instead of the turn: the frames queued until it elapses leave in
 * one batch. A frame offered with `putExpedited` (a reply, a request) moves the pending
 * flush to the turn's, carrying what the window held before it, so order holds.
 * The window is an entry in a delay queue of the server's timers, cancelled by a
 * flush and cleared on close.
 *
 * The outbox is bounded by frames and by bytes. When it is full but its socket is
 * not backed up (below the high-water mark), what it holds is written at once
 * instead of waiting for the turn's flush: only a connection whose socket itself
 * is backed up is a slow consumer, whose frames the overflow strategy drops.
 *
 * @internal
 */

import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { pipeArguments } from "effect/Pipeable"
import * as Queue from "effect/Queue"
import type { Frame, Sink } from "../Transport.js"
import type { DelayQueue, Entry } from "./timers.js"

/** @internal */
export type { Frame, Sink } from "../Transport.js"

/** @internal */
export type OverflowStrategy = "sliding" | "dropping" | "disconnect"

/** @internal */
export const enum OfferResult {
  Queued = 0,
  Dropped = 1,
  Overflow = 2,
  Closed = 3
}

/** Who is told when a `disconnect` outbox overflows: the connection itself, so no closure per connection. @internal */
export interface OverflowListener {
  readonly onOutboxOverflow: () => void
}

const variance = { _In: (_: unknown) => _ }

/**
 * The outbox is an honest `Queue.Enqueue` of frames with a sliding, dropping (or
 * disconnecting) strategy — what `conn.outbox` shows users — whose taker is the
 * flusher rather than a fiber.
 *
 * @internal
 */
export class Outbox implements Queue.Enqueue<Frame> {
  readonly [Queue.EnqueueTypeId] = variance
  private buffer: Array<Frame | undefined>
  private head = 0
  private size_ = 0
  private bytes_ = 0
  private dirty = false
  private congested = false
  private closed = false
  private held = false
  /** the window's pending flush, when the flush waits for it */
  private entry: Entry<Outbox> | undefined = undefined
  private roomWaiters: Array<{ readonly f: () => void; readonly bytes: number }> | undefined
  private emptyWaiters: Array<() => void> | undefined
  private closeWaiters: Array<() => void> | undefined
  dropped = 0
  written = 0

  constructor(
    private readonly capacity_: number,
    readonly strategy: OverflowStrategy,
    readonly highWaterMark: number,
    readonly maxBytes: number,
    private readonly sink: Sink,
    private readonly owner: OverflowListener,
    /** the flush window's delay queue; undefined: flushed at the end of the turn */
    private readonly window: DelayQueue<Outbox> | undefined = undefined
  ) {
    this.buffer = new Array(Math.min(capacity_, 4))
  }

  /** frames waiting */
  get length(): number {
    return this.size_
  }

  /** bytes of the frames waiting (text frames counted by their length) */
  get bytes(): number {
    return this.bytes_
  }

  get isClosed(): boolean {
    return this.closed
  }

  // ---------------------------------------------------------------------------
  // Queue.Enqueue
  // ---------------------------------------------------------------------------

  /** Stores the frame unless the strategy drops it (a sliding outbox drops older ones instead). */
  unsafeOffer(frame: Frame): boolean {
    const result = this.put(frame)
    return result === OfferResult.Queued || (result === OfferResult.Dropped && this.strategy === "sliding")
  }

  offer(frame: Frame): Effect.Effect<boolean> {
    return Effect.sync(() => this.unsafeOffer(frame))
  }

  offerAll(frames: Iterable<Frame>): Effect.Effect<boolean> {
    return Effect.sync(() => {
      let all = true
      for (const frame of frames) all = this.unsafeOffer(frame) && all
      return all
    })
  }

  capacity(): number {
    return this.capacity_
  }

  isActive(): boolean {
    return !this.closed
  }

  get size(): Effect.Effect<number> {
    return Effect.sync(() => this.size_)
  }

  unsafeSize(): Option.Option<number> {
    return this.closed ? Option.none() : Option.some(this.size_)
  }

  get isFull(): Effect.Effect<boolean> {
    return Effect.sync(() => this.isFullFor(0))
  }

  get isEmpty(): Effect.Effect<boolean> {
    return Effect.sync(() => this.size_ === 0)
  }

  get shutdown(): Effect.Effect<void> {
    return Effect.sync(() => this.close())
  }

  get isShutdown(): Effect.Effect<boolean> {
    return Effect.sync(() => this.closed)
  }

  get awaitShutdown(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.closed) return resume(Effect.void)
      const waiter = () => resume(Effect.void)
      ;(this.closeWaiters ??= []).push(waiter)
      return Effect.sync(() => {
        this.closeWaiters?.splice(this.closeWaiters.indexOf(waiter), 1)
      })
    })
  }

  pipe() {
    return pipeArguments(this, arguments)
  }

  // ---------------------------------------------------------------------------
  // the connection's side
  // ---------------------------------------------------------------------------

  /** Stores a frame, applying the overflow strategy when full. */
  put(frame: Frame): OfferResult {
    if (this.closed) return OfferResult.Closed
    const n = frameBytes(frame)
    if (this.isFullFor(n) && !this.writeThrough()) {
      switch (this.strategy) {
        case "sliding": {
          do {
            this.bytes_ -= frameBytes(this.buffer[this.head]!)
            this.buffer[this.head] = undefined
            this.head = (this.head + 1) % this.buffer.length
            this.size_--
            this.dropped++
          } while (this.isFullFor(n))
          this.push(frame, n)
          return OfferResult.Dropped
        }
        case "dropping": {
          this.dropped++
          return OfferResult.Dropped
        }
        case "disconnect": {
          this.dropped++
          this.owner.onOutboxOverflow()
          return OfferResult.Overflow
        }
      }
    }
    this.push(frame, n)
    return OfferResult.Queued
  }

  /** Stores a frame like `put`; a flush waiting for the window is moved to the end of the turn. */
  putExpedited(frame: Frame): OfferResult {
    const result = this.put(frame)
    if (this.entry !== undefined) this.expedite()
    return result
  }

  /** Stores a frame only if that drops nothing; false when full (the caller waits with `onRoom`). */
  offerIfRoom(frame: Frame): boolean {
    if (this.closed) return true
    const n = frameBytes(frame)
    if (this.isFullFor(n) && !this.writeThrough()) return false
    this.push(frame, n)
    return true
  }

  /** Full for a frame of `n` bytes: at capacity, or past `maxBytes` (an empty outbox takes any frame). */
  private isFullFor(n: number): boolean {
    return this.size_ >= this.capacity_ || (this.size_ > 0 && this.bytes_ + n > this.maxBytes)
  }

  /** At least half full, by frames or by bytes: a peer's handlers wait for it to drain. */
  get isHalfFull(): boolean {
    return this.size_ * 2 >= this.capacity_ || this.bytes_ * 2 >= this.maxBytes
  }

  /**
   * A full outbox whose socket is not backed up writes what it holds now, instead
   * of dropping. Returns false when the socket is backed up (or writing is held).
   */
  private writeThrough(): boolean {
    if (this.held || this.congested || this.sink.bufferedAmount() > this.highWaterMark) return false
    this.flushAll()
    if (this.sink.bufferedAmount() > this.highWaterMark) this.waitForDrain()
    return true
  }

  /** Calls `f` once `frame` fits without dropping anything (or the outbox is closed). */
  onRoom(f: () => void, frame: Frame): void {
    const bytes = frameBytes(frame)
    if (this.closed || !this.isFullFor(bytes)) f()
    else (this.roomWaiters ??= []).push({ f, bytes })
  }

  /** Calls `f` once every stored frame was written and flushed (or the outbox is closed). */
  onEmpty(f: () => void): void {
    if (this.closed || (this.size_ === 0 && !this.dirty && !this.congested)) f()
    else (this.emptyWaiters ??= []).push(f)
  }

  /** Stores frames without writing them until `release` (a server before its `A<id>`). */
  hold(): void {
    this.held = true
  }

  release(): void {
    if (!this.held) return
    this.held = false
    if (this.size_ > 0 && !this.dirty) {
      this.dirty = true
      schedule(this)
    }
  }

  /** Stops accepting frames; stored frames are discarded. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.cancelWindow()
    this.buffer = []
    this.size_ = 0
    this.bytes_ = 0
    this.head = 0
    this.wake()
    const waiters = this.closeWaiters
    this.closeWaiters = undefined
    if (waiters !== undefined) { for (const f of waiters) f() }
  }

  private push(frame: Frame, n: number): void {
    if (this.size_ === this.buffer.length) this.grow()
    this.buffer[(this.head + this.size_) % this.buffer.length] = frame
    this.size_++
    this.bytes_ += n
    if (!this.dirty && !this.congested && !this.held) {
      this.dirty = true
      if (this.window === undefined) schedule(this)
      else this.entry = this.window.push(this)
    }
  }

  /** A flush waiting for the window happens at the end of this turn instead. */
  expedite(): void {
    const entry = this.entry
    if (entry === undefined) return
    entry.value = undefined
    this.entry = undefined
    schedule(this)
  }

  /** The window elapsed: called by the server's timers. */
  windowElapsed(): void {
    this.entry = undefined
    this.flush()
  }

  private cancelWindow(): void {
    const entry = this.entry
    if (entry === undefined) return
    entry.value = undefined
    this.entry = undefined
  }

  private grow(): void {
    const next = new Array<Frame | undefined>(Math.min(this.capacity_, this.buffer.length * 2))
    for (let i = 0; i < this.size_; i++) next[i] = this.buffer[(this.head + i) % this.buffer.length]
    this.buffer = next
    this.head = 0
  }

  /** Writes what the socket can take now. Called by the flusher. */
  flush(): void {
    this.dirty = false
    if (this.entry !== undefined) this.cancelWindow()
    if (this.closed || this.size_ === 0) return this.wake()
    const sink = this.sink
    if (sink.bufferedAmount() > this.highWaterMark) return this.waitForDrain()
    this.flushAll()
    if (sink.bufferedAmount() > this.highWaterMark) this.waitForDrain()
    this.wake()
  }

  private waitForDrain(): void {
    if (this.congested) return
    this.congested = true
    this.sink.whenFlushed(() => {
      this.congested = false
      if (this.size_ > 0 && !this.dirty) {
        this.dirty = true
        schedule(this)
      } else {
        this.wake()
      }
    })
  }

  private wake(): void {
    if (this.roomWaiters !== undefined) {
      const waiters = this.roomWaiters
      this.roomWaiters = undefined
      for (const waiter of waiters) {
        // a frame that still does not fit waits on
        if (this.closed || !this.isFullFor(waiter.bytes)) waiter.f()
        else (this.roomWaiters ??= []).push(waiter)
      }
    }
    if (this.emptyWaiters !== undefined && (this.closed || (this.size_ === 0 && !this.dirty && !this.congested))) {
      const waiters = this.emptyWaiters
      this.emptyWaiters = undefined
      for (const f of waiters) f()
    }
  }

  /** Writes now what would be written at the turn's flush (no-op when held, congested or waiting for the window). */
  flushDirty(): void {
    if (this.dirty && this.entry === undefined) this.flush()
  }

  /** Writes every stored frame now, ignoring the high-water mark (used before a close). */
  flushNow(): void {
    if (this.closed || this.held || this.size_ === 0) return
    if (this.entry !== undefined) {
      this.cancelWindow()
      this.dirty = false
    }
    this.congested = false
    this.flushAll()
  }

  private flushAll(): void {
    const batch: Array<Frame> = []
    while (this.size_ > 0) {
      batch.push(this.buffer[this.head]!)
      this.buffer[this.head] = undefined
      this.head = (this.head + 1) % this.buffer.length
      this.size_--
    }
    this.bytes_ = 0
    this.written += batch.length
    this.sink.write(batch)
  }
}

/** What a frame weighs in an outbox: bytes, or UTF-16 units for text (no encoding on the hot path). */
const frameBytes = (frame: Frame): number =>
  typeof frame === "string" ? frame.length : frame instanceof Uint8Array ? frame.byteLength : frame.text.length

// -----------------------------------------------------------------------------
// the flusher: one setImmediate per event-loop turn for every dirty outbox
// -----------------------------------------------------------------------------

/** @internal */
export const nextTurn: (f: () => void) => void = typeof setImmediate === "function"
  ? (f) => void setImmediate(f)
  : (f) => void setTimeout(f, 0)

let pending: Array<Outbox> = []
let first: Array<() => void> = []
let scheduled = false

const scheduleFlush = (): void => {
  if (!scheduled) {
    scheduled = true
    nextTurn(runFlush)
  }
}

const schedule = (outbox: Outbox): void => {
  pending.push(outbox)
  scheduleFlush()
}

/**
 * Runs `f` at the end of this turn, before the dirty outboxes are written: a stack
 * exchange's batch leaves first, so that the other instances start their own
 * deliveries while this one writes to its sockets (one write per receiver, about
 * 10 µs each: 170 ms for a broadcast to 17,000 local receivers).
 *
 * @internal
 */
export const beforeOutboxes = (f: () => void): void => {
  first.push(f)
  scheduleFlush()
}

const runFlush = (): void => {
  scheduled = false
  if (first.length > 0) {
    const tasks = first
    first = []
    for (let i = 0; i < tasks.length; i++) tasks[i]()
  }
  const batch = pending
  pending = []
  for (let i = 0; i < batch.length; i++) batch[i].flush()
}
