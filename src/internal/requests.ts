/**
 * The stack exchange's requests to other instances and their answers: a request is
 * published with a correlation number on the channel of those who can answer
 * (every instance, or the holders of an id), and completes when everyone the broker
 * counted has answered (Redis), when enough answers arrived, or when the request
 * timeout passed (NATS counts no receivers). An ask to a connection of another
 * instance completes with the first reply.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import * as Errors from "../Errors.js"
import type * as Message from "../Message.js"
import type * as StackExchange from "../StackExchange.js"
import type * as envelope from "./envelope.js"
import * as msg from "./message.js"
import type { Publisher } from "./publisher.js"

interface Pending {
  readonly ack: (count: number) => void
  readonly result: (outcome: envelope.Outcome) => void
  readonly fail: (error: Errors.StackExchangeError) => void
}

/** What the acknowledgements of a request add up to. @internal */
export interface Gathered {
  acks: number
  positive: number
  total: number
  expected: number | undefined
}

/** The caller's span, if any: a cross-instance send or ask carries it. @internal */
export const callerTrace: Effect.Effect<envelope.Trace | undefined> = Effect.map(
  Effect.serviceOption(Tracer.ParentSpan),
  (span) =>
    Option.isSome(span)
      ? { traceId: span.value.traceId, spanId: span.value.spanId, sampled: span.value.sampled }
      : undefined
)

/** @internal */
export class Requests {
  private readonly pending = new Map<number, Pending>()
  private nextCorrelation = 0

  constructor(
    private readonly publisher: Publisher,
    private readonly names: ReturnType<typeof envelope.channels>,
    private readonly requestTimeout: Duration.Duration
  ) {}

  /** An acknowledgement arrived: `count` local connections of that instance were concerned. */
  ack(correlation: number, count: number): void {
    this.pending.get(correlation)?.ack(count)
  }

  /** An ask's outcome arrived. */
  result(correlation: number, outcome: envelope.Outcome): void {
    this.pending.get(correlation)?.result(outcome)
  }

  /** Fails every request waiting for answers (the broker went down, or the exchange closed). */
  failAll(error: Errors.StackExchangeError): void {
    for (const request of Array.from(this.pending.values())) request.fail(error)
  }

  /**
   * Publishes a request and counts the acknowledgements: until every receiver the
   * broker reported answered, `enough` holds, or the request timeout passed.
   */
  gather(
    operation: string,
    channel: string,
    request: (correlation: number) => envelope.Envelope,
    enough: (state: Gathered) => boolean
  ): Effect.Effect<Gathered, Errors.StackExchangeError> {
    return Effect.suspend(() => {
      const correlation = ++this.nextCorrelation
      const state: Gathered = { acks: 0, positive: 0, total: 0, expected: undefined }
      const done = Deferred.unsafeMake<void, Errors.StackExchangeError>(FiberId.none)
      const check = () => {
        if ((state.expected !== undefined && state.acks >= state.expected) || enough(state)) {
          Deferred.unsafeDone(done, Effect.void)
        }
      }
      this.pending.set(correlation, {
        ack: (count) => {
          state.acks++
          state.total += count
          if (count > 0) state.positive++
          check()
        },
        result: () => {},
        fail: (error) => Deferred.unsafeDone(done, Effect.fail(error))
      })
      return this.publisher.confirmed(operation, channel, request(correlation), this.requestTimeout).pipe(
        Effect.flatMap((receivers) => {
          state.expected = receivers
          check()
          return Effect.timeoutOption(Deferred.await(done), this.requestTimeout)
        }),
        Effect.as(state),
        Effect.ensuring(Effect.sync(() => this.pending.delete(correlation)))
      )
    })
  }

  /** Asks the holder of `request.to` on another instance; the first reply wins. */
  ask(
    origin: string,
    request: Parameters<StackExchange.Bridge["ask"]>[0],
    timeout: Duration.DurationInput
  ): Effect.Effect<Message.Message, Errors.AskError | Errors.ConnectionNotFound | Errors.StackExchangeError> {
    return Effect.flatMap(callerTrace, (trace) => {
      const duration = Duration.decode(timeout)
      const requestTimeout = this.requestTimeout
      const correlation = ++this.nextCorrelation
      const done = Deferred.unsafeMake<
        Message.Message,
        Errors.AskError | Errors.ConnectionNotFound | Errors.StackExchangeError
      >(FiberId.none)
      // made only when needed: an error captures a stack trace, which costs more than the rest of the ask
      const notFound = () => new Errors.ConnectionNotFound({ id: request.to, namespace: request.namespace })
      let acks = 0
      let holders = 0
      let failed = 0
      let expected: number | undefined
      let final = false
      let firstFailure: Errors.AskError | Errors.ConnectionNotFound | undefined
      const check = () => {
        if (!final && expected !== undefined && acks >= expected) final = true
        if (!final) return
        if (holders === 0) Deferred.unsafeDone(done, Effect.fail(notFound()))
        else if (failed >= holders) Deferred.unsafeDone(done, Effect.fail(firstFailure ?? notFound()))
      }
      this.pending.set(correlation, {
        ack: (count) => {
          acks++
          if (count > 0) holders++
          check()
        },
        result: (outcome) => {
          if (outcome._tag === "Reply") return Deferred.unsafeDone(done, Effect.succeed(outcome.message))
          failed++
          firstFailure ??= outcome.error
          check()
        },
        fail: (error) => Deferred.unsafeDone(done, Effect.fail(error))
      })
      const body = request.body ?? ""
      const message: envelope.Envelope = {
        _tag: "Ask",
        origin,
        correlation,
        to: request.to,
        timeoutMs: Math.max(0, Math.round(Duration.toMillis(duration))),
        trace,
        message: msg.unsafeMake(
          request.namespace,
          request.room ?? "",
          request.event,
          body,
          undefined,
          typeof body !== "string",
          "",
          false,
          false
        )
      }
      // without a count from the broker, the owners have `requestTimeout` to say they exist
      const holdersKnown = Effect.sleep(requestTimeout).pipe(
        Effect.zipRight(Effect.sync(() => {
          final = true
          check()
        })),
        Effect.zipRight(Effect.never)
      )
      return this.publisher.confirmed("ask", this.names.id(request.to), message, requestTimeout).pipe(
        Effect.flatMap((receivers) => {
          expected = receivers
          check()
          return Effect.raceFirst(Deferred.await(done), holdersKnown)
        }),
        Effect.timeoutFail({
          duration: Duration.sum(duration, requestTimeout),
          onTimeout: () =>
            new Errors.AskTimeout({ namespace: request.namespace, event: request.event, timeout: duration })
        }),
        Effect.ensuring(Effect.sync(() => this.pending.delete(correlation)))
      )
    })
  }
}
