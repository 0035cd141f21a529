/**
 * Who is in a namespace or a room, on every instance of a cluster: the members
 * (connection, id, instance, when it joined, and metadata the server set), cheap
 * counts, and the changes as a `Stream`.
 *
 * Presence is a replica kept on every instance (`server.presence`): each instance
 * owns its own members and tells the others about its changes (one message per
 * `diffInterval`, 10 ms, whatever the number of joins and leaves in it) through
 * the `StackExchange`; a heartbeat every `heartbeatInterval` says it is alive, and an
 * instance that falls silent for `instanceTtl` is dropped with all its members at
 * once. Reads are local: listing a room costs no round trip, and a count costs
 * nothing at all (it is kept, never computed by listing). Without a
 * `StackExchange` it is this instance's own view.
 *
 * Turn it on with `Server.layer({ events, presence: true })` (or a
 * {@link Options} record); without it, `server.presence` dies with a message
 * saying so.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type * as Conn from "./Conn.js"

/**
 * Application metadata of a connection, set by the server (never by the client):
 * a display name, a status. It crosses instances as JSON, so it must survive
 * `JSON.stringify`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Metadata {
  readonly [key: string]: unknown
}

/**
 * One connection's presence in a namespace (`room` is `""`) or in one of its
 * rooms.
 *
 * @since 0.1.0
 * @category models
 */
export interface Member {
  /** the connection, unique in the cluster: `<instance>/<number>` */
  readonly ref: string
  /** the connection id (not unique: one user may have several connections) */
  readonly id: string
  /** the `instanceId` of the server that holds the connection */
  readonly instance: string
  readonly namespace: string
  /** `""` for the namespace itself */
  readonly room: string
  /** when it connected to the namespace or joined the room, in epoch milliseconds of its instance's clock */
  readonly joinedAt: number
  readonly metadata: Metadata | undefined
}

/**
 * The members of one id: one user with several tabs or devices.
 *
 * @since 0.1.0
 * @category models
 */
export interface Group {
  readonly id: string
  readonly members: ReadonlyArray<Member>
}

/**
 * How many connections, and how many distinct ids, a namespace or room has.
 *
 * @since 0.1.0
 * @category models
 */
export interface Counts {
  readonly connections: number
  readonly ids: number
}

/**
 * Why a member left: it left (or its connection closed), or its instance was
 * dropped — it stopped sending heartbeats for `instanceTtl`, or said goodbye.
 *
 * @since 0.1.0
 * @category models
 */
export type LeaveReason = "Left" | "InstanceDown"

/**
 * A change of presence. `version` grows by one with every change this instance's
 * replica applies, so a {@link State} and the changes after it can be told apart.
 *
 * @since 0.1.0
 * @category models
 */
export type Change =
  | { readonly _tag: "Join"; readonly member: Member; readonly version: number }
  | { readonly _tag: "Leave"; readonly member: Member; readonly reason: LeaveReason; readonly version: number }
  | {
    readonly _tag: "Update"
    readonly member: Member
    readonly previous: Metadata | undefined
    readonly version: number
  }

/**
 * The members of a namespace or room at `version`: what {@link Presence.watch}
 * emits first.
 *
 * @since 0.1.0
 * @category models
 */
export interface State {
  readonly _tag: "State"
  readonly namespace: string
  readonly room: string
  readonly members: ReadonlyArray<Member>
  readonly version: number
}

/**
 * An instance as this one sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Instance {
  readonly instance: string
  /** this server */
  readonly self: boolean
  /** epoch milliseconds of the last message from it (now, for this server) */
  readonly lastSeen: number
  /** its members are known: its snapshot arrived and no change was missed since */
  readonly synced: boolean
  /** its connections that are in some namespace or room */
  readonly connections: number
}

/**
 * The presence service of a server: `server.presence`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Presence {
  /** the members of a namespace (its connections) or of one of its rooms, on every instance */
  readonly members: (namespace: string, room?: string) => Effect.Effect<ReadonlyArray<Member>>
  /** the same members grouped by connection id */
  readonly byId: (namespace: string, room?: string) => Effect.Effect<ReadonlyArray<Group>>
  /** connections and distinct ids, kept up to date: no listing, no round trip */
  readonly count: (namespace: string, room?: string) => Effect.Effect<Counts>
  /**
   * Every change from now on, local and remote. A subscriber that falls more than
   * `changesCapacity` changes behind loses the oldest.
   */
  readonly changes: Stream.Stream<Change>
  /**
   * The members of a namespace or room now (a {@link State}), then its changes:
   * a view that never misses or repeats a change between the two.
   */
  readonly watch: (namespace: string, room?: string) => Stream.Stream<State | Change>
  /**
   * Sets (or, with `undefined`, clears) a connection's metadata: its members
   * everywhere change with one `Update` each, across the cluster. Metadata set
   * before the connection joins anything goes with its joins.
   */
  readonly setMetadata: (conn: Conn.Conn, metadata: Metadata | undefined) => Effect.Effect<void>
  readonly metadata: (conn: Conn.Conn) => Effect.Effect<Metadata | undefined>
  /** the instances this one knows of, itself first */
  readonly instances: Effect.Effect<ReadonlyArray<Instance>>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Push presence to the clients of a room (or, with room `""`, of a namespace):
   * `true` for every one, or a predicate. Default: none. See {@link PushFrame}.
   */
  readonly push?: boolean | ((namespace: string, room: string) => boolean) | undefined
  /** the event name of the pushed frames; default `_OnPresence` */
  readonly pushEvent?: string | undefined
  /** changes are gathered this long and pushed as one frame per room; default 50 ms */
  readonly pushInterval?: Duration.DurationInput | undefined
  /**
   * With a `StackExchange`, this instance's changes are gathered this long and
   * sent to the others as one message; default 10 ms (0: one message per
   * event-loop turn with changes). Its own reads see a change at once.
   */
  readonly diffInterval?: Duration.DurationInput | undefined
  /** changes a `changes` / `watch` subscriber may fall behind before it loses the oldest; default 4,096 */
  readonly changesCapacity?: number | undefined
}

/**
 * A member as a client sees it in a pushed frame.
 *
 * @since 0.1.0
 * @category models
 */
export interface PushMember {
  readonly ref: string
  readonly id: string
  readonly joinedAt: number
  readonly meta?: Metadata
}

/**
 * The JSON body of a presence frame pushed to a client, in the room it is about
 * (namespace-level frames have room `""`), with the event `pushEvent`.
 *
 * - `state` comes first after the connection joined (everything it needs; it
 *   includes the connection itself);
 * - `diff` then comes at most once per `pushInterval`, with what changed since
 *   the previous frame this connection got: apply `leaves`, then `joins` and
 *   `updates`, each keyed by `ref`. A member that joined and left within one
 *   interval is in neither.
 *
 * Both carry the room's `count`. A `diff` never repeats what a `state` already
 * holds, so a client replaces its list on `state` and applies every `diff` after.
 *
 * @since 0.1.0
 * @category models
 */
export type PushFrame =
  | { readonly type: "state"; readonly members: ReadonlyArray<PushMember>; readonly count: Counts }
  | {
    readonly type: "diff"
    readonly joins: ReadonlyArray<PushMember>
    readonly leaves: ReadonlyArray<PushMember>
    readonly updates: ReadonlyArray<PushMember>
    readonly count: Counts
  }
