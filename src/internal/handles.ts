/**
 * The namespace and room handles, one definition for both sides: `C` is the
 * connection class, `Offline` the failures of a client that is reconnecting
 * (`never` on the server, whose connections do not reconnect). Joins, leaves and
 * disconnects go through the connection's protocol (room.ts, namespace.ts).
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Conn from "../Conn.js"
import * as Errors from "../Errors.js"
import type * as Message from "../Message.js"
import type { ConnImpl } from "./conn.js"
import type { NamespaceState, RoomState } from "./connConfig.js"
import * as msg from "./message.js"
import { frameLength } from "./observe.js"

type EmitError<Offline> = Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom | Offline

/** @internal */
export type AnyConn = ConnImpl<NSConnImpl<any, any>>

/** @internal */
export class NSConnImpl<C extends AnyConn = AnyConn, Offline = never> implements NamespaceState {
  private roomMap_: Map<string, RoomImpl<C, Offline>> | undefined
  removed = false
  constructor(readonly conn: C, readonly namespace: string) {}

  get roomMap(): Map<string, RoomImpl<C, Offline>> {
    return this.roomMap_ ??= new Map()
  }

  private check(room: string): Errors.ConnectionClosed | Errors.BadNamespace | Errors.BadRoom | undefined {
    if (this.conn.closed) return this.conn.closedError
    if (this.removed) return new Errors.BadNamespace({ namespace: this.namespace, reason: "NotConnected" })
    if (room.length > 0 && !this.roomMap.has(room)) return new Errors.BadRoom({ namespace: this.namespace, room })
    return undefined
  }

  emitIn(
    room: string,
    event: string,
    body: string | Uint8Array,
    binary: boolean,
    gated = true
  ): Effect.Effect<void, EmitError<Offline>> {
    return Effect.suspend((): Effect.Effect<void, EmitError<Offline>> => {
      const error = this.check(room)
      if (error !== undefined) return Effect.fail(error)
      const gate = this.conn.gate
      if (gated && gate !== undefined) {
        // only a reconnecting client has a gate, and its Offline includes these
        return gate.hold(this.emitIn(room, event, body, binary, false)) as Effect.Effect<void, EmitError<Offline>>
      }
      const observe = this.conn.config.observe
      if (observe?.propagate) {
        return Effect.flatMap(observe.emitToken, (token) => this.writeEmit(room, event, body, binary, token))
      }
      return this.writeEmit(room, event, body, binary, "")
    })
  }

  /** Writes an emit; `wait` is empty, or the trace token of a client that propagates its caller's span. */
  private writeEmit(
    room: string,
    event: string,
    body: string | Uint8Array,
    binary: boolean,
    wait: string
  ): Effect.Effect<void, Errors.ConnectionClosed> {
    const frame = msg.encode(
      msg.unsafeMake(
        this.namespace,
        room,
        event,
        binary && typeof body === "string" ? new TextEncoder().encode(body) : body,
        undefined,
        binary || typeof body !== "string",
        wait,
        false,
        false
      )
    )
    this.conn.config.observe?.onSent(this.namespace, 1, frameLength(frame))
    return this.conn.write(frame) ? Effect.void : Effect.fail(this.conn.unavailableError as Errors.ConnectionClosed)
  }

  askIn(
    room: string,
    event: string,
    body: string | Uint8Array,
    timeout: Duration.DurationInput | undefined,
    gated = true
  ): Effect.Effect<Message.Message, Errors.AskError | Offline> {
    return Effect.suspend((): Effect.Effect<Message.Message, Errors.AskError | Offline> => {
      const error = this.check(room)
      if (error !== undefined) return Effect.fail(error)
      const gate = this.conn.gate
      if (gated && gate !== undefined) {
        return this.conn.held(
          gate,
          this.askIn(room, event, body, timeout, false),
          this.namespace,
          event,
          timeout
        ) as Effect.Effect<Message.Message, Errors.AskError | Offline>
      }
      const token = this.conn.newToken()
      const send = (suffix: string) =>
        // Reconnecting only while a client is down, which its Offline includes
        this.conn.sendRequest(
          msg.unsafeMake(
            this.namespace,
            room,
            event,
            body,
            undefined,
            typeof body !== "string",
            token + suffix,
            false,
            false
          ),
          timeout
        ) as Effect.Effect<Message.Message, Errors.AskError | Offline>
      const observe = this.conn.config.observe
      return observe === undefined ? send("") : observe.ask(this.conn, this.namespace, room, event, send)
    })
  }

  emit(
    event: string,
    body: string | Uint8Array = ""
  ): Effect.Effect<void, Exclude<EmitError<Offline>, Errors.BadRoom>> {
    // without a room there is no BadRoom
    return this.emitIn("", event, body, false) as Effect.Effect<void, Exclude<EmitError<Offline>, Errors.BadRoom>>
  }

  emitBinary(
    event: string,
    body: string | Uint8Array
  ): Effect.Effect<void, Exclude<EmitError<Offline>, Errors.BadRoom>> {
    return this.emitIn("", event, body, true) as Effect.Effect<void, Exclude<EmitError<Offline>, Errors.BadRoom>>
  }

  ask(
    event: string,
    body: string | Uint8Array = "",
    options?: Conn.RequestOptions
  ): Effect.Effect<Message.Message, Errors.AskError | Offline> {
    return this.askIn("", event, body, options?.timeout)
  }

  joinRoom(
    room: string,
    options?: Conn.RequestOptions
  ): Effect.Effect<RoomImpl<C, Offline>, Errors.RequestError | Offline> {
    return this.conn.config.protocol.joinRoom(this, room, options) as Effect.Effect<
      RoomImpl<C, Offline>,
      Errors.RequestError | Offline
    >
  }

  room(name: string): Effect.Effect<RoomImpl<C, Offline>, Errors.BadRoom> {
    return Effect.suspend(() => {
      const room = this.roomMap.get(name)
      return room === undefined
        ? Effect.fail(new Errors.BadRoom({ namespace: this.namespace, room: name }))
        : Effect.succeed(room)
    })
  }

  get rooms(): Effect.Effect<ReadonlyArray<RoomImpl<C, Offline>>> {
    return Effect.sync(() => Array.from(this.roomMap.values()))
  }

  leaveAll(options?: Conn.RequestOptions): Effect.Effect<void, Errors.RequestError | Offline> {
    return Effect.forEach(Array.from(this.roomMap.values()), (room) => room.leave(options), { discard: true })
  }

  disconnect(options?: Conn.RequestOptions): Effect.Effect<void, Errors.RequestError | Offline> {
    return this.conn.config.protocol.disconnect(this, options) as Effect.Effect<void, Errors.RequestError | Offline>
  }

  /** Server side: to the namespace (or the message's room), minus `except`. */
  broadcastMessage(message: Conn.Outgoing, except: C | undefined): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.conn.broadcastFrom(
        msg.make({ ...message, namespace: message.namespace ?? this.namespace, wait: "", isNoOp: false }),
        message.to,
        except
      )
    )
  }

  broadcast(event: string | Conn.Outgoing, body?: string | Uint8Array): Effect.Effect<void> {
    return this.broadcastMessage(typeof event === "string" ? { event, body } : event, undefined)
  }

  broadcastOthers(event: string | Conn.Outgoing, body?: string | Uint8Array): Effect.Effect<void> {
    return this.broadcastMessage(typeof event === "string" ? { event, body } : event, this.conn)
  }
}

/** @internal */
export class RoomImpl<C extends AnyConn = AnyConn, Offline = never> implements RoomState {
  removed = false
  constructor(readonly ns: NSConnImpl<C, Offline>, readonly name: string) {}

  get nsConn(): NSConnImpl<C, Offline> {
    return this.ns
  }

  broadcast(event: string | Conn.Outgoing, body?: string | Uint8Array): Effect.Effect<void> {
    return this.ns.broadcastMessage(this.inRoom(event, body), undefined)
  }

  broadcastOthers(event: string | Conn.Outgoing, body?: string | Uint8Array): Effect.Effect<void> {
    return this.ns.broadcastMessage(this.inRoom(event, body), this.ns.conn)
  }

  private inRoom(event: string | Conn.Outgoing, body: string | Uint8Array | undefined): Conn.Outgoing {
    return typeof event === "string"
      ? { room: this.name, event, body }
      : { ...event, namespace: this.ns.namespace, room: this.name }
  }

  emit(event: string, body: string | Uint8Array = ""): Effect.Effect<void, EmitError<Offline>> {
    return this.ns.emitIn(this.name, event, body, false)
  }

  emitBinary(event: string, body: string | Uint8Array): Effect.Effect<void, EmitError<Offline>> {
    return this.ns.emitIn(this.name, event, body, true)
  }

  ask(
    event: string,
    body: string | Uint8Array = "",
    options?: Conn.RequestOptions
  ): Effect.Effect<Message.Message, Errors.AskError | Offline> {
    return this.ns.askIn(this.name, event, body, options?.timeout)
  }

  leave(options?: Conn.RequestOptions): Effect.Effect<void, Errors.RequestError | Offline> {
    return this.ns.conn.config.protocol.leaveRoom(this, options) as Effect.Effect<void, Errors.RequestError | Offline>
  }
}
