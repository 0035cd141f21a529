/**
 * The admin dashboard's data: a sample of this instance every `interval`
 * (connections, namespaces, the largest rooms, message rates, ask and handler
 * latency percentiles, drops, slow consumers, the broker), a ring of cluster
 * points so that a page opened now has history, and the other instances'
 * summaries, which each instance publishes through the stack exchange every
 * `heartbeat` and which are dropped `expiry` after the last one. Counts only:
 * never a payload.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Admin from "../Admin.js"
import type * as Server from "../Server.js"
import { durationBoundaries } from "./metrics.js"
import type { Buckets } from "./observe.js"
import { type OutboxSample, type ServerView, views } from "./serverObserve.js"

/** @internal */
export const AdminTag = Context.GenericTag<Admin.Admin>("effect-neffos/Admin")

const defaults = {
  interval: Duration.seconds(1),
  history: 600,
  heartbeat: Duration.seconds(3),
  expiry: Duration.seconds(7),
  topRooms: 10
}

/** Percentiles in milliseconds of what `now` counted since `before`; null without any. */
const percentiles = (
  now: ReadonlyArray<number>,
  before: ReadonlyArray<number>
): Admin.Latency => {
  const counts = now.map((n, i) => n - before[i])
  const total = counts.reduce((a, b) => a + b, 0)
  const at = (q: number): number | null => {
    if (total === 0) return null
    const rank = q * total
    let seen = 0
    for (let i = 0; i < counts.length; i++) {
      if (counts[i] === 0) continue
      if (seen + counts[i] >= rank) {
        const lower = i === 0 ? 0 : durationBoundaries[i - 1]
        const upper = i < durationBoundaries.length ? durationBoundaries[i] : durationBoundaries[i - 1]
        const within = (rank - seen) / counts[i]
        return Math.round((lower + (upper - lower) * within) * 1e6) / 1e3
      }
      seen += counts[i]
    }
    return null
  }
  return { count: total, p50: at(0.5), p90: at(0.9), p99: at(0.99) }
}

const copy = (buckets: Buckets): ReadonlyArray<number> => buckets.counts.slice()

/** The namespaces and the `top` largest rooms of the index. */
const membership = (view: ServerView, top: number) => {
  const namespaces: Array<Admin.NamespaceSummary> = []
  let rooms: Array<Admin.RoomSummary> = []
  for (const [name, index] of HashMap.entries(view.registry.snapshot.namespaces)) {
    namespaces.push({ name, connections: HashMap.size(index.conns), rooms: HashMap.size(index.rooms) })
    for (const [room, members] of HashMap.entries(index.rooms)) {
      rooms.push({ namespace: name, room, members: HashMap.size(members) })
      if (rooms.length > top * 4) {
        rooms.sort((a, b) => b.members - a.members)
        rooms = rooms.slice(0, top)
      }
    }
  }
  namespaces.sort((a, b) => a.name.localeCompare(b.name))
  rooms.sort((a, b) => b.members - a.members || a.room.localeCompare(b.room))
  return { namespaces, rooms: rooms.slice(0, top) }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const isSummary = (u: unknown): u is Admin.InstanceSummary =>
  typeof u === "object" && u !== null && typeof (u as Admin.InstanceSummary).instance === "string" &&
  typeof (u as Admin.InstanceSummary).connections === "number"

/** @internal */
export const make = (
  server: Server.Server,
  options?: Admin.Options
): Effect.Effect<Admin.Admin, never, Scope.Scope> =>
  Effect.gen(function*() {
    const view = views.get(server)
    if (view === undefined) return yield* Effect.dieMessage("effect-neffos/Admin: not a server of this package")
    const interval = Duration.decode(options?.interval ?? defaults.interval)
    const heartbeat = Duration.decode(options?.heartbeat ?? defaults.heartbeat)
    const expiry = Duration.toMillis(options?.expiry ?? defaults.expiry)
    const capacity = Math.max(2, options?.history ?? defaults.history)
    const top = Math.max(1, options?.topRooms ?? defaults.topRooms)
    const observer = view.observer

    const history: Array<Admin.Point> = []
    const remote = new Map<string, { readonly summary: Admin.InstanceSummary; readonly receivedAt: number }>()
    const updates = yield* PubSub.sliding<Admin.Update>(16)

    let previous = {
      at: Date.now(),
      received: observer.received,
      sent: observer.sent,
      asks: copy(observer.askTimes),
      handlers: copy(observer.handlerTimes)
    }
    let latest: Admin.InstanceSummary | undefined

    const summarize = (): Admin.InstanceSummary => {
      observer.flush()
      const now = Date.now()
      const seconds = Math.max(0.001, (now - previous.at) / 1000)
      const outboxes: OutboxSample = view.measure()
      const { namespaces, rooms } = membership(view, top)
      const asks = copy(observer.askTimes)
      const handlers = copy(observer.handlerTimes)
      const summary: Admin.InstanceSummary = {
        instance: view.instanceId,
        at: now,
        startedAt: view.startedAt,
        metrics: observer.metrics,
        connections: HashMap.size(view.registry.snapshot.all),
        namespaces,
        rooms,
        received: observer.received,
        sent: observer.sent,
        receivedBytes: observer.receivedBytes,
        sentBytes: observer.sentBytes,
        receivedRate: Math.round((observer.received - previous.received) / seconds),
        sentRate: Math.round((observer.sent - previous.sent) / seconds),
        asks: percentiles(asks, previous.asks),
        handlers: percentiles(handlers, previous.handlers),
        accepted: observer.accepted,
        dropped: observer.dropped,
        slowConsumers: observer.slowConsumers,
        strictWaits: observer.strictWaits,
        outboxHighWater: outboxes.highWater,
        fullestOutboxes: outboxes.fullest,
        broker: observer.brokerUp === undefined ? "none" : observer.brokerUp ? "up" : "down"
      }
      previous = { at: now, received: observer.received, sent: observer.sent, asks, handlers }
      return summary
    }

    const instances = (): Array<Admin.InstanceSummary> => {
      const now = Date.now()
      for (const [origin, entry] of remote) {
        if (now - entry.receivedAt > expiry) remote.delete(origin)
      }
      const out = latest === undefined ? [] : [latest]
      for (const entry of remote.values()) out.push(entry.summary)
      return out
    }

    const sample = Effect.suspend(() => {
      latest = summarize()
      const all = instances()
      const point: Admin.Point = {
        at: latest.at,
        connections: all.reduce((n, i) => n + i.connections, 0),
        receivedRate: all.reduce((n, i) => n + i.receivedRate, 0),
        sentRate: all.reduce((n, i) => n + i.sentRate, 0),
        askP50: latest.asks.p50,
        askP99: latest.asks.p99,
        byInstance: Object.fromEntries(all.map((i) => [i.instance, i.connections]))
      }
      history.push(point)
      if (history.length > capacity) history.splice(0, history.length - capacity)
      return PubSub.publish(updates, { point, instances: all })
    })

    const listener = (origin: string, payload: Uint8Array) => {
      try {
        const summary: unknown = JSON.parse(decoder.decode(payload))
        if (isSummary(summary) && summary.instance === origin) remote.set(origin, { summary, receivedAt: Date.now() })
      } catch {
        // another version's or a broken summary: not shown
      }
    }
    view.infoListeners.add(listener)
    yield* Effect.addFinalizer(() => Effect.sync(() => view.infoListeners.delete(listener)))

    yield* sample
    yield* Effect.forkScoped(Effect.repeat(Effect.delay(sample, interval), Schedule.forever))
    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.sync(() => {
          if (latest !== undefined) view.publishInfo(encoder.encode(JSON.stringify(latest)))
        }),
        Schedule.spaced(heartbeat)
      )
    )

    const state: Effect.Effect<Admin.State> = Effect.sync(() => ({
      self: view.instanceId,
      interval: Duration.toMillis(interval),
      instances: instances(),
      history: history.slice()
    }))

    const admin: Admin.Admin = {
      state,
      // subscribed before the state is read: no update falls between them
      events: Stream.unwrapScoped(
        Effect.flatMap(PubSub.subscribe(updates), (subscription) =>
          Effect.map(state, (now) =>
            Stream.concat(
              Stream.succeed<Admin.Event>({ _tag: "State", state: now }),
              Stream.map(Stream.fromQueue(subscription), (update): Admin.Event => ({ _tag: "Update", update }))
            )))
      )
    }
    return admin
  })
