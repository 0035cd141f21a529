/**
 * Rooms, both directions: the peer's join and leave requests, this side's joins and
 * leaves (the local veto runs before anything is sent), and the forced leaves of a
 * disconnect or a close.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Conn from "../Conn.js"
import * as Errors from "../Errors.js"
import * as Message from "../Message.js"
import { Phase } from "./connConfig.js"
import { fire, lifecycle } from "./handler.js"
import { type AnyConn, type NSConnImpl, RoomImpl } from "./handles.js"

const { OnRoomJoin, OnRoomJoined, OnRoomLeave, OnRoomLeft } = Message

/** The peer asks to join a room. @internal */
export const handleJoinRequest = (conn: AnyConn, m: Message.Message): Effect.Effect<void> =>
  Effect.suspend(() => {
    const ns = conn.nsMap.get(m.namespace)
    if (ns === undefined) {
      conn.writeError(m, "bad namespace")
      return Effect.void
    }
    // a client that asked for positions and joins a recoverable room (recovery.ts)
    const recovery = conn.joinRecovery(m)
    if (ns.roomMap.has(m.room)) {
      // joined already: a client's resync after a gap in the room's positions
      if (recovery !== undefined) {
        recovery.begin()
        return recovery.answer(m.wait)
      }
      conn.writeEmptyReply(m.wait)
      return Effect.void
    }
    if (conn.roomCount >= conn.config.maxRooms) {
      conn.writeError(m, "too many rooms")
      return Effect.void
    }
    const room = new RoomImpl(ns, m.room)
    return Effect.flatMap(fire(ns, lifecycle(m.namespace, m.room, OnRoomJoin, false, false)), (veto) => {
      if (veto !== undefined) {
        conn.writeError(m, veto)
        return Effect.void
      }
      if (conn.phase === Phase.Closed || ns.removed || ns.roomMap.has(m.room)) {
        conn.writeEmptyReply(m.wait)
        return Effect.void
      }
      recovery?.begin()
      conn.addRoom(room)
      return Effect.flatMap(
        fire(ns, lifecycle(m.namespace, m.room, OnRoomJoined, false, false)),
        () => recovery === undefined ? Effect.sync(() => conn.writeEmptyReply(m.wait)) : recovery.answer(m.wait)
      )
    })
  })

/** The peer asks to leave a room (a server may refuse; a client complies). @internal */
export const handleLeaveRequest = (conn: AnyConn, m: Message.Message): Effect.Effect<void> =>
  Effect.suspend(() => {
    const ns = conn.nsMap.get(m.namespace)
    if (ns === undefined) {
      conn.writeError(m, "bad namespace")
      return Effect.void
    }
    const room = ns.roomMap.get(m.room)
    if (room === undefined) {
      conn.writeEmptyReply(m.wait)
      return Effect.void
    }
    return Effect.flatMap(fire(ns, lifecycle(m.namespace, m.room, OnRoomLeave, false, false)), (veto) => {
      if (veto !== undefined && conn.config.side === "server") {
        conn.writeError(m, veto)
        return Effect.void
      }
      conn.removeRoom(room)
      return Effect.map(fire(ns, lifecycle(m.namespace, m.room, OnRoomLeft, false, false)), () => {
        conn.writeEmptyReply(m.wait)
      })
    })
  })

/** This side joins a room: its own veto, then the request; the room exists once the reply arrived. @internal */
export const joinRoom = (
  ns: NSConnImpl<any, any>,
  name: string,
  options: Conn.RequestOptions | undefined,
  gated = true
): Effect.Effect<RoomImpl<any, any>, Errors.RequestError | Errors.Offline> =>
  Effect.gen(function*() {
    const conn: AnyConn = ns.conn
    const timeout = options?.timeout
    if (conn.phase === Phase.Closed) return yield* Effect.fail(conn.closedError)
    const gate = conn.gate
    if (gated && gate !== undefined) {
      return yield* conn.held(gate, joinRoom(ns, name, options, false), ns.namespace, OnRoomJoin, timeout)
    }
    if (ns.removed) {
      return yield* Effect.fail(new Errors.BadNamespace({ namespace: ns.namespace, reason: "NotConnected" }))
    }
    const existing = ns.roomMap.get(name)
    if (existing !== undefined) return existing
    const room = new RoomImpl(ns, name)
    const veto = yield* fire(ns, lifecycle(ns.namespace, name, OnRoomJoin, true, false))
    if (veto !== undefined) {
      return yield* Effect.fail(
        new Errors.Vetoed({ event: OnRoomJoin, namespace: ns.namespace, room: name, text: veto })
      )
    }
    yield* conn.sendRequest(conn.joinRequest(ns.namespace, name), timeout, (reply) => {
      if (conn.phase !== Phase.Closed && !ns.removed && !ns.roomMap.has(name)) {
        conn.addRoom(room)
        conn.joinAnswered(ns.namespace, name, reply)
      }
    })
    yield* fire(ns, lifecycle(ns.namespace, name, OnRoomJoined, true, false))
    return ns.roomMap.get(name) ?? room
  })

/** This side leaves a room: its own veto, then the request. @internal */
export const leaveRoom = (
  room: RoomImpl<any, any>,
  options: Conn.RequestOptions | undefined,
  gated = true
): Effect.Effect<void, Errors.RequestError | Errors.Offline> =>
  Effect.gen(function*() {
    const ns = room.ns
    const conn: AnyConn = ns.conn
    const timeout = options?.timeout
    if (conn.phase === Phase.Closed) return yield* Effect.fail(conn.closedError)
    const gate = conn.gate
    if (gated && gate !== undefined) {
      return yield* conn.held(gate, leaveRoom(room, options, false), ns.namespace, OnRoomLeave, timeout)
    }
    if (room.removed) return yield* Effect.fail(new Errors.BadRoom({ namespace: ns.namespace, room: room.name }))
    const veto = yield* fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeave, true, false))
    if (veto !== undefined) {
      return yield* Effect.fail(
        new Errors.Vetoed({ event: OnRoomLeave, namespace: ns.namespace, room: room.name, text: veto })
      )
    }
    yield* conn.sendRequest(
      conn.requestMessage(ns.namespace, room.name, OnRoomLeave),
      timeout,
      () => conn.removeRoom(room)
    )
    yield* fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeft, true, false))
  })

/** Leaves every room of `ns` locally, firing the forced leave events. @internal */
export const leaveAllForced = (ns: NSConnImpl<any, any>): Effect.Effect<void> =>
  Effect.forEach(
    Array.from(ns.roomMap.values()),
    (room) =>
      Effect.zipRight(
        fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeave, true, true)),
        Effect.suspend(() => {
          ns.conn.removeRoom(room)
          return fire(ns, lifecycle(ns.namespace, room.name, OnRoomLeft, true, true))
        })
      ),
    { discard: true }
  )
