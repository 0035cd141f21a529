/**
 * What a failed handler sends its peer: the error text, safe by default (no stack,
 * no parse tree, no cause), or whatever the application's `errorText` maps it to.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import type * as Runtime from "effect/Runtime"
import type * as Events from "../Events.js"

/**
 * The failure of a cause, or undefined when it was only interrupted.
 *
 * @internal
 */
export const failureOf = (cause: Cause.Cause<unknown>): Events.HandlerFailure | undefined => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return { _tag: "Fail", error: failure.value }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) return { _tag: "Die", defect: defect.value }
  return undefined
}

const isTagged = (u: unknown): u is { readonly _tag: string; readonly message?: unknown } =>
  typeof u === "object" && u !== null && typeof (u as { _tag?: unknown })._tag === "string"

/**
 * The default error text: a defect is `internal error`, a Schema `ParseError` is
 * `bad request`, a tagged error its `message` (or its `_tag`), a string itself,
 * anything else `error`.
 *
 * @internal
 */
export const defaultErrorText = (failure: Events.HandlerFailure): string => {
  if (failure._tag === "Die") return "internal error"
  const error = failure.error
  if (typeof error === "string") return error.length > 0 ? error : "error"
  if (ParseResult.isParseError(error)) return "bad request"
  if (isTagged(error)) {
    return typeof error.message === "string" && error.message.length > 0 ? error.message : error._tag
  }
  return "error"
}

/**
 * The text for a failed handler, and the log line that goes with it: a defect at
 * error level, an expected failure at debug level, both with the connection, the
 * namespace, the room and the event.
 *
 * @internal
 */
export const describe = (
  failure: Events.HandlerFailure,
  context: Events.FailureContext,
  errorText: ((failure: Events.HandlerFailure, context: Events.FailureContext) => string) | undefined
): { readonly text: string; readonly log: Effect.Effect<void> } => {
  let text: string
  try {
    text = errorText === undefined ? defaultErrorText(failure) : errorText(failure, context)
  } catch {
    text = defaultErrorText(failure)
  }
  const log = failure._tag === "Die"
    ? Effect.logError("effect-neffos: a handler died", Cause.die(failure.defect))
    : Effect.logDebug("effect-neffos: a handler failed", Cause.fail(failure.error))
  return {
    text,
    log: log.pipe(
      Effect.annotateLogs({
        connection: context.connectionId,
        namespace: context.namespace,
        room: context.room,
        event: context.event
      })
    )
  }
}

/**
 * Whether a runtime logs at debug level (expected failures are logged there).
 *
 * @internal
 */
export const logsDebug = (runtime: Runtime.Runtime<never>): boolean =>
  LogLevel.lessThanEqual(
    FiberRefs.getOrDefault(runtime.fiberRefs, FiberRef.currentMinimumLogLevel),
    LogLevel.Debug
  )
