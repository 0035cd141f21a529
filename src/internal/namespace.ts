/**
 * Namespaces, both directions: the peer's connect and disconnect requests, this
 * side's connects and disconnects (the local veto runs before anything is sent),
 * the forced disconnects of a close, and a client's restore after a reconnect.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type * as Conn from "../Conn.js"
import * as Errors from "../Errors.js"
import * as Message from "../Message.js"
import { Phase } from "./connConfig.js"
import { fire, lifecycle } from "./handler.js"
import { type AnyConn, NSConnImpl } from "./handles.js"
import { leaveAllForced } from "./room.js"

const {
  OnNamespaceConnect,
  OnNamespaceConnected,
  OnNamespaceDisconnect,
  OnRoomJoined,
  OnRoomLeave,
  OnRoomLeft
} = Message

/** The peer asks to connect a namespace. @internal */
export const handleConnectRequest = (conn: AnyConn, m: Message.Message): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (!conn.config.events.has(m.namespace)) {
      conn.writeError(m, "bad namespace")
      return Effect.void
    }
    if (conn.nsMap.has(m.namespace)) {
      conn.writeEmptyReply(m.wait)
      return Effect.void
    }
    const ns = new NSConnImpl(conn, m.namespace)
    return Effect.flatMap(fire(ns, lifecycle(m.namespace, "", OnNamespaceConnect, false, false)), (veto) => {
      if (veto !== undefined) {
        conn.writeError(m, veto)
        return Effect.void
      }
      if (conn.phase === Phase.Closed || conn.nsMap.has(m.namespace)) {
        conn.writeEmptyReply(m.wait)
        return Effect.void
      }
      conn.addNamespace(ns)
      conn.writeEmptyReply(m.wait)
      if (conn.handlerFor(m.namespace, OnNamespaceConnected) === undefined) return Effect.void
      // what _OnNamespaceConnected sends goes out once the peer can take it (see ServerConn.afterConnectReply)
      return Effect.zipRight(
        conn.afterConnectReply,
        Effect.asVoid(fire(ns, lifecycle(m.namespace, "", OnNamespaceConnected, false, false)))
      )
    })
  })

/**
 * The peer's connect request answered at once, in the reader, when no handler could veto it or
 * act on it (neither `_OnNamespaceConnect` nor `_OnNamespaceConnected` has one): what
 * `handleConnectRequest` does then, without a fiber. False when it must run on the dispatcher.
 *
 * @internal
 */
export const connectNow = (conn: AnyConn, m: Message.Message): boolean => {
  if (m.isNoOp) return true
  if (!conn.config.events.has(m.namespace)) {
    conn.writeError(m, "bad namespace")
    return true
  }
  if (!conn.nsMap.has(m.namespace)) {
    if (
      conn.handlerFor(m.namespace, OnNamespaceConnect) !== undefined ||
      conn.handlerFor(m.namespace, OnNamespaceConnected) !== undefined
    ) return false
    conn.addNamespace(new NSConnImpl(conn, m.namespace))
  }
  conn.writeEmptyReply(m.wait)
  return true
}

/** The peer asks to disconnect a namespace (a server may refuse; a client complies). @internal */
export const handleDisconnectRequest = (conn: AnyConn, m: Message.Message): Effect.Effect<void> =>
  Effect.suspend(() => {
    const ns = conn.nsMap.get(m.namespace)
    if (ns === undefined) {
      conn.writeEmptyReply(m.wait)
      return Effect.void
    }
    return Effect.flatMap(fire(ns, lifecycle(m.namespace, "", OnNamespaceDisconnect, false, false)), (veto) => {
      if (veto !== undefined && conn.config.side === "server") {
        conn.writeError(m, veto)
        return Effect.void
      }
      return Effect.map(leaveAllForced(ns), () => {
        conn.removeNamespace(ns)
        conn.writeEmptyReply(m.wait)
      })
    })
  })

/** This side connects a namespace; a second connect of the same namespace waits for the first. @internal */
export const connect = (
  conn: AnyConn,
  namespace: string,
  options: Conn.RequestOptions | undefined,
  gated = true
): Effect.Effect<NSConnImpl<any, any>, Errors.RequestError | Errors.Offline> =>
  Effect.suspend((): Effect.Effect<NSConnImpl<any, any>, Errors.RequestError | Errors.Offline> => {
    const timeout = options?.timeout
    if (conn.phase === Phase.Closed) return Effect.fail(conn.closedError)
    const gate = conn.gate
    if (gated && gate !== undefined) {
      return conn.held(gate, connect(conn, namespace, options, false), namespace, OnNamespaceConnect, timeout)
    }
    if (!conn.config.events.has(namespace)) {
      return Effect.fail(new Errors.BadNamespace({ namespace, reason: "NotDeclared" }))
    }
    const existing = conn.nsMap.get(namespace)
    if (existing !== undefined) return Effect.succeed(existing)
    const connecting = conn.connecting ??= new Map()
    const inflight = connecting.get(namespace)
    if (inflight !== undefined) return Deferred.await(inflight)
    const done = Deferred.unsafeMake<NSConnImpl<any, any>, Errors.RequestError | Errors.Reconnecting>(FiberId.none)
    connecting.set(namespace, done)
    return doConnect(conn, namespace, options).pipe(
      Effect.onExit((exit) =>
        Effect.suspend(() => {
          connecting.delete(namespace)
          return Deferred.done(done, exit)
        })
      )
    )
  })

const doConnect = (
  conn: AnyConn,
  namespace: string,
  options: Conn.RequestOptions | undefined
): Effect.Effect<NSConnImpl<any, any>, Errors.RequestError | Errors.Reconnecting> =>
  Effect.gen(function*() {
    const ns = new NSConnImpl(conn, namespace)
    const veto = yield* fire(ns, lifecycle(namespace, "", OnNamespaceConnect, true, false))
    if (veto !== undefined) {
      return yield* Effect.fail(new Errors.Vetoed({ event: OnNamespaceConnect, namespace, room: "", text: veto }))
    }
    yield* conn.sendRequest(conn.requestMessage(namespace, "", OnNamespaceConnect), options?.timeout, () => {
      if (conn.phase !== Phase.Closed && !conn.nsMap.has(namespace)) conn.addNamespace(ns)
    })
    // the ...ed event of a request this side made runs on the requesting fiber, once committed
    yield* fire(ns, lifecycle(namespace, "", OnNamespaceConnected, true, false))
    return conn.nsMap.get(namespace) ?? ns
  })

/** This side disconnects a namespace: the request, then the forced leaves and the disconnect event. @internal */
export const disconnect = (
  ns: NSConnImpl<any, any>,
  options: Conn.RequestOptions | undefined,
  gated = true
): Effect.Effect<void, Errors.RequestError | Errors.Offline> =>
  Effect.gen(function*() {
    const conn: AnyConn = ns.conn
    const timeout = options?.timeout
    if (conn.phase === Phase.Closed) return yield* Effect.fail(conn.closedError)
    const gate = conn.gate
    if (gated && gate !== undefined) {
      return yield* conn.held(gate, disconnect(ns, options, false), ns.namespace, OnNamespaceDisconnect, timeout)
    }
    if (ns.removed) return
    yield* conn.sendRequest(conn.requestMessage(ns.namespace, "", OnNamespaceDisconnect), timeout)
    yield* leaveAllForced(ns)
    conn.removeNamespace(ns)
    yield* fire(ns, lifecycle(ns.namespace, "", OnNamespaceDisconnect, true, false))
  })

/** After a close: the forced leave and disconnect events of every namespace. @internal */
export const closeNamespaces = (conn: AnyConn): Effect.Effect<void> =>
  Effect.forEach(
    Array.from(conn.nsMap.values()),
    (ns) =>
      Effect.zipRight(
        leaveAllForced(ns),
        Effect.suspend(() => {
          conn.removeNamespace(ns)
          return fire(ns, lifecycle(ns.namespace, "", OnNamespaceDisconnect, true, true))
        })
      ),
    { discard: true }
  )

/**
 * `closeNamespaces` without a fiber, when none of the forced events it would fire has a handler
 * (the common case): the same removals in the same order. Returns false, having done nothing, when
 * one has. @internal
 */
export const closeNamespacesNow = (conn: AnyConn): boolean => {
  if (conn.nsMap.size === 0) return true
  for (const ns of conn.nsMap.values()) {
    if (conn.handlerFor(ns.namespace, OnNamespaceDisconnect) !== undefined) return false
    if (
      ns.roomMap.size > 0 &&
      (conn.handlerFor(ns.namespace, OnRoomLeave) !== undefined ||
        conn.handlerFor(ns.namespace, OnRoomLeft) !== undefined)
    ) return false
  }
  for (const ns of Array.from(conn.nsMap.values())) {
    for (const room of Array.from(ns.roomMap.values())) conn.removeRoom(room)
    conn.removeNamespace(ns)
  }
  return true
}

/** The socket is gone (a reconnect follows) or the connection closed: nothing was refused. */
const isGone = (error: { readonly _tag: string }): boolean =>
  error._tag === "Reconnecting" || error._tag === "ConnectionClosed"

/**
 * Client side, after a reconnect's handshake: connects every namespace and joins
 * every room the connection had again. What the server now refuses (or does not
 * answer in time) is left with the forced events; when the socket is lost again or
 * the connection closes, the rest is left to the next reconnect or the close.
 *
 * @internal
 */
export const restore = (conn: AnyConn): Effect.Effect<void> =>
  Effect.forEach(Array.from(conn.nsMap.values()), (ns) =>
    Effect.gen(function*() {
      const connected = yield* Effect.either(
        conn.sendRequest(conn.requestMessage(ns.namespace, "", OnNamespaceConnect), undefined)
      )
      if (connected._tag === "Left") {
        if (isGone(connected.left)) return
        yield* leaveAllForced(ns)
        conn.removeNamespace(ns)
        yield* fire(ns, lifecycle(ns.namespace, "", OnNamespaceDisconnect, true, true))
        return
      }
      yield* fire(ns, lifecycle(ns.namespace, "", OnNamespaceConnected, true, false))
      for (const room of Array.from(ns.roomMap.values())) {
        const joined = yield* Effect.either(
          conn.sendRequest(
            conn.joinRequest(ns.namespace, room.name),
            undefined,
            (reply) => conn.joinAnswered(ns.namespace, room.name, reply)
          )
        )
        if (joined._tag === "Left") {
          if (isGone(joined.left)) return
          conn.removeRoom(room)
          yield* fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeft, true, true))
        } else {
          yield* fire(ns, lifecycle(ns.namespace, room.name, OnRoomJoined, true, false))
        }
      }
    }), { discard: true })
