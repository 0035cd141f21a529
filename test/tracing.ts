/**
 * A tracer that records every span it makes, for the tests of spans.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

export interface Recorded {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  /** the parent's span id, if any */
  readonly parentId: string | undefined
  readonly kind: Tracer.SpanKind
  readonly attributes: ReadonlyMap<string, unknown>
  ended: boolean
  failed: boolean
}

export interface Recorder {
  readonly tracer: Tracer.Tracer
  /** every span made so far, in the order they were started */
  readonly spans: Array<Recorded>
  readonly named: (name: string) => Array<Recorded>
  /** the first ended span that matches, waiting for it (at most 2 s, then a defect naming `what`) */
  readonly ended: (what: string, predicate: (span: Recorded) => boolean) => Effect.Effect<Recorded>
}

export const recorder = (): Recorder => {
  const spans: Array<Recorded> = []
  const watchers = new Set<() => void>()
  let next = 0
  const hex = (n: number, length: number) => n.toString(16).padStart(length, "0")
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const id = ++next
      const attributes = new Map<string, unknown>()
      const recorded: Recorded = {
        name,
        traceId: Option.match(parent, { onNone: () => hex(id, 32), onSome: (p) => p.traceId }),
        spanId: hex(id, 16),
        parentId: Option.match(parent, { onNone: () => undefined, onSome: (p) => p.spanId }),
        kind,
        attributes,
        ended: false,
        failed: false
      }
      spans.push(recorded)
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: recorded.spanId,
        traceId: recorded.traceId,
        parent,
        context: context ?? Context.empty(),
        links,
        sampled: true,
        kind,
        attributes,
        status: { _tag: "Started", startTime },
        attribute: (key, value) => void attributes.set(key, value),
        event: () => {},
        addLinks: () => {},
        end: (_endTime, exit) => {
          recorded.ended = true
          recorded.failed = Exit.isFailure(exit)
          for (const watcher of Array.from(watchers)) watcher()
        }
      }
      return span
    },
    context: (f) => f()
  })
  const ended = (what: string, predicate: (span: Recorded) => boolean) =>
    Effect.async<Recorded>((resume) => {
      const check = () => {
        const found = spans.find((span) => span.ended && predicate(span))
        if (found === undefined) return false
        watchers.delete(watcher)
        resume(Effect.succeed(found))
        return true
      }
      const watcher = () => void check()
      if (check()) return
      watchers.add(watcher)
      return Effect.sync(() => watchers.delete(watcher))
    }).pipe(
      Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error(`no span: ${what}`) }),
      Effect.orDie
    )
  return { tracer, spans, named: (name) => spans.filter((span) => span.name === name), ended }
}
