/**
 * The instances of a cluster and what one can do to the connections of all:
 * join them to a room, make them leave one, disconnect them, or describe them,
 * by connection id or by room (`server.joinRoom`, `server.leaveRoom`,
 * `server.disconnectConnections`, `server.connectionsInfo`).
 *
 * With a `StackExchange`, every instance sends a heartbeat every
 * `heartbeatInterval`; one that falls silent for `instanceTtl` is taken for dead.
 * A remote operation is sent to every instance, each acts on its own
 * connections, and the caller gets one {@link Outcome} per instance it knows of:
 * `Ok` with what that instance did, `Failed` with why it could not, or
 * `TimedOut` when it did not answer within the timeout — partial results are
 * reported, never hidden. Joins and leaves complete once the clients answered
 * and the instances' broker subscriptions are confirmed, so a broadcast made
 * after a join reaches the joined connections.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Presence from "./Presence.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** how often an instance tells the others it is alive; default 1 s */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /**
   * An instance not heard from for this long is dropped (with all its presence
   * members); default 5 s. Removal happens at most one `heartbeatInterval` later.
   */
  readonly instanceTtl?: Duration.DurationInput | undefined
  /** the default timeout of a remote operation; default 5 s */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The connections an operation is for: those with an `id` (connected to
 * `namespace`, when it is given), or the members of a namespace or of one of its
 * rooms.
 *
 * @since 0.1.0
 * @category models
 */
export type Target =
  | { readonly id: string; readonly namespace?: string | undefined }
  | { readonly id?: undefined; readonly namespace: string; readonly room?: string | undefined }

/**
 * A target within one namespace, which joining and leaving rooms need.
 *
 * @since 0.1.0
 * @category models
 */
export type NamespaceTarget = Target & { readonly namespace: string }

/**
 * @since 0.1.0
 * @category models
 */
export interface RemoteOptions {
  /**
   * How long to wait for the instances (default: the cluster's `timeout`). Each
   * instance gives its clients four fifths of it to answer a join or leave, so
   * that its answer arrives in time.
   */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A connection that did not do what was asked: the client refused (`RemoteError`),
 * did not answer (`AskTimeout`), closed meanwhile (`ConnectionClosed`), or a
 * local veto refused it (`Vetoed`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionFailure {
  readonly ref: string
  readonly id: string
  /** the `_tag` of the error */
  readonly error: string
  readonly message: string
}

/**
 * What a join, leave or disconnect did: how many connections did it, and which
 * failed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Applied {
  readonly count: number
  readonly failures: ReadonlyArray<ConnectionFailure>
}

/**
 * A connection as `connectionsInfo` describes it: the `fetchSockets` of a cluster.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionInfo {
  /** unique in the cluster, as in presence: `<instance>/<number>` */
  readonly ref: string
  readonly id: string
  readonly instance: string
  readonly namespaces: ReadonlyArray<{ readonly namespace: string; readonly rooms: ReadonlyArray<string> }>
  /** the presence metadata the server set, when presence is on */
  readonly metadata: Presence.Metadata | undefined
}

/**
 * What one instance answered.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome<A> =
  | { readonly _tag: "Ok"; readonly instance: string; readonly value: A }
  | { readonly _tag: "Failed"; readonly instance: string; readonly reason: string }
  | { readonly _tag: "TimedOut"; readonly instance: string }

/**
 * The outcome of a remote operation: `value` combines what the instances that
 * answered `Ok` did; `instances` has one outcome per instance (this one first);
 * `complete` is true when every one is `Ok`.
 *
 * An instance is expected when this one has heard from it within `instanceTtl`;
 * one that answers without being known is counted too. `TimedOut` is an instance
 * that did not answer in time (it may still have acted); `Failed` one that could
 * not be asked (the broker was down) or could not act.
 *
 * @since 0.1.0
 * @category models
 */
export interface Result<A> {
  readonly value: A
  readonly instances: ReadonlyArray<Outcome<A>>
  readonly complete: boolean
}

/**
 * A remote operation did not hear `Ok` from every instance: what
 * {@link requireComplete} fails with. `result` has what was done.
 *
 * @since 0.1.0
 * @category errors
 */
export class Incomplete extends Data.TaggedError("Incomplete")<{
  readonly operation: string
  readonly result: Result<unknown>
}> {
  override get message() {
    const missing = this.result.instances.filter((outcome) => outcome._tag !== "Ok")
    return `${this.operation}: ${missing.length} instance(s) did not complete (${
      missing.map((outcome) => `${outcome.instance}: ${outcome._tag}`).join(", ")
    })`
  }
}

/**
 * Fails with {@link Incomplete} unless every instance answered `Ok`.
 *
 * @example
 * ```ts
 * const joined = yield* server.joinRoom({ namespace: "default", id: "alice" }, "vip").pipe(
 *   Cluster.requireComplete("joinRoom")
 * )
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const requireComplete: (
  operation: string
) => <A, E, R>(self: Effect.Effect<Result<A>, E, R>) => Effect.Effect<Result<A>, E | Incomplete, R> =
  (operation) => (self) =>
    Effect.flatMap(self, (result) => result.complete ? Effect.succeed(result) : new Incomplete({ operation, result }))
