/**
 * The `Observer` of a server or a client: it counts, times and traces what the
 * connections do. Cost: the hot paths do plain arithmetic. Messages and bytes are
 * added to per-namespace numbers and handed to the Effect counters once a second
 * (and whenever `/metrics` or the dashboard reads them); histograms are updated per
 * handler run and per ask through a cached label set; the fan-out path counts once
 * per broadcast, never per receiver. Without a tracer no span is made at all.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type * as Message from "../Message.js"
import {
  askDuration,
  bytesReceived,
  bytesSent,
  clientAskDuration,
  droppedFrames,
  durationBoundaries,
  handlerDuration,
  label,
  messagesReceived,
  messagesSent,
  strictWaits,
  undeclared
} from "./metrics.js"
import { installedTracer, parentOf, startSpan, traceToken } from "./trace.js"

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
