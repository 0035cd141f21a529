/**
 * Remote control: join, leave, disconnect and describe connections by id or by
 * room on every instance. The caller acts on its own connections and, with an
 * exchange, sends the request to every instance at once; each answers on the
 * caller's inbox. The caller waits for every instance it knows to be alive (at
 * most the timeout) and reports one outcome per instance.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import type * as Cluster from "../Cluster.js"
import type * as Errors from "../Errors.js"
import type * as Presence from "../Presence.js"
import * as wire from "./clusterWire.js"
import { refOf } from "./presence.js"
import { type Registry, targets } from "./registry.js"
import type { ServerConn } from "./serverConn.js"

/** What the remote side needs of the cluster agent. @internal */
export interface Host {
  readonly self: string
  readonly registry: Registry<ServerConn>
  readonly metadata: (conn: ServerConn) => Presence.Metadata | undefined
  /** the other instances heard from within the TTL */
  readonly live: () => ReadonlyArray<string>
  /** completes once the instance has had time to hear from the others after it started */
  readonly warm: Effect.Effect<void>
  /** publishes a request to every instance and waits (at most the timeout) for the broker to take it */
  readonly request: (payload: Uint8Array, timeout: Duration.Duration) => Effect.Effect<void, Errors.StackExchangeError>
  /** publishes an answer to an instance's inbox, without waiting */
  readonly answer: (instance: string, payload: Uint8Array) => void
  /** completes once this instance's broker subscriptions are confirmed */
  readonly settled: Effect.Effect<void>
  readonly fork: (effect: Effect.Effect<void>) => void
  readonly defaultTimeout: Duration.Duration
}

interface Operation<A> {
  readonly op: wire.WireOp
  readonly toWire: (value: A) => unknown
  readonly fromWire: (u: unknown) => A | undefined
  readonly combine: (values: ReadonlyArray<A>) => A
}

const appliedToWire = (a: Cluster.Applied): unknown => ({
  n: a.count,
  f: a.failures.map((f) => [f.ref, f.id, f.error, f.message])
})

const appliedOp = (op: wire.WireOp): Operation<Cluster.Applied> => ({
  op,
  toWire: appliedToWire,
  fromWire: (u) => {
    if (typeof u !== "object" || u === null) return undefined
    const { f, n } = u as { readonly n?: unknown; readonly f?: unknown }
    if (typeof n !== "number" || !Array.isArray(f)) return undefined
    const failures: Array<Cluster.ConnectionFailure> = []
    for (const x of f) {
      if (!Array.isArray(x) || x.length !== 4 || !x.every((s) => typeof s === "string")) return undefined
      failures.push({ ref: x[0], id: x[1], error: x[2], message: x[3] })
    }
    return { count: n, failures }
  },
  combine: (values) => ({
    count: values.reduce((n, v) => n + v.count, 0),
    failures: values.flatMap((v) => v.failures)
  })
})

const infoOp: Operation<ReadonlyArray<Cluster.ConnectionInfo>> = {
  op: { o: "i" },
  toWire: (infos) =>
    infos.map((i) => [i.ref, i.id, i.instance, i.namespaces.map((n) => [n.namespace, n.rooms]), i.metadata ?? null]),
  fromWire: (u) => {
    if (!Array.isArray(u)) return undefined
    const out: Array<Cluster.ConnectionInfo> = []
    for (const x of u) {
      if (!Array.isArray(x) || x.length !== 5) return undefined
      const [ref, id, instance, namespaces, metadata] = x
      if (typeof ref !== "string" || typeof id !== "string" || typeof instance !== "string") return undefined
      if (!Array.isArray(namespaces)) return undefined
      const list: Array<{ namespace: string; rooms: ReadonlyArray<string> }> = []
      for (const n of namespaces) {
        if (!Array.isArray(n) || typeof n[0] !== "string" || !Array.isArray(n[1])) return undefined
        list.push({ namespace: n[0], rooms: n[1].filter((r: unknown): r is string => typeof r === "string") })
      }
      out.push({
        ref,
        id,
        instance,
        namespaces: list,
        metadata: typeof metadata === "object" && metadata !== null ? metadata : undefined
      })
    }
    return out
  },
  combine: (values) => values.flat()
}

const toWireTarget = (target: Cluster.Target): wire.WireTarget =>
  target.id !== undefined
    ? target.namespace === undefined ? { i: target.id } : { i: target.id, n: target.namespace }
    : target.room === undefined
    ? { n: target.namespace }
    : { n: target.namespace, r: target.room }

interface Collector {
  readonly answers: Map<string, Cluster.Outcome<unknown>>
  readonly expected: ReadonlySet<string>
  readonly done: Deferred.Deferred<void>
  readonly fromWire: (u: unknown) => unknown
}

/** @internal */
export interface Remote {
  readonly joinRoom: (
    target: Cluster.NamespaceTarget,
    room: string,
    options?: Cluster.RemoteOptions
  ) => Effect.Effect<Cluster.Result<Cluster.Applied>>
  readonly leaveRoom: (
    target: Cluster.NamespaceTarget,
    room: string,
    options?: Cluster.RemoteOptions
  ) => Effect.Effect<Cluster.Result<Cluster.Applied>>
  readonly disconnect: (
    target: Cluster.Target,
    options?: Cluster.RemoteOptions & { readonly code?: number | undefined; readonly reason?: string | undefined }
  ) => Effect.Effect<Cluster.Result<Cluster.Applied>>
  readonly connectionsInfo: (
    target: Cluster.Target,
    options?: Cluster.RemoteOptions
  ) => Effect.Effect<Cluster.Result<ReadonlyArray<Cluster.ConnectionInfo>>>
  /** a request from another instance */
  readonly onRequest: (origin: string, request: Extract<wire.Wire, { k: "r" }>) => void
  /** an answer to one of this instance's requests */
  readonly onAnswer: (origin: string, answer: Extract<wire.Wire, { k: "a" }>) => void
}

/** @internal */
export const make = (host: Host): Remote => {
  const pending = new Map<number, Collector>()
  let nextCorrelation = 0

  // ---------------------------------------------------------------------------
  // acting on this instance's connections
  // ---------------------------------------------------------------------------

  const resolve = (target: wire.WireTarget): ReadonlyArray<ServerConn> => {
    if (target.i !== undefined) {
      const all = host.registry.withId(target.i)
      const namespace = target.n
      return namespace === undefined ? all : all.filter((conn) => conn.nsMap.has(namespace))
    }
    const members = targets(host.registry.snapshot, target.n ?? "", target.r ?? "", undefined)
    return members === undefined ? [] : Array.from(HashMap.values(members))
  }

  const info = (conn: ServerConn): Cluster.ConnectionInfo => ({
    ref: refOf(host.self, conn.key),
    id: conn.id,
    instance: host.self,
    namespaces: Array.from(
      conn.nsMap.values(),
      (ns) => ({ namespace: ns.namespace, rooms: Array.from(ns.roomMap.keys()) })
    ),
    metadata: host.metadata(conn)
  })

  /** Runs `f` on every target connection; counts the successes and lists the failures. */
  const each = (
    conns: ReadonlyArray<ServerConn>,
    f: (conn: ServerConn) => Effect.Effect<boolean, { readonly _tag: string; readonly message: string }>
  ): Effect.Effect<Cluster.Applied> =>
    Effect.map(
      Effect.forEach(conns, (conn) => Effect.either(f(conn)), { concurrency: 64 }),
      (results) => {
        let count = 0
        const failures: Array<Cluster.ConnectionFailure> = []
        results.forEach((result, i) => {
          if (Either.isRight(result)) {
            if (result.right) count++
          } else {
            const conn = conns[i]
            failures.push({
              ref: refOf(host.self, conn.key),
              id: conn.id,
              error: result.left._tag,
              message: result.left.message
            })
          }
        })
        return { count, failures }
      }
    )

  /** What this instance does for a request: its value on the wire, or why it could not act. */
  const act = (target: wire.WireTarget, op: wire.WireOp, budget: Duration.Duration): Effect.Effect<unknown, string> =>
    Effect.gen(function*() {
      const conns = resolve(target)
      const namespace = target.n
      switch (op.o) {
        case "i":
          return infoOp.toWire(conns.map(info))
        case "d": {
          for (const conn of conns) conn.unsafeClose(op.c, op.w)
          return appliedToWire({ count: conns.length, failures: [] })
        }
        case "j":
        case "l": {
          if (namespace === undefined) return yield* Effect.fail("joining or leaving a room needs a namespace")
          const started = Date.now()
          const applied = yield* each(conns, (conn) => {
            const ns = conn.nsMap.get(namespace)
            if (ns === undefined) return Effect.succeed(false)
            if (op.o === "j") return Effect.as(ns.joinRoom(op.r, { timeout: budget }), true)
            const room = ns.roomMap.get(op.r)
            return room === undefined ? Effect.succeed(false) : Effect.as(room.leave({ timeout: budget }), true)
          })
          // a broadcast made after the answer must find this instance subscribed to the room
          if (applied.count > 0) {
            const left = Math.max(0, Duration.toMillis(budget) - (Date.now() - started))
            yield* Effect.timeout(host.settled, left).pipe(Effect.ignore)
          }
          return appliedToWire(applied)
        }
      }
    }).pipe(
      Effect.catchAllDefect((defect) => Effect.fail(`defect: ${Cause.pretty(Cause.die(defect))}`))
    )

  // ---------------------------------------------------------------------------
  // the caller
  // ---------------------------------------------------------------------------

  const call = <A>(
    operation: Operation<A>,
    target: Cluster.Target,
    options: Cluster.RemoteOptions | undefined
  ): Effect.Effect<Cluster.Result<A>> =>
    Effect.gen(function*() {
      const timeout = Duration.decode(options?.timeout ?? host.defaultTimeout)
      const budget = Duration.millis(Math.max(1, Math.floor(Duration.toMillis(timeout) * 0.8)))
      const t = toWireTarget(target)
      yield* Effect.timeout(host.warm, timeout).pipe(Effect.ignore)
      const expected = new Set(host.live())
      const correlation = ++nextCorrelation
      const done = yield* Deferred.make<void>()
      const collector: Collector = { answers: new Map(), expected, done, fromWire: operation.fromWire }
      pending.set(correlation, collector)
      const local = yield* Effect.fork(Effect.either(act(t, operation.op, budget)))
      let unreachable: string | undefined
      if (expected.size > 0) {
        const started = Date.now()
        const sent = yield* Effect.exit(
          host.request(
            wire.encode({ k: "r", c: correlation, t, op: operation.op, ms: Duration.toMillis(budget) }),
            timeout
          )
        )
        if (Exit.isFailure(sent)) {
          unreachable = Cause.squash(sent.cause) instanceof Error
            ? (Cause.squash(sent.cause) as Error).message
            : "the stack exchange did not take the request"
        } else {
          const left = Math.max(0, Duration.toMillis(timeout) - (Date.now() - started))
          yield* Effect.timeout(Deferred.await(done), left).pipe(Effect.ignore)
        }
      }
      const mine = yield* Fiber.join(local)
      pending.delete(correlation)
      const outcomes: Array<Cluster.Outcome<A>> = []
      if (Either.isRight(mine)) {
        const value = operation.fromWire(mine.right)
        outcomes.push(
          value === undefined
            ? { _tag: "Failed", instance: host.self, reason: "malformed answer" }
            : { _tag: "Ok", instance: host.self, value }
        )
      } else {
        outcomes.push({ _tag: "Failed", instance: host.self, reason: mine.left })
      }
      for (const instance of expected) {
        const answer = collector.answers.get(instance) as Cluster.Outcome<A> | undefined
        outcomes.push(
          answer ?? (unreachable !== undefined
            ? { _tag: "Failed", instance, reason: unreachable }
            : { _tag: "TimedOut", instance })
        )
      }
      for (const [instance, answer] of collector.answers) {
        if (!expected.has(instance)) outcomes.push(answer as Cluster.Outcome<A>)
      }
      const values: Array<A> = []
      for (const outcome of outcomes) if (outcome._tag === "Ok") values.push(outcome.value)
      return {
        value: operation.combine(values),
        instances: outcomes,
        complete: outcomes.every((outcome) => outcome._tag === "Ok")
      }
    })

  const onRequest = (origin: string, request: Extract<wire.Wire, { k: "r" }>): void =>
    host.fork(
      Effect.flatMap(
        Effect.either(act(request.t, request.op, Duration.millis(request.ms))),
        (result) =>
          Effect.sync(() =>
            host.answer(
              origin,
              wire.encode(
                Either.isRight(result)
                  ? { k: "a", c: request.c, ok: result.right }
                  : { k: "a", c: request.c, err: result.left }
              )
            )
          )
      )
    )

  const onAnswer = (origin: string, answer: Extract<wire.Wire, { k: "a" }>): void => {
    const collector = pending.get(answer.c)
    if (collector === undefined) return
    if (answer.err !== undefined) {
      collector.answers.set(origin, { _tag: "Failed", instance: origin, reason: answer.err })
    } else {
      const value = collector.fromWire(answer.ok)
      collector.answers.set(
        origin,
        value === undefined
          ? { _tag: "Failed", instance: origin, reason: "malformed answer" }
          : { _tag: "Ok", instance: origin, value }
      )
    }
    for (const instance of collector.expected) if (!collector.answers.has(instance)) return
    Deferred.unsafeDone(collector.done, Effect.void)
  }

  return {
    joinRoom: (target, room, options) => call(appliedOp({ o: "j", r: room }), target, options),
    leaveRoom: (target, room, options) => call(appliedOp({ o: "l", r: room }), target, options),
    disconnect: (target, options) =>
      call(
        appliedOp({ o: "d", c: options?.code ?? 1000, w: options?.reason ?? "" }),
        target,
        options
      ),
    connectionsInfo: (target, options) => call(infoOp, target, options),
    onRequest,
    onAnswer
  }
}
