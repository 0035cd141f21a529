/**
 * A sink that records every batch, shared by the outbox tests; `buffered` and
 * `flushed` model a socket that does not drain.
 */
import * as Effect from "effect/Effect"
import type { Frame, Sink } from "../src/internal/outbox.js"

export class RecordingSink implements Sink {
  readonly batches: Array<ReadonlyArray<string>> = []
  buffered = 0
  private drained: Array<() => void> = []
  write(frames: ReadonlyArray<Frame>): void {
    this.batches.push(frames.map((f) => (typeof f === "string" ? f : f instanceof Uint8Array ? "<bytes>" : f.text)))
  }
  bufferedAmount(): number {
    return this.buffered
  }
  whenFlushed(f: () => void): void {
    if (this.buffered === 0) f()
    else this.drained.push(f)
  }
  drain(): void {
    this.buffered = 0
    const waiting = this.drained
    this.drained = []
    for (const f of waiting) f()
  }
  get written(): ReadonlyArray<string> {
    return this.batches.flat()
  }
}

/** One event-loop turn: without a flush window, the outbox flushes once per turn. */
export const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
