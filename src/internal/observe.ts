/**
 * Observability below the connection core: the package's Effect metrics, one
 * `Observer` per server or client that counts and times what its connections do,
 * the tracer it reports spans to (none when only Effect's default tracer is
 * there), and the trace context a client can put in a message's `wait` token.
 *
 * Cost: the hot paths do plain arithmetic. Messages and bytes are added to
 * per-namespace numbers and handed to the Effect counters once a second (and
 * whenever `/metrics` or the dashboard reads them); histograms are updated per
 * handler run and per ask through a cached label set; the fan-out path counts once
 * per broadcast, never per receiver. Without a tracer no span is made at all.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type * as Message from "../Message.js"
import * as msg from "./message.js"

// -----------------------------------------------------------------------------
// metrics
// -----------------------------------------------------------------------------

/** Seconds, from 100 µs to 30 s: handler runs and asks. @internal */
export const durationBoundaries: ReadonlyArray<number> = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30
]

const seconds = MetricBoundaries.fromIterable(durationBoundaries)

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** @internal */
export const connections = Metric.gauge("effect_neffos_connections", {
  description: "open connections (the handshake completed), every server of the process"
})

/** @internal */
export const namespaceConnections = Metric.gauge("effect_neffos_namespace_connections", {
  description: "connections connected to a namespace"
})

/** @internal */
export const handshakes = counter(
  "effect_neffos_handshakes",
  "handshakes by outcome: accepted, refused (onConnect failed), timeout, failed (closed or protocol error before A<id>)"
)

/** @internal */
export const disconnects = counter("effect_neffos_disconnects", "closed connections, by close code")

/** @internal */
export const messagesReceived = counter(
  "effect_neffos_messages_received",
  "messages the server's connections read, by namespace"
)

/** @internal */
export const bytesReceived = counter(
  "effect_neffos_received_bytes",
  "bytes of the messages the server's connections read, by namespace (text counted in characters)"
)

/** @internal */
export const messagesSent = counter(
  "effect_neffos_messages_sent",
  "messages the server sent, by namespace: a broadcast counts once per receiver"
)

/** @internal */
export const bytesSent = counter(
  "effect_neffos_sent_bytes",
  "bytes of the messages the server sent, by namespace (text counted in characters)"
)

/** @internal */
export const handlerDuration = Metric.histogram(
  "effect_neffos_handler_duration_seconds",
  seconds,
  "how long a server handler ran, by namespace and outcome (ok, error, defect, interrupted)"
)

/** @internal */
export const askDuration = Metric.histogram(
  "effect_neffos_ask_duration_seconds",
  seconds,
  "server asks to a client until the reply, by namespace and outcome (ok, error, timeout, closed)"
)

/** @internal */
export const droppedFrames = counter(
  "effect_neffos_outbox_dropped_frames",
  "frames dropped by outbox overflow policies, by policy (sliding, dropping, disconnect)"
)

/** @internal */
export const outboxHighWater = Metric.gauge("effect_neffos_outbox_high_water_frames", {
  description: "the largest outbox among the server's connections, in frames, sampled every second"
})

/** @internal */
export const strictWaits = counter(
  "effect_neffos_strict_waits",
  "receivers a strict broadcast had to wait for (their outbox was full)"
)

/** @internal */
export const slowConsumerDisconnects = counter(
  "effect_neffos_slow_consumer_disconnects",
  "connections closed as slow consumers (disconnect policy, or strict writeTimeout)"
)

/** @internal */
export const brokerUp = Metric.gauge("effect_neffos_stack_exchange_up", {
  description: "1 while the stack exchange's broker is up, 0 while it is down"
})

/** @internal */
export const failures = counter(
  "effect_neffos_stack_exchange_failures",
  "stack exchange operations that failed because of the broker (publish, request, subscribe, connection)"
)

/** @internal */
export const droppedPublishes = counter(
  "effect_neffos_stack_exchange_dropped_publishes",
  "publishes dropped because too many were waiting for the broker (maxPendingPublishes, maxPendingBytes)"
)

/** @internal */
export const publishFailures = counter(
  "effect_neffos_stack_exchange_publish_failures",
  "publishes to the broker that failed (broker down, or the batch was refused)"
)

/** @internal */
export const clientAskDuration = Metric.histogram(
  "effect_neffos_client_ask_duration_seconds",
  seconds,
  "client asks to the server until the reply, by namespace and outcome (ok, error, timeout, closed)"
)

/** @internal */
export const clientReconnects = counter(
  "effect_neffos_client_reconnects",
  "client reconnects by outcome: ok, or gave_up (the schedule ended)"
)

/** @internal */
export const clientReconnectAttempts = counter(
  "effect_neffos_client_reconnect_attempts",
  "client reconnect attempts"
)

const labelCache = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/** One label as a stable array (Effect caches a metric's hook per label array). @internal */
export const label = (key: string, value: string): ReadonlyArray<MetricLabel.MetricLabel> => {
  const id = key + "\u0000" + value
  let labels = labelCache.get(id)
  if (labels === undefined) {
    labels = [MetricLabel.make(key, value)]
    labelCache.set(id, labels)
  }
  return labels
}

/** The label value of messages of a namespace the server does not declare (bounded cardinality). @internal */
export const undeclared = "(undeclared)"

// -----------------------------------------------------------------------------
// outcomes
// -----------------------------------------------------------------------------

/** @internal */
export type HandlerOutcome = "ok" | "error" | "defect" | "interrupted"

/** @internal */
export const handlerOutcome = (exit: Exit.Exit<unknown, unknown>): HandlerOutcome => {
  if (Exit.isSuccess(exit)) return "ok"
  if (Option.isSome(Cause.failureOption(exit.cause))) return "error"
  if (Option.isSome(Cause.dieOption(exit.cause))) return "defect"
  return "interrupted"
}

/** @internal */
export type AskOutcome = "ok" | "error" | "timeout" | "closed"

const askOutcome = (exit: Exit.Exit<unknown, unknown>): AskOutcome => {
  if (Exit.isSuccess(exit)) return "ok"
  const failure = Option.getOrUndefined(Cause.failureOption(exit.cause)) as { readonly _tag?: unknown } | undefined
  if (failure?._tag === "AskTimeout") return "timeout"
  if (failure?._tag === "ConnectionClosed" || failure?._tag === "Reconnecting") return "closed"
  return "error"
}

// -----------------------------------------------------------------------------
// the tracer
// -----------------------------------------------------------------------------

let defaultTracer: Tracer.Tracer | undefined

/**
 * The tracer of the current fiber, or undefined when it is Effect's default one
 * (nobody installed a tracer: its spans would go nowhere) or tracing is disabled
 * (`Effect.withTracerEnabled(false)`).
 *
 * @internal
 */
export const installedTracer: Effect.Effect<Tracer.Tracer | undefined> = Effect.flatMap(
  FiberRef.get(FiberRef.currentTracerEnabled),
  (enabled) =>
    enabled
      ? Effect.map(Effect.tracer, (tracer) =>
        tracer === (defaultTracer ??= Effect.runSync(Effect.tracer)) ? undefined : tracer)
      : Effect.succeed(undefined)
)

/** A span made and ended outside a fiber (the reader's fast path, a broker callback). @internal */
export const startSpan = (
  tracer: Tracer.Tracer,
  clock: Clock.Clock,
  name: string,
  parent: Tracer.AnySpan | undefined,
  kind: Tracer.SpanKind,
  attributes: Record<string, unknown>
): Tracer.Span => {
  const span = tracer.span(
    name,
    parent === undefined ? Option.none() : Option.some(parent),
    Context.empty(),
    [],
    clock.unsafeCurrentTimeNanos(),
    kind
  )
  for (const key in attributes) span.attribute(key, attributes[key])
  return span
}

// -----------------------------------------------------------------------------
// trace context in a message's wait token (our client to our server, opt-in)
// -----------------------------------------------------------------------------

/** The mark of trace context in a wait token: an emit's token starts with it, an ask's token ends with it. */
const TRACE_MARK = "~"
const TRACE_MARK_CODE = 126
const validId = /^[0-9A-Za-z]{1,64}$/

/** `~00-<traceId>-<spanId>-<flags>` (the W3C traceparent), or "" when the span's ids do not fit. @internal */
export const traceToken = (span: Tracer.AnySpan): string =>
  validId.test(span.traceId) && validId.test(span.spanId)
    ? `${TRACE_MARK}00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
    : ""

/** The span a token's trace context names, if it carries a valid one. @internal */
export const parseTraceToken = (wait: string): Tracer.ExternalSpan | undefined => {
  const at = wait.indexOf(TRACE_MARK)
  if (at === -1) return undefined
  const parts = wait.slice(at + 1).split("-")
  if (parts.length !== 4 || parts[0] !== "00" || !validId.test(parts[1]) || !validId.test(parts[2])) return undefined
  return Tracer.externalSpan({ traceId: parts[1], spanId: parts[2], sampled: parts[3] === "01" })
}

/** Whether a token a server received is an emit carrying trace context (`~...`), not a reply. @internal */
export const isTracedEmit = (wait: string): boolean => wait.charCodeAt(0) === TRACE_MARK_CODE

const emitParents = new WeakMap<Message.Message, Tracer.ExternalSpan>()

/** The emit without its trace token; its trace context is kept for its handler's span. @internal */
export const untraceEmit = (m: Message.Message): Message.Message => {
  const plain = msg.unsafeMake(m.namespace, m.room, m.event, m.body, m.error, m.binary, "", m.isNoOp, m.native)
  const parent = parseTraceToken(m.wait)
  if (parent !== undefined) emitParents.set(plain, parent)
  return plain
}

/** The span a peer sent with the message (an ask's token, or a traced emit's). @internal */
export const parentOf = (m: Message.Message): Tracer.ExternalSpan | undefined =>
  m.wait.length > 0 ? parseTraceToken(m.wait) : emitParents.get(m)

// -----------------------------------------------------------------------------
// the observer of a server or a client
// -----------------------------------------------------------------------------

/** What a handler span names its connection by. @internal */
export interface Observed {
  readonly id: string
}

interface NamespaceStats {
  readonly labels: ReadonlyArray<MetricLabel.MetricLabel>
  readonly handlerLabels: Record<HandlerOutcome, ReadonlyArray<MetricLabel.MetricLabel>>
  readonly askLabels: Record<AskOutcome, ReadonlyArray<MetricLabel.MetricLabel>>
  /** since the last flush */
  received: number
  receivedBytes: number
  sent: number
  sentBytes: number
}

const withOutcomes = <K extends string>(
  namespace: string,
  outcomes: ReadonlyArray<K>
): Record<K, ReadonlyArray<MetricLabel.MetricLabel>> => {
  const out = {} as Record<K, ReadonlyArray<MetricLabel.MetricLabel>>
  for (const outcome of outcomes) {
    out[outcome] = [MetricLabel.make("namespace", namespace), MetricLabel.make("outcome", outcome)]
  }
  return out
}

const handlerOutcomes: ReadonlyArray<HandlerOutcome> = ["ok", "error", "defect", "interrupted"]
const askOutcomes: ReadonlyArray<AskOutcome> = ["ok", "error", "timeout", "closed"]

const namespaceStats = (namespace: string): NamespaceStats => ({
  labels: [MetricLabel.make("namespace", namespace)],
  handlerLabels: withOutcomes(namespace, handlerOutcomes),
  askLabels: withOutcomes(namespace, askOutcomes),
  received: 0,
  receivedBytes: 0,
  sent: 0,
  sentBytes: 0
})

/** Cumulative counts per bucket of `durationBoundaries` (the last one: above them all). @internal */
export class Buckets {
  readonly counts = new Array<number>(durationBoundaries.length + 1).fill(0)
  total = 0
  add(value: number): void {
    let i = 0
    while (i < durationBoundaries.length && value > durationBoundaries[i]) i++
    this.counts[i]++
    this.total++
  }
}

/** @internal */
export interface ObserverOptions {
  readonly side: "server" | "client"
  /** per-message counters and the histograms */
  readonly metrics: boolean
  /** spans go here; undefined: none */
  readonly tracer: Tracer.Tracer | undefined
  readonly clock: Clock.Clock
  /** the namespaces the side declares: the label values messages may have */
  readonly namespaces: Iterable<string>
  /** server side: the instance, an attribute of every span */
  readonly instanceId?: string | undefined
  /** client side: put the caller's span in the wait token of emits and asks */
  readonly propagate?: boolean | undefined
}

/** @internal */
export const frameLength = (frame: string | Uint8Array | { readonly text: string }): number =>
  typeof frame === "string" ? frame.length : frame instanceof Uint8Array ? frame.byteLength : frame.text.length

/**
 * What a server (or a client) counts, times and traces. A connection's config
 * holds it only when there is something to do (metrics on, or a tracer), so a
 * server with neither runs the code it runs without observability.
 *
 * @internal
 */
export class Observer {
  readonly side: "server" | "client"
  readonly metrics: boolean
  readonly tracer: Tracer.Tracer | undefined
  readonly clock: Clock.Clock
  readonly instanceId: string | undefined
  readonly propagate: boolean
  private readonly stats = new Map<string, NamespaceStats>()
  private readonly other: NamespaceStats
  /** totals since the start, for the dashboard */
  received = 0
  receivedBytes = 0
  sent = 0
  sentBytes = 0
  dropped = 0
  slowConsumers = 0
  strictWaits = 0
  accepted = 0
  readonly handlerTimes = new Buckets()
  readonly askTimes = new Buckets()
  /** undefined: no stack exchange */
  brokerUp: boolean | undefined = undefined

  constructor(options: ObserverOptions) {
    this.side = options.side
    this.metrics = options.metrics
    this.tracer = options.tracer
    this.clock = options.clock
    this.instanceId = options.instanceId
    this.propagate = options.propagate ?? false
    for (const namespace of options.namespaces) this.stats.set(namespace, namespaceStats(namespace))
    this.other = namespaceStats(undeclared)
  }

  /** Whether connections need it at all. */
  get active(): boolean {
    return this.metrics || this.tracer !== undefined || this.propagate
  }

  private statsOf(namespace: string): NamespaceStats {
    return this.stats.get(namespace) ?? this.other
  }

  // ---------------------------------------------------------------------------
  // messages
  // ---------------------------------------------------------------------------

  /** A connection read a message (server side). */
  onReceived(namespace: string, bytes: number): void {
    if (!this.metrics || this.side !== "server") return
    const s = this.statsOf(namespace)
    s.received++
    s.receivedBytes += bytes
  }

  /** Messages went out: one to one connection, or a broadcast's `count` receivers. */
  onSent(namespace: string, count: number, bytes: number): void {
    if (!this.metrics || this.side !== "server" || count === 0) return
    const s = this.statsOf(namespace)
    s.sent += count
    s.sentBytes += bytes
  }

  /** A strict broadcast waited for `receivers` full outboxes. */
  onStrictWaits(receivers: number): void {
    this.strictWaits += receivers
    strictWaits.unsafeUpdate(receivers, [])
  }

  /** A connection's outbox dropped a frame by its policy. */
  onDropped(policy: string): void {
    this.dropped++
    droppedFrames.unsafeUpdate(1, label("policy", policy))
  }

  /** Hands what was counted since the last flush to the Effect counters. */
  flush(): void {
    this.flushOne(this.other)
    for (const s of this.stats.values()) this.flushOne(s)
  }

  private flushOne(s: NamespaceStats): void {
    if (s.received > 0) {
      messagesReceived.unsafeUpdate(s.received, s.labels)
      bytesReceived.unsafeUpdate(s.receivedBytes, s.labels)
      this.received += s.received
      this.receivedBytes += s.receivedBytes
      s.received = s.receivedBytes = 0
    }
    if (s.sent > 0) {
      messagesSent.unsafeUpdate(s.sent, s.labels)
      bytesSent.unsafeUpdate(s.sentBytes, s.labels)
      this.sent += s.sent
      this.sentBytes += s.sentBytes
      s.sent = s.sentBytes = 0
    }
  }

  // ---------------------------------------------------------------------------
  // handler runs
  // ---------------------------------------------------------------------------

  private handled(namespace: string, outcome: HandlerOutcome, ms: number): void {
    if (!this.metrics) return
    const value = ms / 1000
    if (this.side === "server") handlerDuration.unsafeUpdate(value, this.statsOf(namespace).handlerLabels[outcome])
    this.handlerTimes.add(value)
  }

  private handlerAttributes(conn: Observed, m: Message.Message): Record<string, unknown> {
    const attributes: Record<string, unknown> = {
      "neffos.namespace": m.namespace,
      "neffos.room": m.room,
      "neffos.event": m.event,
      "neffos.connection_id": conn.id
    }
    if (this.instanceId !== undefined) attributes["neffos.instance_id"] = this.instanceId
    return attributes
  }

  /**
   * Runs a handler's Effect (started at `started`, `performance.now()`) and its
   * answer, timed, and in a span `effect-neffos.handle <namespace>.<event>` when
   * there is a tracer: a root, or the child of the span the peer sent.
   */
  handler<R>(
    conn: Observed,
    m: Message.Message,
    started: number,
    effect: Effect.Effect<R, unknown>,
    answer: (exit: Exit.Exit<R, unknown>) => Effect.Effect<void>
  ): Effect.Effect<void> {
    const tracer = this.tracer
    const outcomeOf = (exit: Exit.Exit<R, unknown>) => {
      const outcome = handlerOutcome(exit)
      this.handled(m.namespace, outcome, performance.now() - started)
      return outcome
    }
    if (tracer === undefined) {
      return Effect.flatMap(Effect.exit(effect), (exit) => {
        outcomeOf(exit)
        return answer(exit)
      })
    }
    // the span ends with the handler's own outcome (a failure is an error status), its answer and log inside it
    const traced = Effect.flatMap(
      Effect.exit(effect),
      (exit) =>
        Effect.annotateCurrentSpan("neffos.outcome", outcomeOf(exit)).pipe(
          Effect.zipRight(answer(exit)),
          Effect.zipRight(exit)
        )
    )
    const parent = parentOf(m)
    return Effect.withSpan(traced, `effect-neffos.handle ${m.namespace}.${m.event}`, {
      kind: m.wait.length > 0 ? "server" : "consumer",
      attributes: this.handlerAttributes(conn, m),
      captureStackTrace: false,
      ...(parent === undefined ? { root: true } : { parent })
    }).pipe(Effect.exit, Effect.asVoid)
  }

  /**
   * A handler that completed when it was called (the reader's fast path): timed,
   * and a span made and ended now, returned so that the failure's log can name it.
   */
  handledNow(
    conn: Observed,
    m: Message.Message,
    started: number,
    exit: Exit.Exit<unknown, unknown>
  ): Tracer.Span | undefined {
    const outcome = handlerOutcome(exit)
    this.handled(m.namespace, outcome, performance.now() - started)
    const tracer = this.tracer
    if (tracer === undefined) return undefined
    const span = startSpan(
      tracer,
      this.clock,
      `effect-neffos.handle ${m.namespace}.${m.event}`,
      parentOf(m),
      m.wait.length > 0 ? "server" : "consumer",
      this.handlerAttributes(conn, m)
    )
    span.attribute("neffos.outcome", outcome)
    span.end(this.clock.unsafeCurrentTimeNanos(), exit)
    return span
  }

  // ---------------------------------------------------------------------------
  // asks
  // ---------------------------------------------------------------------------

  /**
   * An ask of this side to its peer: `send` writes the request with `suffix` after
   * its token and waits for the reply. Timed; in a span `effect-neffos.ask
   * <namespace>.<event>` when there is a tracer; a client that propagates puts the
   * span (or its caller's) in the token.
   */
  ask<A, E>(
    conn: Observed,
    namespace: string,
    room: string,
    event: string,
    send: (suffix: string) => Effect.Effect<A, E>
  ): Effect.Effect<A, E> {
    const timed = (suffix: string) =>
      Effect.suspend(() => {
        const started = performance.now()
        return Effect.onExit(send(suffix), (exit) =>
          Effect.sync(() => {
            if (!this.metrics) return
            const value = (performance.now() - started) / 1000
            const labels = this.statsOf(namespace).askLabels[askOutcome(exit)]
            if (this.side === "server") askDuration.unsafeUpdate(value, labels)
            else clientAskDuration.unsafeUpdate(value, labels)
            this.askTimes.add(value)
          }))
      })
    const propagated = this.propagate
      ? Effect.flatMap(
        Effect.serviceOption(Tracer.ParentSpan),
        (span) => timed(Option.isSome(span) ? traceToken(span.value) : "")
      )
      : timed("")
    if (this.tracer === undefined) return propagated
    const attributes: Record<string, unknown> = {
      "neffos.namespace": namespace,
      "neffos.room": room,
      "neffos.event": event,
      "neffos.connection_id": conn.id
    }
    if (this.instanceId !== undefined) attributes["neffos.instance_id"] = this.instanceId
    return Effect.withSpan(propagated, `effect-neffos.ask ${namespace}.${event}`, {
      kind: "client",
      attributes,
      captureStackTrace: false
    })
  }

  /** A client's emit: the trace token of its caller's span, when it propagates ("" otherwise). */
  get emitToken(): Effect.Effect<string> {
    return this.propagate
      ? Effect.map(Effect.serviceOption(Tracer.ParentSpan), (span) => Option.isSome(span) ? traceToken(span.value) : "")
      : Effect.succeed("")
  }
}

/**
 * Every server observer alive, so that whoever reads the metrics can flush what
 * they counted first.
 *
 * @internal
 */
export const live = new Set<Observer>()

/** @internal */
export const flushAll = (): void => {
  for (const observer of live) observer.flush()
}

/** The observer of a side, built with the tracer of the current fiber. @internal */
export const make = (
  options: Omit<ObserverOptions, "tracer" | "clock">
): Effect.Effect<Observer> =>
  Effect.map(
    Effect.all([installedTracer, Effect.clock]),
    ([tracer, clock]) => new Observer({ ...options, tracer, clock })
  )
