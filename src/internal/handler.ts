/**
 * Running handlers: user events (their outcome answered on the wire) and lifecycle
 * events (their failure is a veto's text).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Message from "../Message.js"
import * as Reply from "../Reply.js"
import type { AnyHandler } from "./connConfig.js"
import { failureOf } from "./failure.js"
import type { AnyConn, NSConnImpl } from "./handles.js"
import * as msg from "./message.js"
import { frameLength } from "./observe.js"
import type { Frame } from "./outbox.js"

/** A handler's requirements are provided by the runtime its connection runs on. @internal */
export const invoke = (handler: AnyHandler, ns: NSConnImpl<any, any>, message: Message.Message) =>
  Effect.suspend(() => handler(ns, message)) as Effect.Effect<void | Reply.Reply, unknown>

/** A lifecycle event's message (`isLocal`: this side started it; `isForced`: a close forced it). @internal */
export const lifecycle = (
  namespace: string,
  room: string,
  event: string,
  isLocal: boolean,
  isForced: boolean
): Message.Message => msg.unsafeMake(namespace, room, event, "", undefined, false, "", false, false, isLocal, isForced)

/** Runs a lifecycle handler; its failure is the veto text. @internal */
export const fire = (ns: NSConnImpl<any, any>, message: Message.Message): Effect.Effect<string | undefined> => {
  const conn: AnyConn = ns.conn
  const handler = conn.handlerFor(ns.namespace, message.event)
  if (handler === undefined) return Effect.succeed(undefined)
  return Effect.matchCauseEffect(invoke(handler, ns, message), {
    onSuccess: () => Effect.succeed(undefined),
    onFailure: (cause) => {
      const failure = failureOf(cause)
      if (failure === undefined) return Effect.succeed("interrupted")
      const { log, text } = conn.describeFailure(failure, ns.namespace, message.room, message.event)
      return Effect.as(log, text)
    }
  })
}

/** Runs a user handler and answers its outcome. @internal */
export const run = (handler: AnyHandler, ns: NSConnImpl<any, any>, m: Message.Message): Effect.Effect<void> => {
  if (ns.conn.config.observe === undefined) {
    return invoke(handler, ns, m).pipe(
      Effect.exit,
      Effect.flatMap((exit) => answer(ns.conn, m, exit))
    )
  }
  return Effect.suspend(() => complete(ns.conn, m, invoke(handler, ns, m), performance.now()))
}

/**
 * Runs what a handler returned and answers its outcome; timed and traced when the
 * connection is observed. `started` is when the handler was called (`performance.now()`).
 *
 * @internal
 */
export const complete = (
  conn: AnyConn,
  m: Message.Message,
  effect: Effect.Effect<void | Reply.Reply, unknown>,
  started: number
): Effect.Effect<void> => {
  const observe = conn.config.observe
  if (observe === undefined) return Effect.flatMap(Effect.exit(effect), (exit) => answer(conn, m, exit))
  return observe.handler(conn, m, started, effect, (exit) => answer(conn, m, exit))
}

/**
 * Answers what a handler's outcome asks for: its `Reply`, the empty reply of an ask,
 * or the error text of its failure. The result logs the failure.
 *
 * @internal
 */
export const answer = (
  conn: AnyConn,
  m: Message.Message,
  exit: Exit.Exit<void | Reply.Reply, unknown>
): Effect.Effect<void> => {
  if (Exit.isSuccess(exit)) {
    const value = exit.value
    if (Reply.isReply(value)) {
      const frame = encodeReply(m, value.body)
      conn.config.observe?.onSent(m.namespace, 1, frameLength(frame))
      conn.writeExpedited(frame)
    } else if (m.wait.length > 0 && conn.config.answerUnrepliedAsks && !m.native) {
      conn.writeEmptyReply(m.wait)
    }
    return Effect.void
  }
  const failure = failureOf(exit.cause)
  if (failure === undefined) return Effect.void
  const { log, text } = conn.describeFailure(failure, m.namespace, m.room, m.event)
  // never answer an error message with an error: two such handlers would ping-pong forever
  if (m.error === undefined && !m.native) conn.writeError(m, text)
  return log
}

const encodeReply = (m: Message.Message, body: string | Uint8Array): Frame => {
  if (m.native) return body
  return msg.encode(
    msg.unsafeMake(m.namespace, m.room, m.event, body, undefined, typeof body !== "string", m.wait, false, false)
  )
}
