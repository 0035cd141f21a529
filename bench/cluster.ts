/**
 * Two-instance fan-out through a stack exchange: one server broadcasts to a room whose members are
 * split between its own instance and a second one, and the deliveries per second are measured on each
 * side, next to the same fan-out on a single instance without an exchange.
 *
 * Servers, exchange clients and websocket clients share this process (and its CPU), so the absolute
 * numbers are lower than on separate machines; the ratio between the sides is the point.
 *
 *   npx tsx bench/cluster.ts [--nats] [--clients N] [--broadcasts N]
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import WebSocket from "ws"
import * as Events from "../src/Events.js"
import * as NatsStackExchange from "../src/NatsStackExchange.js"
import * as NodeServer from "../src/NodeServer.js"
import * as RedisStackExchange from "../src/RedisStackExchange.js"
import * as Server from "../src/Server.js"
import * as StackExchange from "../src/StackExchange.js"
import { monoMs } from "./lib/time.js"
import { broadcastBody, broadcastEvent, namespace, room } from "./lib/wire.js"

export interface ClusterOptions {
  readonly backend?: "redis" | "nats" | undefined
  /** websocket clients in the room on each instance; default 100 */
  readonly clientsPerInstance?: number | undefined
  /** broadcasts per measurement; default 200 */
  readonly broadcasts?: number | undefined
  /** body bytes; default 100 */
  readonly size?: number | undefined
  /** `redis://...` or NATS servers; defaults to the local brokers */
  readonly url?: string | undefined
  /** most a measurement may take; default 30 s */
  readonly maxMs?: number | undefined
}

export interface Side {
  readonly delivered: number
  readonly expected: number
  readonly ms: number
  /** deliveries per second, from the first broadcast to the last delivery on this side */
  readonly rate: number
}

export interface ClusterResult {
  readonly backend: "redis" | "nats"
  readonly clientsPerInstance: number
  readonly broadcasts: number
  /** one instance, no exchange */
  readonly single: Side
  /** two instances: the publishing instance's own clients */
  readonly sameInstance: Side
  /** two instances: the other instance's clients, through the broker */
  readonly otherInstance: Side
}

const events = Events.namespaces({ [namespace]: {} })

interface Group {
  readonly expected: number
  delivered: number
  lastMs: number
  readonly done: Promise<void>
  readonly resolve: () => void
}

const group = (expected: number): Group => {
  let resolve!: () => void
  const done = new Promise<void>((r) => (resolve = r))
  return { expected, delivered: 0, lastMs: 0, done, resolve }
}

/** A raw neffos client in the room that counts broadcast frames into `counter`. */
const member = (url: string, counter: { current: Group | undefined }) =>
  Effect.acquireRelease(
    Effect.async<WebSocket, Error>((resume) => {
      const ws = new WebSocket(url)
      let step = 0
      ws.on("open", () => ws.send("M"))
      ws.on("error", (error) => resume(Effect.fail(error)))
      ws.on("message", (data: Buffer) => {
        if (step === 0) {
          step = 1
          return ws.send(`$c;${namespace};;_OnNamespaceConnect;0;0;`)
        }
        if (step === 1) {
          step = 2
          return ws.send(`$j;${namespace};${room};_OnRoomJoin;0;0;`)
        }
        if (step === 2) {
          step = 3
          return resume(Effect.succeed(ws))
        }
        const g = counter.current
        if (g === undefined || data.length === 0) return
        g.delivered++
        g.lastMs = monoMs()
        if (g.delivered === g.expected) g.resolve()
      })
    }),
    (ws) => Effect.sync(() => ws.terminate())
  )

const instance = (exchange: Layer.Layer<StackExchange.StackExchange, unknown> | undefined) =>
  Effect.gen(function*() {
    const server = Server.layer({ events, outbox: { capacity: 4096 } })
    const built = exchange === undefined
      ? NodeServer.layer({ port: 0 }).pipe(Layer.provideMerge(server))
      : NodeServer.layer({ port: 0 }).pipe(Layer.provideMerge(server), Layer.provideMerge(exchange))
    const context = yield* Layer.build(built)
    return {
      server: Context.get(context, Server.Server),
      url: Context.get(context, NodeServer.NodeServer).url,
      settled: Effect.flatMap(
        Effect.provide(Effect.serviceOption(StackExchange.StackExchange), context),
        Option.match({ onNone: () => Effect.void, onSome: (exchange) => exchange.settled })
      )
    }
  })

const measure = (
  publisher: Server.Server,
  sides: ReadonlyArray<{ readonly counter: { current: Group | undefined }; readonly clients: number }>,
  broadcasts: number,
  body: string,
  maxMs: number
) =>
  Effect.gen(function*() {
    const groups = sides.map((side) => {
      const g = group(side.clients * broadcasts)
      side.counter.current = g
      return g
    })
    const startMs = monoMs()
    for (let i = 0; i < broadcasts; i++) {
      yield* publisher.broadcast({ namespace, room, event: broadcastEvent, body })
    }
    yield* Effect.timeoutOption(Effect.promise(() => Promise.all(groups.map((g) => g.done))), maxMs)
    for (const side of sides) side.counter.current = undefined
    return groups.map((g): Side => {
      const ms = g.lastMs - startMs
      return { delivered: g.delivered, expected: g.expected, ms, rate: g.delivered > 0 ? g.delivered / ms * 1e3 : 0 }
    })
  })

const clients = (url: string, count: number, counter: { current: Group | undefined }) =>
  Effect.forEach(Array.from({ length: count }), () => member(url, counter), { concurrency: 32, discard: true })

const run = (options: ClusterOptions): Effect.Effect<ClusterResult, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const backend = options.backend ?? "redis"
    const perInstance = options.clientsPerInstance ?? 100
    const broadcasts = options.broadcasts ?? 200
    const body = broadcastBody(options.size ?? 100)
    const maxMs = options.maxMs ?? 30_000
    const prefix = `bench-${process.pid}-${Date.now().toString(36)}`
    const exchange = () =>
      backend === "nats"
        ? NatsStackExchange.layer({ servers: options.url ?? "127.0.0.1:4222", prefix })
        : RedisStackExchange.layer({ url: options.url ?? "redis://127.0.0.1:6379", prefix })

    // warm-up rounds are a tenth of the measured ones
    const warmup = Math.max(1, Math.ceil(broadcasts / 10))

    const single = yield* Effect.scoped(Effect.gen(function*() {
      const only = yield* instance(undefined)
      const counter = { current: undefined as Group | undefined }
      yield* clients(only.url, 2 * perInstance, counter)
      yield* measure(only.server, [{ counter, clients: 2 * perInstance }], warmup, body, maxMs)
      const [side] = yield* measure(only.server, [{ counter, clients: 2 * perInstance }], broadcasts, body, maxMs)
      return side
    }))

    const a = yield* instance(exchange())
    const b = yield* instance(exchange())
    const onA = { current: undefined as Group | undefined }
    const onB = { current: undefined as Group | undefined }
    yield* clients(a.url, perInstance, onA)
    yield* clients(b.url, perInstance, onB)
    yield* a.settled
    yield* b.settled
    const sides = [{ counter: onA, clients: perInstance }, { counter: onB, clients: perInstance }]
    yield* measure(a.server, sides, warmup, body, maxMs)
    const [sameInstance, otherInstance] = yield* measure(a.server, sides, broadcasts, body, maxMs)
    return { backend, clientsPerInstance: perInstance, broadcasts, single, sameInstance, otherInstance }
  })

/**
 * Runs the two-instance fan-out once and returns deliveries/s on the publishing instance, on the other
 * instance, and on a single instance without an exchange.
 */
export const runCluster = (options: ClusterOptions = {}): Promise<ClusterResult> =>
  Effect.runPromise(Effect.scoped(run(options)))

const line = (label: string, side: Side) =>
  `  ${label.padEnd(34)} ${Math.round(side.rate).toLocaleString("en-US").padStart(12)} deliveries/s` +
  `  (${side.delivered}/${side.expected} in ${side.ms.toFixed(0)} ms)`

export const printCluster = (result: ClusterResult, log: (line: string) => void = console.log) => {
  log(
    `Two-instance fan-out through ${result.backend === "nats" ? "NATS" : "Redis"}: ${result.broadcasts} broadcasts ` +
      `to a room of ${result.clientsPerInstance} clients on each instance`
  )
  log(line("single instance, no exchange", result.single))
  log(line("two instances, same instance", result.sameInstance))
  log(line("two instances, other instance", result.otherInstance))
}

const arg = (name: string) => {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : Number(process.argv[i + 1])
}

if (import.meta.url === new URL(process.argv[1] ?? "", "file://").href) {
  printCluster(
    await runCluster({
      backend: process.argv.includes("--nats") ? "nats" : "redis",
      clientsPerInstance: arg("--clients"),
      broadcasts: arg("--broadcasts")
    })
  )
}
