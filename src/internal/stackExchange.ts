/** @internal */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as Errors from "../Errors.js"
import type * as Message from "../Message.js"
import type * as StackExchange from "../StackExchange.js"
import * as envelope from "./envelope.js"
import * as msg from "./message.js"
import { brokerUp, droppedPublishes, failures, publishFailures } from "./metrics.js"
import { installedTracer, startSpan } from "./trace.js"

/** @internal */
export { droppedPublishes, failures } from "./metrics.js"

const defaults = {
  prefix: "neffos",
  requestTimeout: Duration.millis(500),
  brokerTimeout: Duration.seconds(5),
  maxPendingPublishes: 8192,
  maxPendingBytes: 16 * 1024 * 1024,
  retryDelay: Duration.millis(200)
}

/** A publish waiting for its batch to leave or for the broker to confirm it. */
interface Outgoing extends StackExchange.Publication {
  /** the caller waiting for the broker's confirmation, if any: the receivers, or why not */
  readonly confirm: ((outcome: number | undefined | Errors.StackExchangeError) => void) | undefined
}

/** Completes once the I/O that already arrived has been read (Node's check phase comes after the poll phase). */
const afterPendingIo: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

interface Attached {
  readonly local: StackExchange.LocalServer
  /** the topic channels this server holds a reference to */
  readonly topics: Set<string>
  closed: boolean
}

interface Pending {
  readonly ack: (count: number) => void
  readonly result: (outcome: envelope.Outcome) => void
  readonly fail: (error: Errors.StackExchangeError) => void
}

interface Gathered {
  acks: number
  positive: number
  total: number
  expected: number | undefined
}

/** The caller's span, if any: a cross-instance send or ask carries it. */
const callerTrace: Effect.Effect<envelope.Trace | undefined> = Effect.map(
  Effect.serviceOption(Tracer.ParentSpan),
  (span) =>
    Option.isSome(span)
      ? { traceId: span.value.traceId, spanId: span.value.spanId, sampled: span.value.sampled }
      : undefined
)

const unavailable = new Error("the broker is unavailable")
const detached = new Error("the server detached from the stack exchange")
const overloaded = new Error("too many publishes are waiting for the broker")

/** @internal */
export const make = (
  acquire: (handlers: StackExchange.TransportHandlers) => Effect.Effect<
    StackExchange.Transport,
    Errors.StackExchangeError,
    Scope.Scope
  >,
  options?: StackExchange.Options
): Effect.Effect<StackExchange.StackExchange, Errors.StackExchangeError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options?.prefix ?? defaults.prefix
    if (!envelope.isValidPrefix(prefix)) {
      return yield* Effect.fail(
        new Errors.StackExchangeError({
          operation: "configure",
          reason: "Configuration",
          cause: new Error(`invalid channel prefix ${JSON.stringify(prefix)}: use [A-Za-z0-9_-] tokens joined by "."`)
        })
      )
    }
    const requestTimeout = Duration.decode(options?.requestTimeout ?? defaults.requestTimeout)
    const brokerTimeout = Duration.decode(options?.brokerTimeout ?? defaults.brokerTimeout)
    const maxPendingPublishes = Math.max(1, options?.maxPendingPublishes ?? defaults.maxPendingPublishes)
    const maxPendingBytes = Math.max(1, options?.maxPendingBytes ?? defaults.maxPendingBytes)
    const names = envelope.channels(prefix)
    // spans of what arrives from other instances go to the tracer the exchange was built with
    const tracer = yield* installedTracer
    const clock = yield* Effect.clock

    const locals = new Map<string, Attached>()
    /** channel -> how many (server, topic) pairs want it */
    const refs = new Map<string, number>()
    /** what the broker confirmed */
    const actual = new Set<string>()
    let dirty = new Set<string>()
    /** the broker connection, as the transport reports it */
    let transportUp = true
    /** the broker answered its last ping within `brokerTimeout` */
    let alive = true
    /** both of the above, once the change has been handled */
    let connected = true
    let restoring = false
    let passing = false
    let epoch = 0
    let nodeClosed = false
    let lastDown: Errors.StackExchangeError | undefined
    const pending = new Map<number, Pending>()
    let nextCorrelation = 0
    const waiters = new Set<() => void>()
    const wake = yield* Queue.sliding<void>(1)
    const run = yield* FiberSet.makeRuntime<never>()

    const failed = (
      operation: string,
      reason: Errors.StackExchangeErrorReason,
      cause: unknown
    ): Errors.StackExchangeError => {
      failures.unsafeUpdate(1, [])
      return new Errors.StackExchangeError({ operation, reason, cause })
    }
    const detachedError = (operation: string) =>
      new Errors.StackExchangeError({ operation, reason: "Detached", cause: detached })

    const markDirty = (channel: string) => {
      dirty.add(channel)
      wake.unsafeOffer(undefined)
    }
    const retain = (channel: string) => {
      const n = refs.get(channel) ?? 0
      refs.set(channel, n + 1)
      if (n === 0) markDirty(channel)
    }
    const release = (channel: string) => {
      const n = refs.get(channel) ?? 0
      if (n > 1) return void refs.set(channel, n - 1)
      refs.delete(channel)
      markDirty(channel)
    }

    const channelOf = (topic: StackExchange.Topic): string => {
      switch (topic._tag) {
        case "Namespace":
          return names.namespace(topic.namespace)
        case "Room":
          return names.room(topic.namespace, topic.room)
        case "Connection":
          return names.id(topic.id)
      }
    }

    const isSettled = () => connected && !restoring && !passing && dirty.size === 0

    const settle = () => {
      if (!isSettled()) return
      for (const waiter of Array.from(waiters)) waiter()
    }

    const settled: Effect.Effect<void> = Effect.async<void>((resume) => {
      if (isSettled()) return resume(Effect.void)
      const waiter = () => {
        waiters.delete(waiter)
        resume(Effect.void)
      }
      waiters.add(waiter)
      return Effect.sync(() => waiters.delete(waiter))
    })

    const finish = () => {
      if (dirty.size > 0) return void wake.unsafeOffer(undefined)
      if (connected && restoring) {
        restoring = false
        brokerUp.unsafeUpdate(1, [])
        for (const attached of locals.values()) attached.local.reportStatus({ _tag: "Up" })
      }
      settle()
    }

    /** Brings the broker's subscriptions to `refs`, one batch at a time, in order. */
    const pass = Effect.gen(function*() {
      if (!connected) return
      if (dirty.size === 0) return finish()
      const batch = dirty
      dirty = new Set()
      const started = epoch
      const add: Array<string> = []
      const remove: Array<string> = []
      for (const channel of batch) {
        const wanted = refs.has(channel)
        if (wanted && !actual.has(channel)) add.push(channel)
        else if (!wanted && actual.has(channel)) remove.push(channel)
      }
      passing = true
      const exit = yield* Effect.exit(
        Effect.zipRight(
          add.length === 0 ? Effect.void : Effect.tap(transport.subscribe(add), () => {
            if (epoch === started) { for (const channel of add) actual.add(channel) }
          }),
          remove.length === 0 ? Effect.void : Effect.tap(transport.unsubscribe(remove), () => {
            if (epoch === started) { for (const channel of remove) actual.delete(channel) }
          })
        )
      )
      passing = false
      if (Exit.isFailure(exit) || epoch !== started) {
        for (const channel of batch) dirty.add(channel)
        if (Exit.isFailure(exit)) {
          failures.unsafeUpdate(1, [])
          // a broker that went down reports it and wakes us on recovery; anything else is retried
          if (connected) yield* Effect.sleep(defaults.retryDelay)
        }
      }
      finish()
    })

    // -------------------------------------------------------------------------
    // sending: what one event-loop turn publishes leaves as one batch, in call
    // order, and never makes the caller wait unless it asked for confirmation
    // -------------------------------------------------------------------------

    let queue: Array<Outgoing> = []
    let scheduled = false
    /** queued, or handed to the transport and not yet confirmed by the broker */
    let pendingPublishes = 0
    let pendingBytes = 0
    /** callers waiting for a confirmation: they fail at once when the broker goes down */
    const confirming = new Set<(error: Errors.StackExchangeError) => void>()
    const drainWaiters = new Set<() => void>()

    /** Why a publish cannot be taken now (counted), or undefined when it can. */
    const refusal = (operation: string, bytes: number): Errors.StackExchangeError | undefined => {
      if (nodeClosed) return detachedError(operation)
      if (!connected) {
        publishFailures.unsafeUpdate(1, [])
        return failed(operation, "Down", lastDown?.cause ?? unavailable)
      }
      if (pendingPublishes >= maxPendingPublishes || (pendingPublishes > 0 && pendingBytes + bytes > maxPendingBytes)) {
        droppedPublishes.unsafeUpdate(1, [])
        return new Errors.StackExchangeError({ operation, reason: "Overloaded", cause: overloaded })
      }
      return undefined
    }

    const settleBatch = (
      batch: ReadonlyArray<Outgoing>,
      exit: Exit.Exit<ReadonlyArray<number | undefined>, Errors.StackExchangeError>
    ) => {
      let bytes = 0
      for (const entry of batch) bytes += entry.payload.byteLength
      pendingPublishes -= batch.length
      pendingBytes -= bytes
      if (Exit.isSuccess(exit)) {
        for (let i = 0; i < batch.length; i++) batch[i].confirm?.(exit.value[i])
      } else {
        const error = Option.getOrElse(
          Cause.failureOption(exit.cause),
          () =>
            new Errors.StackExchangeError({ operation: "publish", reason: "Broker", cause: Cause.squash(exit.cause) })
        )
        if (error.reason !== "Detached") {
          failures.unsafeUpdate(batch.length, [])
          publishFailures.unsafeUpdate(batch.length, [])
        }
        for (const entry of batch) entry.confirm?.(error)
      }
      if (pendingPublishes === 0) { for (const waiter of Array.from(drainWaiters)) waiter() }
    }

    const flush = () => {
      scheduled = false
      const batch = queue
      queue = []
      if (batch.length === 0) return
      if (nodeClosed) return settleBatch(batch, Exit.fail(detachedError("publish")))
      if (!connected) {
        const error = new Errors.StackExchangeError({
          operation: "publish",
          reason: "Down",
          cause: lastDown?.cause ?? unavailable
        })
        return settleBatch(batch, Exit.fail(error))
      }
      run(Effect.flatMap(Effect.exit(transport.publish(batch)), (exit) => Effect.sync(() => settleBatch(batch, exit))))
    }

    const enqueue = (entry: Outgoing) => {
      pendingPublishes++
      pendingBytes += entry.payload.byteLength
      queue.push(entry)
      if (scheduled) return
      scheduled = true
      setImmediate(flush)
    }

    /** Queues a publish without waiting for the broker; returns why it was refused, if it was. */
    const post = (
      operation: string,
      channel: string,
      message: envelope.Envelope,
      history?: StackExchange.Publication["history"]
    ): Errors.StackExchangeError | undefined => {
      const payload = envelope.encode(message)
      const error = refusal(operation, payload.byteLength)
      if (error === undefined) enqueue({ channel, payload, confirm: undefined, history })
      return error
    }

    /** Queues a publish and waits (at most `deadline`) for the broker to confirm it; succeeds with its receivers. */
    const confirmed = (
      operation: string,
      channel: string,
      message: envelope.Envelope,
      deadline: Duration.Duration,
      history?: StackExchange.Publication["history"]
    ): Effect.Effect<number | undefined, Errors.StackExchangeError> => {
      const waiting = Effect.async<number | undefined, Errors.StackExchangeError>((resume) => {
        const payload = envelope.encode(message)
        const error = refusal(operation, payload.byteLength)
        if (error !== undefined) return resume(Effect.fail(error))
        let open = true
        const done = (outcome: number | undefined | Errors.StackExchangeError) => {
          if (!open) return
          open = false
          confirming.delete(done)
          resume(
            outcome instanceof Errors.StackExchangeError
              ? Effect.fail(new Errors.StackExchangeError({ operation, reason: outcome.reason, cause: outcome.cause }))
              : Effect.succeed(outcome)
          )
        }
        confirming.add(done)
        enqueue({ channel, payload, confirm: done, history })
        return Effect.sync(() => {
          open = false
          confirming.delete(done)
        })
      })
      if (!Duration.isFinite(deadline)) return waiting
      return Effect.timeoutFail(waiting, {
        duration: deadline,
        onTimeout: () =>
          failed(operation, "Timeout", new Error(`the broker did not confirm within ${Duration.format(deadline)}`))
      })
    }

    /** Completes once nothing waits for the broker. */
    const drained: Effect.Effect<void> = Effect.async<void>((resume) => {
      if (pendingPublishes === 0) return resume(Effect.void)
      const waiter = () => {
        drainWaiters.delete(waiter)
        resume(Effect.void)
      }
      drainWaiters.add(waiter)
      return Effect.sync(() => drainWaiters.delete(waiter))
    })

    // -------------------------------------------------------------------------
    // receiving
    // -------------------------------------------------------------------------

    const reply = (origin: string, message: envelope.Envelope) => void post("reply", names.inbox(origin), message)

    const others = (origin: string): Array<StackExchange.LocalServer> => {
      const out: Array<StackExchange.LocalServer> = []
      for (const attached of locals.values()) {
        if (!attached.closed && attached.local.instanceId !== origin) out.push(attached.local)
      }
      return out
    }

    const answerAsk = (
      targets: ReadonlyArray<StackExchange.LocalServer>,
      request: Extract<envelope.Envelope, { _tag: "Ask" }>
    ): Effect.Effect<void> => {
      const message = request.message
      const ask = (local: StackExchange.LocalServer) =>
        local.ask({
          to: request.to,
          namespace: message.namespace,
          room: message.room,
          event: message.event,
          body: message.body
        }, Duration.millis(request.timeoutMs))
      const anyOf = targets.length === 1 ? ask(targets[0]) : Effect.raceAll(targets.map(ask))
      // the asking instance's span is the parent of whatever the ask does here
      const first = request.trace === undefined
        ? anyOf
        : Effect.withParentSpan(anyOf, Tracer.externalSpan(request.trace))
      return Effect.flatMap(Effect.exit(first), (exit) =>
        Effect.sync(() => {
          if (Exit.isSuccess(exit)) {
            return reply(request.origin, {
              _tag: "Result",
              correlation: request.correlation,
              outcome: { _tag: "Reply", message: exit.value }
            })
          }
          const failure = Cause.failureOption(exit.cause)
          if (Option.isNone(failure)) return
          reply(request.origin, {
            _tag: "Result",
            correlation: request.correlation,
            outcome: { _tag: "Failure", error: failure.value }
          })
        }))
    }

    const onMessage = (_channel: string, payload: Uint8Array, stored?: StackExchange.Stored): void => {
      if (nodeClosed) return
      const received = envelope.decode(payload)
      if (received === undefined) return
      // a broker client's callback must not throw: whatever goes wrong here is logged
      try {
        dispatch(received, stored)
      } catch (defect) {
        run(Effect.logError("effect-neffos: a stack exchange message could not be handled", defect))
      }
    }

    const dispatch = (received: envelope.Envelope, stored: StackExchange.Stored | undefined): void => {
      switch (received._tag) {
        case "Broadcast": {
          const except = { connection: received.exceptConnection, id: received.exceptId }
          if (stored !== undefined) {
            // a stored broadcast reaches every instance from the broker, its publisher included
            for (const attached of locals.values()) {
              if (!attached.closed) attached.local.deliver(received.message, { to: received.to, except, stored })
            }
            return
          }
          for (const local of others(received.origin)) {
            local.deliver(received.message, { to: received.to, except })
          }
          return
        }
        case "Send": {
          let count = 0
          for (const local of others(received.origin)) {
            count += local.deliver(received.message, { to: received.to, except: {} })
          }
          if (tracer !== undefined && received.trace !== undefined) {
            const span = startSpan(
              tracer,
              clock,
              "effect-neffos.send",
              Tracer.externalSpan(received.trace),
              "consumer",
              {
                "neffos.to": received.to,
                "neffos.namespace": received.message.namespace,
                "neffos.room": received.message.room,
                "neffos.event": received.message.event,
                "neffos.receivers": count
              }
            )
            span.end(clock.unsafeCurrentTimeNanos(), Exit.void)
          }
          reply(received.origin, { _tag: "Ack", correlation: received.correlation, count })
          return
        }
        case "Ask": {
          const targets = others(received.origin).filter((local) =>
            local.count(received.to, received.message.namespace) > 0
          )
          reply(received.origin, { _tag: "Ack", correlation: received.correlation, count: targets.length })
          if (targets.length > 0) run(answerAsk(targets, received))
          return
        }
        case "Close": {
          let count = 0
          for (const local of others(received.origin)) count += local.close(received.id, received.code, received.reason)
          reply(received.origin, { _tag: "Ack", correlation: received.correlation, count })
          return
        }
        case "Count": {
          let count = 0
          for (const local of others(received.origin)) count += local.connectionCount()
          reply(received.origin, { _tag: "Ack", correlation: received.correlation, count })
          return
        }
        case "Ack":
          pending.get(received.correlation)?.ack(received.count)
          return
        case "Result":
          pending.get(received.correlation)?.result(received.outcome)
          return
        case "Cluster": {
          const targets = received.to === undefined ? others(received.origin) : others(received.origin).filter(
            (local) => local.instanceId === received.to
          )
          for (const local of targets) local.cluster?.(received.origin, received.payload)
          return
        }
        case "Info":
          for (const local of others(received.origin)) local.info?.(received.origin, received.payload)
          return
      }
    }

    // -------------------------------------------------------------------------
    // broker status: the transport's connection, and whether the broker answers
    // -------------------------------------------------------------------------

    const goDown = (error: Errors.StackExchangeError): void => {
      if (!connected) return
      connected = false
      restoring = false
      lastDown = error
      failures.unsafeUpdate(1, [])
      brokerUp.unsafeUpdate(0, [])
      for (const request of Array.from(pending.values())) request.fail(error)
      const unconfirmed = new Errors.StackExchangeError({ operation: "publish", reason: "Down", cause: error.cause })
      for (const fail of Array.from(confirming)) fail(unconfirmed)
      for (const attached of locals.values()) attached.local.reportStatus({ _tag: "Down", error })
    }

    const goUp = (): void => {
      if (connected || !transportUp || !alive) return
      connected = true
      restoring = true
      epoch++
      // the servers' own view is the truth: rebuild from it, then resubscribe everything
      for (const attached of locals.values()) {
        const now = new Set(attached.local.topics().map(channelOf))
        for (const channel of attached.topics) {
          if (!now.has(channel)) {
            attached.topics.delete(channel)
            release(channel)
          }
        }
        for (const channel of now) {
          if (!attached.topics.has(channel)) {
            attached.topics.add(channel)
            retain(channel)
          }
        }
      }
      for (const channel of refs.keys()) actual.delete(channel)
      for (const channel of refs.keys()) dirty.add(channel)
      for (const channel of actual) dirty.add(channel)
      wake.unsafeOffer(undefined)
    }

    const onStatus = (status: StackExchange.Status): void => {
      if (nodeClosed) return
      if (status._tag === "Down") {
        transportUp = false
        return goDown(status.error)
      }
      // a new connection has answered
      transportUp = true
      alive = true
      goUp()
    }

    /**
     * Pings the broker every quarter of `brokerTimeout` while its connection is up: a ping
     * not answered within `brokerTimeout` reports the broker down (a frozen broker keeps its
     * TCP connection), and the answer, whenever it comes, reports it up again.
     */
    const heartbeat = (transport: StackExchange.Transport): Effect.Effect<void> =>
      Effect.gen(function*() {
        const ping = Effect.retry(transport.ping, Schedule.spaced(defaults.retryDelay))
        const silence = new Errors.StackExchangeError({
          operation: "connection",
          reason: "Timeout",
          cause: new Error(`the broker did not answer within ${Duration.format(brokerTimeout)}`)
        })
        while (true) {
          yield* Effect.sleep(Duration.times(brokerTimeout, 0.25))
          if (!transportUp) continue
          const probe = yield* Effect.fork(ping)
          const inTime = yield* Effect.timeoutOption(Fiber.await(probe), brokerTimeout)
          if (Option.isNone(inTime)) {
            // an answer that arrived while this fiber was late is read before judging
            yield* afterPendingIo
            if (Option.isNone(yield* Fiber.poll(probe))) {
              if (alive) {
                alive = false
                goDown(silence)
              }
              yield* Fiber.await(probe)
            }
          }
          if (!alive) {
            alive = true
            goUp()
          }
        }
      })

    const transport = yield* acquire({ onMessage, onStatus })
    brokerUp.unsafeUpdate(1, [])
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        nodeClosed = true
        const error = detachedError("close")
        for (const request of Array.from(pending.values())) request.fail(error)
        for (const fail of Array.from(confirming)) fail(error)
      })
    )
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Queue.take(wake), pass)))
    if (Duration.isFinite(brokerTimeout) && Duration.toMillis(brokerTimeout) > 0) {
      yield* Effect.forkScoped(heartbeat(transport))
    }

    // -------------------------------------------------------------------------
    // requests
    // -------------------------------------------------------------------------

    /**
     * Publishes a request and counts the acknowledgements: until every receiver the
     * broker reported answered, `enough` holds, or the request timeout passed.
     */
    const gather = (
      operation: string,
      channel: string,
      request: (correlation: number) => envelope.Envelope,
      enough: (state: Gathered) => boolean
    ): Effect.Effect<Gathered, Errors.StackExchangeError> =>
      Effect.gen(function*() {
        const correlation = ++nextCorrelation
        const state: Gathered = { acks: 0, positive: 0, total: 0, expected: undefined }
        const done = yield* Deferred.make<void, Errors.StackExchangeError>()
        const check = () => {
          if ((state.expected !== undefined && state.acks >= state.expected) || enough(state)) {
            Deferred.unsafeDone(done, Effect.void)
          }
        }
        pending.set(correlation, {
          ack: (count) => {
            state.acks++
            state.total += count
            if (count > 0) state.positive++
            check()
          },
          result: () => {},
          fail: (error) => Deferred.unsafeDone(done, Effect.fail(error))
        })
        return yield* confirmed(operation, channel, request(correlation), requestTimeout).pipe(
          Effect.flatMap((receivers) => {
            state.expected = receivers
            check()
            return Effect.timeoutOption(Deferred.await(done), requestTimeout)
          }),
          Effect.as(state),
          Effect.ensuring(Effect.sync(() => pending.delete(correlation)))
        )
      })

    const ask = (
      origin: string,
      request: Parameters<StackExchange.Bridge["ask"]>[0],
      timeout: Duration.DurationInput
    ): Effect.Effect<Message.Message, Errors.AskError | Errors.ConnectionNotFound | Errors.StackExchangeError> =>
      Effect.gen(function*() {
        const duration = Duration.decode(timeout)
        const trace = yield* callerTrace
        const correlation = ++nextCorrelation
        const done = yield* Deferred.make<
          Message.Message,
          Errors.AskError | Errors.ConnectionNotFound | Errors.StackExchangeError
        >()
        const notFound = new Errors.ConnectionNotFound({ id: request.to, namespace: request.namespace })
        let acks = 0
        let holders = 0
        let failed = 0
        let expected: number | undefined
        let final = false
        let firstFailure: Errors.AskError | Errors.ConnectionNotFound | undefined
        const check = () => {
          if (!final && expected !== undefined && acks >= expected) final = true
          if (!final) return
          if (holders === 0) Deferred.unsafeDone(done, Effect.fail(notFound))
          else if (failed >= holders) Deferred.unsafeDone(done, Effect.fail(firstFailure ?? notFound))
        }
        pending.set(correlation, {
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
        const message = {
          _tag: "Ask" as const,
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
        return yield* confirmed("ask", names.id(request.to), message, requestTimeout).pipe(
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
          Effect.ensuring(Effect.sync(() => pending.delete(correlation)))
        )
      })

    // -------------------------------------------------------------------------
    // the rooms' shared history, when the transport keeps one
    // -------------------------------------------------------------------------

    const transportHistory = transport.history
    const sharedHistory: StackExchange.BridgeHistory | undefined = transportHistory === undefined ? undefined : {
      read: (namespace, room, settings, since, limit) =>
        Effect.suspend(() => {
          if (nodeClosed) return Effect.fail(detachedError("history"))
          if (!connected) return Effect.fail(failed("history", "Down", lastDown?.cause ?? unavailable))
          return Effect.map(transportHistory.read(namespace, room, settings, since, limit), (read) => {
            const entries: Array<
              { stored: StackExchange.Stored; message: Message.Message; exceptId: string | undefined }
            > = []
            for (const { payload, stored } of read.entries) {
              const decoded = envelope.decode(payload)
              if (decoded?._tag !== "Broadcast") continue
              entries.push({ stored, message: decoded.message, exceptId: decoded.exceptId })
            }
            return { ...read, entries }
          })
        })
    }

    // -------------------------------------------------------------------------
    // attaching servers
    // -------------------------------------------------------------------------

    const attach = (local: StackExchange.LocalServer): Effect.Effect<StackExchange.Bridge, never, Scope.Scope> =>
      Effect.gen(function*() {
        const origin = local.instanceId
        const attached: Attached = { local, topics: new Set(), closed: false }
        locals.set(origin, attached)
        retain(names.inbox(origin))
        retain(names.all)
        for (const topic of local.topics()) {
          const channel = channelOf(topic)
          if (!attached.topics.has(channel)) {
            attached.topics.add(channel)
            retain(channel)
          }
        }
        if (!connected && lastDown !== undefined) local.reportStatus({ _tag: "Down", error: lastDown })

        yield* Effect.addFinalizer(() =>
          Effect.suspend(() => {
            attached.closed = true
            locals.delete(origin)
            for (const channel of attached.topics) release(channel)
            attached.topics.clear()
            release(names.inbox(origin))
            release(names.all)
            // what this server published last (its connections' goodbyes) crosses before it goes
            // (a finalizer is uninterruptible: the wait must be made interruptible for the timeout to end it)
            return Effect.ignore(
              Effect.timeout(Effect.interruptible(Effect.zipRight(drained, settled)), requestTimeout)
            )
          })
        )

        const guard = <A, E>(
          operation: string,
          effect: Effect.Effect<A, E | Errors.StackExchangeError>
        ): Effect.Effect<A, E | Errors.StackExchangeError> =>
          Effect.suspend(() => attached.closed ? Effect.fail(detachedError(operation)) : effect)

        const bridge: StackExchange.Bridge = {
          topicChanged: (topic, active) => {
            if (attached.closed) return
            const channel = channelOf(topic)
            if (active) {
              if (attached.topics.has(channel)) return
              attached.topics.add(channel)
              retain(channel)
            } else if (attached.topics.delete(channel)) {
              release(channel)
            }
          },
          publish: (message, { confirm, except, history, to }) =>
            guard(
              "publish",
              Effect.suspend(() => {
                const channel = to !== undefined
                  ? names.id(to)
                  : message.room.length > 0
                  ? names.room(message.namespace, message.room)
                  : names.namespace(message.namespace)
                const broadcast: envelope.Envelope = {
                  _tag: "Broadcast",
                  origin,
                  to,
                  exceptConnection: except.connection,
                  exceptId: except.id,
                  message
                }
                const stored = history === undefined || transport.history === undefined
                  ? undefined
                  : { ...history, namespace: message.namespace, room: message.room }
                if (confirm === true) {
                  return Effect.asVoid(confirmed("publish", channel, broadcast, brokerTimeout, stored))
                }
                const refused = post("publish", channel, broadcast, stored)
                // without confirmation, a publish beyond the bound is dropped and counted, not failed
                return refused === undefined || refused.reason === "Overloaded" ? Effect.void : Effect.fail(refused)
              })
            ),
          send: (id, message) =>
            guard(
              "send",
              Effect.flatMap(
                Effect.flatMap(callerTrace, (trace) =>
                  gather(
                    "send",
                    names.id(id),
                    (correlation) => ({ _tag: "Send", origin, correlation, to: id, message, trace }),
                    (state) => state.positive > 0
                  )),
                (state) =>
                  state.positive > 0
                    ? Effect.void
                    : Effect.fail(new Errors.ConnectionNotFound({ id, namespace: message.namespace }))
              )
            ),
          ask: (request, timeout) => guard("ask", ask(origin, request, timeout)),
          cluster: (payload, { confirm, to }) =>
            guard(
              "cluster",
              Effect.suspend(() => {
                const channel = to === undefined ? names.all : names.inbox(to)
                const message: envelope.Envelope = { _tag: "Cluster", origin, to, payload }
                if (confirm !== undefined) {
                  return Effect.asVoid(confirmed("cluster", channel, message, Duration.decode(confirm)))
                }
                const refused = post("cluster", channel, message)
                return refused === undefined ? Effect.void : Effect.fail(refused)
              })
            ),
          info: (payload) => {
            if (!attached.closed) post("info", names.all, { _tag: "Info", origin, payload })
          },
          connectionCount: guard(
            "count",
            Effect.map(
              gather("count", names.all, (correlation) => ({ _tag: "Count", origin, correlation }), () => false),
              (state) => local.connectionCount() + state.total
            )
          ),
          close: (id, code, reason) =>
            guard(
              "close",
              Effect.map(
                gather(
                  "close",
                  names.id(id),
                  (correlation) => ({ _tag: "Close", origin, correlation, id, code, reason }),
                  () => false
                ),
                (state) => state.total
              )
            ),
          history: sharedHistory,
          settled
        }

        // the inbox must be live before the first request can be answered
        yield* Effect.ignore(Effect.timeout(settled, requestTimeout))
        return bridge
      })

    return {
      attach,
      subscriptions: Effect.sync(() => Array.from(actual).sort()),
      settled
    }
  })
