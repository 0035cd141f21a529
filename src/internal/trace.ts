/**
 * Tracing below the connection core: whether a tracer is installed (spans are made
 * only then), spans made and ended outside a fiber, and the trace context a client
 * may put in a message's `wait` token (the W3C traceparent fields after a `~`).
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type * as Message from "../Message.js"
import * as msg from "./message.js"

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
