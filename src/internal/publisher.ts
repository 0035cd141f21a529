/**
 * The stack exchange's outgoing side: what one event-loop turn publishes leaves as
 * one batch (one Redis pipeline, one NATS write), in call order, and never makes the
 * caller wait unless it asked for the broker's confirmation. What waits for the
 * broker is bounded (`maxPendingPublishes`, `maxPendingBytes`): beyond it a publish
 * is refused and counted.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Errors from "../Errors.js"
import type * as StackExchange from "../StackExchange.js"
import * as envelope from "./envelope.js"
import { droppedPublishes, failures, publishFailures } from "./metrics.js"
import { beforeOutboxes } from "./outbox.js"

/** A publish waiting for its batch to leave or for the broker to confirm it. */
interface Outgoing extends StackExchange.Publication {
  /** the caller waiting for the broker's confirmation, if any: the receivers, or why not */
  readonly confirm: ((outcome: number | undefined | Errors.StackExchangeError) => void) | undefined
}

/** What the publisher reads of its exchange. @internal */
export interface Exchange {
  readonly closed: boolean
  readonly connected: boolean
  /** why the broker is down, while it is */
  readonly downCause: unknown
  readonly publish: (
    batch: ReadonlyArray<StackExchange.Publication>
  ) => Effect.Effect<ReadonlyArray<number | undefined>, Errors.StackExchangeError>
  /** runs a fiber of the exchange */
  readonly run: (effect: Effect.Effect<void>) => void
}

const detached = new Error("the server detached from the stack exchange")
const overloaded = new Error("too many publishes are waiting for the broker")

/** @internal */
export class Publisher {
  private queue: Array<Outgoing> = []
  private scheduled = false
  /** queued, or handed to the transport and not yet confirmed by the broker */
  private pendingPublishes = 0
  private pendingBytes = 0
  /** callers waiting for a confirmation: they fail at once when the broker goes down */
  private readonly confirming = new Set<(error: Errors.StackExchangeError) => void>()
  private readonly drainWaiters = new Set<() => void>()

  constructor(
    private readonly bounds: { readonly maxPendingPublishes: number; readonly maxPendingBytes: number },
    private readonly exchange: Exchange
  ) {}

  /** Why a publish cannot be taken now (counted), or undefined when it can. */
  private refusal(operation: string, bytes: number): Errors.StackExchangeError | undefined {
    if (this.exchange.closed) return new Errors.StackExchangeError({ operation, reason: "Detached", cause: detached })
    if (!this.exchange.connected) {
      publishFailures.unsafeUpdate(1, [])
      failures.unsafeUpdate(1, [])
      return new Errors.StackExchangeError({ operation, reason: "Down", cause: this.exchange.downCause })
    }
    if (
      this.pendingPublishes >= this.bounds.maxPendingPublishes ||
      (this.pendingPublishes > 0 && this.pendingBytes + bytes > this.bounds.maxPendingBytes)
    ) {
      droppedPublishes.unsafeUpdate(1, [])
      return new Errors.StackExchangeError({ operation, reason: "Overloaded", cause: overloaded })
    }
    return undefined
  }

  private settleBatch(
    batch: ReadonlyArray<Outgoing>,
    exit: Exit.Exit<ReadonlyArray<number | undefined>, Errors.StackExchangeError>
  ): void {
    let bytes = 0
    for (const entry of batch) bytes += entry.payload.byteLength
    this.pendingPublishes -= batch.length
    this.pendingBytes -= bytes
    if (Exit.isSuccess(exit)) {
      for (let i = 0; i < batch.length; i++) batch[i].confirm?.(exit.value[i])
    } else {
      const error = Option.getOrElse(
        Cause.failureOption(exit.cause),
        () => new Errors.StackExchangeError({ operation: "publish", reason: "Broker", cause: Cause.squash(exit.cause) })
      )
      if (error.reason !== "Detached") {
        failures.unsafeUpdate(batch.length, [])
        publishFailures.unsafeUpdate(batch.length, [])
      }
      for (const entry of batch) entry.confirm?.(error)
    }
    if (this.pendingPublishes === 0) { for (const waiter of Array.from(this.drainWaiters)) waiter() }
  }

  private flush(): void {
    this.scheduled = false
    const batch = this.queue
    this.queue = []
    if (batch.length === 0) return
    if (this.exchange.closed) {
      return this.settleBatch(
        batch,
        Exit.fail(new Errors.StackExchangeError({ operation: "publish", reason: "Detached", cause: detached }))
      )
    }
    if (!this.exchange.connected) {
      const error = new Errors.StackExchangeError({
        operation: "publish",
        reason: "Down",
        cause: this.exchange.downCause
      })
      return this.settleBatch(batch, Exit.fail(error))
    }
    this.exchange.run(
      Effect.flatMap(
        Effect.exit(this.exchange.publish(batch)),
        (exit) => Effect.sync(() => this.settleBatch(batch, exit))
      )
    )
  }

  private enqueue(entry: Outgoing): void {
    this.pendingPublishes++
    this.pendingBytes += entry.payload.byteLength
    this.queue.push(entry)
    if (this.scheduled) return
    this.scheduled = true
    // at the end of the turn, ahead of this turn's socket writes
    beforeOutboxes(() => this.flush())
  }

  /** Queues a publish without waiting for the broker; returns why it was refused, if it was. */
  post(
    operation: string,
    channel: string,
    message: envelope.Envelope,
    history?: StackExchange.Publication["history"]
  ): Errors.StackExchangeError | undefined {
    const payload = envelope.encode(message)
    const error = this.refusal(operation, payload.byteLength)
    if (error === undefined) this.enqueue({ channel, payload, confirm: undefined, history })
    return error
  }

  /** Queues a publish and waits (at most `deadline`) for the broker to confirm it; succeeds with its receivers. */
  confirmed(
    operation: string,
    channel: string,
    message: envelope.Envelope,
    deadline: Duration.Duration,
    history?: StackExchange.Publication["history"]
  ): Effect.Effect<number | undefined, Errors.StackExchangeError> {
    const waiting = Effect.async<number | undefined, Errors.StackExchangeError>((resume) => {
      const payload = envelope.encode(message)
      const error = this.refusal(operation, payload.byteLength)
      if (error !== undefined) return resume(Effect.fail(error))
      let open = true
      const done = (outcome: number | undefined | Errors.StackExchangeError) => {
        if (!open) return
        open = false
        this.confirming.delete(done)
        resume(
          outcome instanceof Errors.StackExchangeError
            ? Effect.fail(new Errors.StackExchangeError({ operation, reason: outcome.reason, cause: outcome.cause }))
            : Effect.succeed(outcome)
        )
      }
      this.confirming.add(done)
      this.enqueue({ channel, payload, confirm: done, history })
      return Effect.sync(() => {
        open = false
        this.confirming.delete(done)
      })
    })
    if (!Duration.isFinite(deadline)) return waiting
    return Effect.timeoutFail(waiting, {
      duration: deadline,
      onTimeout: () => {
        failures.unsafeUpdate(1, [])
        return new Errors.StackExchangeError({
          operation,
          reason: "Timeout",
          cause: new Error(`the broker did not confirm within ${Duration.format(deadline)}`)
        })
      }
    })
  }

  /** Fails every caller waiting for a confirmation (the broker went down, or the exchange closed). */
  failConfirming(error: Errors.StackExchangeError): void {
    for (const fail of Array.from(this.confirming)) fail(error)
  }

  /** Completes once nothing waits for the broker. */
  readonly drained: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.pendingPublishes === 0) return resume(Effect.void)
    const waiter = () => {
      this.drainWaiters.delete(waiter)
      resume(Effect.void)
    }
    this.drainWaiters.add(waiter)
    return Effect.sync(() => this.drainWaiters.delete(waiter))
  })
}
