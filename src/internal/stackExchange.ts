/**
 * The stack exchange: the servers of this process attached to one broker, the
 * channels they need (reference-counted, resubscribed after the broker comes
 * back), what arrives from other instances and whom it goes to, the broker's
 * status and liveness, the rooms' shared history, and attach/detach. Sending is in
 * publisher.ts, requests to other instances in requests.ts, the binary envelope in
 * envelope.ts.
 *
 * Over 450 lines on purpose: subscriptions, the status and the receiving side read
 * and change one connection state (up, restoring, the channels the broker
 * confirmed); one closure keeps that state private and every change to it in one
 * place.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
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
import { brokerUp, failures } from "./metrics.js"
import { Publisher } from "./publisher.js"
import { callerTrace, Requests } from "./requests.js"
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

const unavailable = new Error("the broker is unavailable")
const detached = new Error("the server detached from the stack exchange")

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

    // sending: publisher.ts; what one event-loop turn publishes leaves as one batch
    const publisher = new Publisher(
      { maxPendingPublishes, maxPendingBytes },
      {
        get closed() {
          return nodeClosed
        },
        get connected() {
          return connected
        },
        get downCause() {
          return lastDown?.cause ?? unavailable
        },
        publish: (batch) => transport.publish(batch),
        run: (effect) => void run(effect)
      }
    )
    const post = publisher.post.bind(publisher)
    const confirmed = publisher.confirmed.bind(publisher)
    const drained = publisher.drained

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
          requests.ack(received.correlation, received.count)
          return
        case "Result":
          requests.result(received.correlation, received.outcome)
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
      requests.failAll(error)
      const unconfirmed = new Errors.StackExchangeError({ operation: "publish", reason: "Down", cause: error.cause })
      publisher.failConfirming(unconfirmed)
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
        requests.failAll(error)
        publisher.failConfirming(error)
      })
    )
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Queue.take(wake), pass)))
    if (Duration.isFinite(brokerTimeout) && Duration.toMillis(brokerTimeout) > 0) {
      yield* Effect.forkScoped(heartbeat(transport))
    }

    // -------------------------------------------------------------------------
    // requests
    // -------------------------------------------------------------------------

    const requests = new Requests(publisher, names, requestTimeout)
    const gather = requests.gather.bind(requests)
    const ask = requests.ask.bind(requests)

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
