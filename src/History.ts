/**
 * Recoverable rooms: nothing missed across a reconnect. A room that a `history`
 * rule of the server matches keeps its last messages (count and age bounded),
 * each at a position — an `epoch` that changes when the history is lost, and an
 * `offset` that grows with every message. This package's client remembers the last
 * position it saw in every such room and, when it rejoins after a reconnect, asks
 * to resume from it: the server replays what it missed, in order, then goes on
 * live, with no gap and no duplicate; or, when the history no longer covers the
 * gap, tells it so with a typed {@link NotRecovered} event, so that the
 * application fetches the state again.
 *
 * Storage: in memory on one instance; with a `StackExchange` whose transport keeps
 * a history (Redis Streams always, JetStream with `NatsStackExchange`'s `history`
 * option), in the broker, shared by every instance so that positions are the same
 * everywhere.
 *
 * ```ts
 * Server.layer({
 *   events,
 *   history: { rooms: [{ namespace: "default", room: /^chat-/, size: 1000, ttl: "5 minutes" }] }
 * })
 * ```
 *
 * neffos.js and Go neffos clients see the frames they always saw: positions
 * travel only to clients that ask for them (see the README's compatibility section).
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import type * as Conn from "./Conn.js"
import * as recovery from "./internal/recovery.js"
import * as client from "./internal/recoveryClient.js"
import type * as Message from "./Message.js"

/**
 * A message's place in its room's history. Offsets grow with every message of the
 * room (by one in memory and on Redis; they are JetStream's stream sequence on
 * NATS); the epoch changes when the room's history is lost, so a position is only
 * comparable with one of the same epoch.
 *
 * @since 0.1.0
 * @category models
 */
export interface Position {
  readonly epoch: string
  readonly offset: number
}

/**
 * What a recoverable room keeps: its last `size` messages, each at most `ttl`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  readonly size: number
  readonly ttl: Duration.DurationInput
}

/**
 * A rule: the rooms whose namespace and name match (a string matches exactly, a
 * `RegExp` by `test`; no `namespace` matches every namespace) keep a history.
 *
 * @since 0.1.0
 * @category models
 */
export interface Rule extends Settings {
  readonly namespace?: string | RegExp | undefined
  readonly room: string | RegExp
}

/**
 * The recoverable rooms: rules (the first that matches decides) or a function.
 * The server asks once per room and keeps the answer.
 *
 * @since 0.1.0
 * @category models
 */
export type Rooms = ReadonlyArray<Rule> | ((namespace: string, room: string) => Settings | undefined)

/**
 * The server's `history` option.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly rooms: Rooms
  /**
   * The in-memory store (without a shared one): bytes kept across rooms (messages
   * and room records; the oldest messages of any room go first); default 64 MiB.
   */
  readonly maxBytes?: number | undefined
  /** the in-memory store: room records kept (the least recently written goes first); default 100,000 */
  readonly maxRooms?: number | undefined
  /**
   * The most messages one resume replays; a larger gap is not recovered (reason
   * `tooMany`). Default: the room's `size`.
   */
  readonly maxReplay?: number | undefined
}

/**
 * Why a room could not be recovered:
 *
 * - `epochChanged`: its history was lost since the client's position (a server
 *   restart with the in-memory store, a broker that lost its data, a room record
 *   that expired or was evicted, or another instance's in-memory history);
 * - `trimmed`: messages after the client's position are no longer kept (more than
 *   `size` followed it, or they are older than `ttl`, or the memory bound evicted them);
 * - `tooMany`: more messages than `maxReplay` followed it;
 * - `storeDown`: the shared store could not be read.
 *
 * @since 0.1.0
 * @category models
 */
export type NotRecoveredReason = "epochChanged" | "trimmed" | "tooMany" | "storeDown"

/**
 * A room of a client that rejoined was not recovered: what it missed is unknown,
 * so the application should fetch the room's state again. Live messages go on from
 * `position` (undefined when the store was down).
 *
 * @since 0.1.0
 * @category models
 */
export interface NotRecovered {
  readonly _tag: "NotRecovered"
  readonly namespace: string
  readonly room: string
  readonly reason: NotRecoveredReason
  readonly position: Position | undefined
}

/**
 * A room of a client that rejoined was recovered: the `replayed` messages it
 * missed follow `position` (the last one it had seen), in order, then live ones.
 *
 * @since 0.1.0
 * @category models
 */
export interface Recovered {
  readonly _tag: "Recovered"
  readonly namespace: string
  readonly room: string
  readonly replayed: number
  readonly position: Position
}

/**
 * @since 0.1.0
 * @category models
 */
export type RecoveryEvent = Recovered | NotRecovered

/**
 * A message of a room's history, as `server.history` reads it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly position: Position
  readonly message: Message.Message
  /** when it was stored, in ms since the epoch */
  readonly time: number
}

/**
 * A read of a room's history: its position now, and messages of it, oldest first.
 * With `since`, they are those after it, and `complete` says whether they are all
 * of them (the same rule as a client's resume); without, the latest ones.
 *
 * @since 0.1.0
 * @category models
 */
export interface Page {
  readonly position: Position
  readonly entries: ReadonlyArray<Entry>
  readonly complete: boolean
}

/**
 * The options of `server.history`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadOptions {
  readonly since?: Position | undefined
  /** at most this many messages; default the room's `size` */
  readonly limit?: number | undefined
}

/**
 * The position of a message a client received in a recoverable room (from a
 * server that gave it one), for handlers: `History.position(msg)`.
 *
 * @since 0.1.0
 * @category client
 */
export const position: (message: Message.Message) => Option.Option<Position> = client.position

/**
 * The outcome of every recoverable room the client rejoins from now on (after a
 * reconnect, or after a gap it noticed in a room's positions), as a `Stream`.
 *
 * @since 0.1.0
 * @category client
 */
export const events: (conn: Conn.ClientConn) => Stream.Stream<RecoveryEvent> = client.events

/**
 * The last position the client saw in each recoverable room it is in.
 *
 * @since 0.1.0
 * @category client
 */
export const positions: (
  conn: Conn.ClientConn
) => Effect.Effect<ReadonlyArray<{ readonly namespace: string; readonly room: string; readonly position: Position }>> =
  client.positions

/**
 * The server's recovery metrics: resumes by outcome
 * (`effect_neffos_recoveries{outcome}`: `recovered` or a {@link NotRecoveredReason})
 * and how many messages each recovered resume replayed
 * (`effect_neffos_recovery_replayed_messages`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics: {
  readonly recoveries: Metric.Metric.Counter<number>
  readonly replayed: Metric.Metric.Histogram<number>
} = recovery.metrics
