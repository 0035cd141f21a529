/**
 * Per-connection deadlines (handshake, ping, pong) on the Effect clock with one
 * fiber per server instead of one per connection. Every queue has a fixed delay,
 * so its entries are already in deadline order and a FIFO is a priority queue.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import { Fifo } from "./fifo.js"

/**
 * A scheduled entry; clearing its `value` cancels it and lets go of the value at
 * once (a closed connection must not stay referenced until its deadline).
 *
 * @internal
 */
export interface Entry<A> {
  readonly at: number
  value: A | undefined
}

/** @internal */
export class DelayQueue<A> {
  private readonly entries = new Fifo<Entry<A>>()

  constructor(
    readonly delay: number,
    private readonly onDue: (value: A) => void,
    private readonly timers: Timers
  ) {}

  /** Schedules `value` to be due `delay` milliseconds from now. */
  push(value: A): Entry<A> {
    const wasEmpty = this.entries.length === 0
    const entry: Entry<A> = { at: this.timers.now() + this.delay, value }
    this.entries.push(entry)
    if (wasEmpty) this.timers.wake()
    return entry
  }

  get nextAt(): number {
    return this.entries.peek()?.at ?? Infinity
  }

  runDue(now: number): void {
    for (let next = this.entries.peek(); next !== undefined && next.at <= now; next = this.entries.peek()) {
      this.entries.shift()
      if (next.value !== undefined) this.onDue(next.value)
    }
  }
}

/** @internal */
export class Timers {
  private readonly queues: Array<DelayQueue<any>> = []
  private signal = Deferred.unsafeMake<void>(FiberId.none)

  constructor(private readonly clock: Clock.Clock) {}

  static readonly make: Effect.Effect<Timers> = Effect.map(Effect.clock, (clock) => new Timers(clock))

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  queue<A>(delay: Duration.DurationInput, onDue: (value: A) => void): DelayQueue<A> {
    const queue = new DelayQueue<A>(Duration.toMillis(delay), onDue, this)
    this.queues.push(queue)
    return queue
  }

  wake(): void {
    Deferred.unsafeDone(this.signal, Effect.void)
  }

  /** The fiber that runs due entries; fork it in the owner's scope. */
  readonly run: Effect.Effect<never> = Effect.gen(this, function*() {
    while (true) {
      this.signal = Deferred.unsafeMake<void>(FiberId.none)
      const now = this.now()
      let next = Infinity
      for (const queue of this.queues) {
        queue.runDue(now)
        next = Math.min(next, queue.nextAt)
      }
      const signal = Deferred.await(this.signal)
      yield* next === Infinity ? signal : Effect.raceFirst(signal, Effect.sleep(Duration.millis(next - now)))
    }
  })
}
