/**
 * What a connection does with a message that is not a reply: handlers of one
 * connection run one at a time, in arrival order, on a dispatcher fiber that
 * exists while there is something to run. A user event whose handler returns an
 * already completed Effect is answered in the reader, with no fiber. System events
 * go to namespace.ts and room.ts. `protocol` hands all of it to the connection core.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Message from "../Message.js"
import type * as Reply from "../Reply.js"
import { Phase, type Protocol, type Task } from "./connConfig.js"
import { Fifo } from "./fifo.js"
import { answer, complete, run } from "./handler.js"
import type { AnyConn, NSConnImpl } from "./handles.js"
import * as namespace from "./namespace.js"
import * as room from "./room.js"

const {
  OnNamespaceConnect,
  OnNamespaceConnected,
  OnNamespaceDisconnect,
  OnNativeMessage,
  OnRoomJoin,
  OnRoomJoined,
  OnRoomLeave,
  OnRoomLeft
} = Message

/** A message that is not a reply: answered now when it can be, otherwise queued for the dispatcher. */
const receive = (conn: AnyConn, m: Message.Message): void => {
  if (
    conn.phase === Phase.Open && !conn.dispatching && (conn.inbound === undefined || conn.inbound.length === 0) &&
    !conn.outbox.isHalfFull && handleNow(conn, m)
  ) return
  enqueue(conn, m)
}

const enqueue = (conn: AnyConn, task: Task): void => {
  if (conn.phase === Phase.Closed) return
  const inbound = conn.inbound ??= new Fifo()
  inbound.push(task)
  if (conn.phase === Phase.Open && !conn.dispatching) startDispatcher(conn)
  if (!conn.paused && inbound.length >= conn.config.inboundCapacity) {
    conn.paused = true
    conn.socket.pause()
  }
}

/** Starts the dispatcher of a connection whose messages wait (a server's, once it wrote A<id>). @internal */
export const startDispatcher = (conn: AnyConn): void => {
  if (conn.dispatching || conn.inbound === undefined || conn.inbound.length === 0) return
  conn.dispatching = true
  // the fiber may run to completion inside fork: only keep it while it is still draining
  const fiber = conn.config.fork(drain(conn))
  if (conn.dispatching && conn.dispatcher === undefined) conn.dispatcher = fiber
}

const take = (conn: AnyConn): Task | undefined => {
  const inbound = conn.inbound
  const task = inbound?.shift()
  if (conn.paused && inbound !== undefined && inbound.length <= conn.config.inboundCapacity >> 1) {
    conn.paused = false
    conn.socket.resume()
  }
  return task
}

const drain = (conn: AnyConn): Effect.Effect<void> => {
  const loop: Effect.Effect<void> = Effect.suspend(() => {
    const task = take(conn)
    if (task === undefined) {
      conn.dispatching = false
      conn.dispatcher = undefined
      return Effect.void
    }
    const next = Effect.isEffect(task) ? task : handleIncoming(conn, task)
    // a peer that asks faster than it reads the replies waits here (and then its socket is
    // paused by the inbound bound) instead of losing replies to its own outbox's policy
    return Effect.zipRight(conn.outbox.isHalfFull ? Effect.zipRight(conn.written, next) : next, loop)
  })
  return loop
}

const handleIncoming = (conn: AnyConn, m: Message.Message): Effect.Effect<void> => {
  if (m.native) return handleNative(conn, m)
  switch (m.event) {
    case OnNamespaceConnect:
      return m.isNoOp ? Effect.void : namespace.handleConnectRequest(conn, m)
    case OnNamespaceDisconnect:
      return m.isNoOp ? Effect.void : namespace.handleDisconnectRequest(conn, m)
    case OnRoomJoin:
      return m.isNoOp ? Effect.void : room.handleJoinRequest(conn, m)
    case OnRoomLeave:
      return m.isNoOp ? Effect.void : room.handleLeaveRequest(conn, m)
    case OnRoomLeft:
      // neffos.js's leaveAll asks with _OnRoomLeft instead of _OnRoomLeave: take it as the leave it means
      return conn.config.side === "server" && m.wait.length > 0 && !m.isNoOp
        ? room.handleLeaveRequest(conn, m)
        : Effect.void
    case OnNamespaceConnected:
    case OnRoomJoined:
      // local-only events: a peer cannot make our handlers believe they happened
      return Effect.void
    default: {
      const ns = eventTarget(conn, m)
      return ns === undefined ? Effect.void : run(conn.handlerFor(m.namespace, m.event)!, ns, m)
    }
  }
}

const handleNative = (conn: AnyConn, m: Message.Message): Effect.Effect<void> => {
  const ns = conn.nsMap.get("")
  const handler = conn.config.events.get("")?.get(OnNativeMessage)
  if (ns === undefined || handler === undefined) return Effect.void
  return run(handler, ns, m)
}

/**
 * The namespace of a user event with a handler; otherwise the event is answered
 * (or dropped) here and the result is undefined.
 */
const eventTarget = (conn: AnyConn, m: Message.Message): NSConnImpl<any, any> | undefined => {
  const isAsk = m.wait.length > 0
  const ns = conn.nsMap.get(m.namespace)
  if (ns === undefined) {
    // unlike Go neffos, an ask on a namespace the connection never connected gets an answer
    if (isAsk) conn.writeError(m, "bad namespace")
    return undefined
  }
  if (m.room.length > 0 && !ns.roomMap.has(m.room)) {
    if (isAsk) conn.writeError(m, "bad room")
    return undefined
  }
  if (conn.handlerFor(m.namespace, m.event) === undefined) {
    if (isAsk && conn.config.answerUnrepliedAsks) conn.writeError(m, "unknown event")
    if (conn.config.logsDebug) {
      conn.config.fork(
        Effect.logDebug(`effect-neffos: no handler for event ${JSON.stringify(m.event)}`).pipe(
          Effect.annotateLogs({ connection: conn.id, namespace: m.namespace, room: m.room, event: m.event })
        )
      )
    }
    return undefined
  }
  return ns
}

/**
 * The reader's fast path, when nothing else is waiting to be handled: a user event
 * whose handler returns an already completed Effect (`Effect.succeed`, `Effect.fail`,
 * ...) is answered at once, with no fiber. Anything else goes to the dispatcher as
 * usual. Returns false when the message was not taken.
 */
const handleNow = (conn: AnyConn, m: Message.Message): boolean => {
  if (m.native) return false
  if (m.event.charCodeAt(0) === 95 /* "_": system events */) {
    if (m.event !== OnNamespaceConnect || !namespace.connectNow(conn, m)) return false
    conn.outbox.flushDirty()
    return true
  }
  const ns = eventTarget(conn, m)
  if (ns !== undefined) {
    const observe = conn.config.observe
    const started = observe === undefined ? 0 : performance.now()
    let effect: Effect.Effect<void | Reply.Reply, unknown>
    try {
      effect = conn.handlerFor(m.namespace, m.event)!(ns, m) as Effect.Effect<void | Reply.Reply, unknown>
    } catch (defect) {
      effect = Effect.die(defect)
    }
    if (Exit.isExit(effect)) {
      const exit = effect as Exit.Exit<void | Reply.Reply, unknown>
      const span = observe === undefined ? undefined : observe.handledNow(conn, m, started, exit)
      const after = answer(conn, m, exit)
      if (after !== Effect.void) conn.config.fork(span === undefined ? after : Effect.withParentSpan(after, span))
    } else {
      enqueue(conn, complete(conn, m, effect, started))
      return true
    }
  }
  conn.outbox.flushDirty()
  return true
}

/** The protocol every connection runs, either side. @internal */
export const protocol: Protocol = {
  receive,
  closeNamespaces: namespace.closeNamespaces,
  closeNamespacesNow: namespace.closeNamespacesNow,
  connect: namespace.connect,
  disconnect: namespace.disconnect,
  joinRoom: room.joinRoom,
  leaveRoom: room.leaveRoom
}
