/**
 * Recoverable rooms, the client's side: the last position seen in every such
 * room, read from the `wait` field of the messages the server sends with one
 * (`!<offset>:<prev>:<epoch>`, stripped before handlers see the message); a join
 * that carries it (`neffos-resume:<offset>:<epoch>`) when the room is joined again
 * after a reconnect; the answer's outcome as an event; and a resync when a message
 * shows that the one before it never arrived (`prev` beyond the last seen offset).
 * Messages of a room that arrive while its resync is answered are dropped: the
 * replay brings them again, in order.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import type * as Conn from "../Conn.js"
import type * as History from "../History.js"
import * as Message from "../Message.js"
import type { ConnImpl } from "./conn.js"
import type { NamespaceState, Protocol } from "./connConfig.js"
import { type Position, roomKey } from "./historyStore.js"
import * as msg from "./message.js"
import { replyPrefix, resumePrefix } from "./recoveryWire.js"

/** The header by which the client asks for positions. @internal */
export const header = "X-Neffos-Recovery"

/** The positions of the messages handlers received. */
const positionsOf = new WeakMap<Message.Message, Position>()

/** @internal */
export const position = (message: Message.Message): Option.Option<Position> =>
  Option.fromNullable(positionsOf.get(message))

interface Known {
  readonly namespace: string
  readonly room: string
  epoch: string
  offset: number
}

type AnyConn = ConnImpl<NamespaceState>

const isReason = (status: string): status is History.NotRecoveredReason =>
  status === "epochChanged" || status === "trimmed" || status === "tooMany" || status === "storeDown"

/** @internal */
export class ClientRecovery {
  private readonly rooms = new Map<string, Known>()
  private readonly resyncing = new Set<string>()
  readonly pubsub = Effect.runSync(PubSub.sliding<History.RecoveryEvent>(1024))

  constructor(
    private readonly onNotRecovered: ((event: History.NotRecovered) => Effect.Effect<void, never, any>) | undefined,
    /** sees every message with a position that is handled (the test kit records them) */
    private readonly observe?: ((message: Message.Message) => void) | undefined
  ) {}

  /** The protocol with positions read (and stripped) before a message is handled. */
  wrap(protocol: Protocol): Protocol {
    const next = protocol.receive
    return { ...protocol, receive: (conn, m) => this.receive(conn as AnyConn, m, next) }
  }

  private receive(conn: AnyConn, m: Message.Message, next: Protocol["receive"]): void {
    const wait = m.wait
    if (wait.charCodeAt(0) !== 33 /* ! */) return next(conn, m)
    const first = wait.indexOf(":")
    const second = wait.indexOf(":", first + 1)
    if (first === -1 || second === -1) return
    const offset = Number(wait.slice(1, first))
    const prev = Number(wait.slice(first + 1, second))
    const epoch = wait.slice(second + 1)
    const key = roomKey(m.namespace, m.room)
    if (this.resyncing.has(key) || conn.nsMap.get(m.namespace)?.roomMap.has(m.room) !== true) return
    const known = this.rooms.get(key)
    if (known === undefined) {
      this.rooms.set(key, { namespace: m.namespace, room: m.room, epoch, offset })
    } else {
      if (known.epoch === epoch) {
        if (offset <= known.offset) return
        // the message before this one never arrived: ask for what follows the last one seen
        if (prev > known.offset) return this.resync(conn, m.namespace, m.room)
      } else if (known.epoch !== "") {
        // the room's history was lost while the connection was live: what it missed is unknown
        this.notRecovered(conn, m.namespace, m.room, "epochChanged", { epoch, offset })
      }
      known.epoch = epoch
      known.offset = offset
    }
    // a marker: a message this connection was excluded from, its position only
    if (m.isNoOp) return
    const plain = msg.unsafeMake(m.namespace, m.room, m.event, m.body, m.error, m.binary, "", false, false)
    positionsOf.set(plain, { epoch, offset })
    this.observe?.(plain)
    next(conn, plain)
  }

  private resync(conn: AnyConn, namespace: string, room: string): void {
    const key = roomKey(namespace, room)
    this.resyncing.add(key)
    conn.config.fork(
      conn.sendRequest(
        this.joinRequest(conn, namespace, room),
        undefined,
        (reply) => this.joinAnswered(conn, namespace, room, reply)
      ).pipe(
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => this.resyncing.delete(key)))
      )
    )
  }

  /** A join request; with the room's last position when there is one. */
  joinRequest(conn: AnyConn, namespace: string, room: string): Message.Message {
    const known = this.rooms.get(roomKey(namespace, room))
    const body = known === undefined || known.epoch === "" ? "" : `${resumePrefix}${known.offset}:${known.epoch}`
    return msg.unsafeMake(namespace, room, Message.OnRoomJoin, body, undefined, false, conn.newToken(), false, false)
  }

  /** A join's answer: the room's position, or what was recovered; runs in the reader, before the replay. */
  joinAnswered(conn: AnyConn, namespace: string, room: string, reply: Message.Message): void {
    const key = roomKey(namespace, room)
    this.resyncing.delete(key)
    const body = typeof reply.body === "string" ? reply.body : ""
    if (!body.startsWith(replyPrefix)) {
      // not a recoverable room (or a server that keeps no history)
      this.rooms.delete(key)
      return
    }
    const [status, offsetText, epoch, count] = body.slice(replyPrefix.length).split(":")
    const offset = Number(offsetText)
    const at = epoch === undefined || !Number.isSafeInteger(offset) ? undefined : { epoch, offset }
    if (at !== undefined) this.rooms.set(key, { namespace, room, ...at })
    if (status === "recovered" && at !== undefined) {
      this.pubsub.unsafeOffer({ _tag: "Recovered", namespace, room, replayed: Number(count ?? 0), position: at })
    } else if (isReason(status)) {
      // a store that was down keeps the last position: the next message shows the gap, and a resync follows
      this.notRecovered(conn, namespace, room, status, at)
    }
  }

  private notRecovered(
    conn: AnyConn,
    namespace: string,
    room: string,
    reason: History.NotRecoveredReason,
    at: Position | undefined
  ): void {
    const event: History.NotRecovered = { _tag: "NotRecovered", namespace, room, reason, position: at }
    this.pubsub.unsafeOffer(event)
    const handler = this.onNotRecovered
    if (handler !== undefined) {
      conn.config.fork(
        Effect.catchAllCause(
          handler(event) as Effect.Effect<void>,
          (cause) => Effect.logError("effect-neffos: onNotRecovered failed", cause)
        )
      )
    }
  }

  /** The connection left a room: its position goes. */
  left(namespace: string, room: string): void {
    this.rooms.delete(roomKey(namespace, room))
  }

  get positions(): ReadonlyArray<{ readonly namespace: string; readonly room: string; readonly position: Position }> {
    const out: Array<{ namespace: string; room: string; position: Position }> = []
    for (const known of this.rooms.values()) {
      if (known.epoch !== "") {
        out.push({
          namespace: known.namespace,
          room: known.room,
          position: { epoch: known.epoch, offset: known.offset }
        })
      }
    }
    return out
  }
}

const recoveryOf = (conn: Conn.ClientConn): ClientRecovery | undefined =>
  (conn as unknown as { readonly config: { readonly recovery?: ClientRecovery } }).config.recovery

/** @internal */
export const events = (conn: Conn.ClientConn): Stream.Stream<History.RecoveryEvent> => {
  const recovery = recoveryOf(conn)
  return recovery === undefined ? Stream.empty : Stream.fromPubSub(recovery.pubsub)
}

/** @internal */
export const positions = (
  conn: Conn.ClientConn
): Effect.Effect<ReadonlyArray<{ readonly namespace: string; readonly room: string; readonly position: Position }>> =>
  Effect.sync(() => recoveryOf(conn)?.positions ?? [])
