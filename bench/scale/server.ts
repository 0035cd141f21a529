/**
 * One instance of the multi-process cluster bench: effect-neffos from a compiled `dist/` (this tree's,
 * or another build's with `--dist`, for before/after runs), optionally sharing a Redis or NATS broker
 * with the other instances through a stack exchange. Clients pick their connection id with `?id=`.
 *
 *   node --import tsx bench/scale/server.ts <dist> <none|redis|nats> <broker url> <prefix>
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import type { StackExchange as StackExchangeTag } from "../../src/StackExchange.js"
import { processProbes } from "../lib/host.js"
import { serve } from "../lib/ipc.js"
import { monoMs, nextTurn, quantile } from "../lib/time.js"
import { broadcastBody, broadcastEvent, namespace } from "../lib/wire.js"

const [dist, backend, brokerUrl, prefix] = process.argv.slice(2)
if (dist === undefined || backend === undefined) throw new Error("usage: server.ts <dist> <backend> <url> <prefix>")

const load = <A>(module: string) => import(pathToFileURL(path.join(dist, module)).href) as Promise<A>
// typed by this tree's sources; an older build (`--dist`) is used through the same small surface only
const { Events, Server } = await load<typeof import("../../src/index.js")>("index.js")
const StackExchange = await load<typeof import("../../src/StackExchange.js")>("StackExchange.js")
const NodeServer = await load<typeof import("../../src/NodeServer.js")>("NodeServer.js")

const exchange = async (): Promise<Layer.Layer<StackExchangeTag, unknown> | undefined> => {
  if (backend === "redis") {
    const Redis = await load<typeof import("../../src/RedisStackExchange.js")>("RedisStackExchange.js")
    return Redis.layer({ url: brokerUrl, prefix })
  }
  if (backend === "nats") {
    const Nats = await load<typeof import("../../src/NatsStackExchange.js")>("NatsStackExchange.js")
    return Nats.layer({ servers: brokerUrl, prefix })
  }
  return undefined
}

/** The id a client asks for in its URL (`?id=`), else a random one. */
const idOf = (url: string): string => {
  const i = url.indexOf("?id=")
  return i === -1 ? crypto.randomUUID() : decodeURIComponent(url.slice(i + 4))
}

const events = Events.namespaces({ [namespace]: {} })
const server = NodeServer.layer({ port: 0, host: "127.0.0.1" }).pipe(
  Layer.provideMerge(
    Server.layer({
      events,
      idGenerator: (request) => idOf(request.url),
      // the bench's own clients never go idle long enough to need pings
      pingInterval: 0
    })
  )
)
const ex = await exchange()
const live = ex === undefined ? server : server.pipe(Layer.provideMerge(ex))

const runtime = ManagedRuntime.make(live)
const [srv, node] = await runtime.runPromise(Effect.all([Server.Server, NodeServer.NodeServer]))
const settledEffect = Effect.serviceOption(StackExchange.StackExchange).pipe(
  Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (e) => e.settled }))
)

/** Broadcasts to the namespace; a failure (the broker is down: the local part is done) is counted, not thrown. */
const broadcastOnce = (seq: number, size: number) =>
  runtime.runPromise(
    srv.broadcast({ namespace, event: broadcastEvent, body: broadcastBody(size, seq) }).pipe(
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    )
  )

interface TargetedRun {
  readonly kind: "send" | "ask"
  readonly ids: ReadonlyArray<string>
  readonly durationMs: number
  readonly concurrency: number
  readonly maxOps: number
}

const api = {
  info: () => ({ port: node.port, path: node.path, instance: srv.instanceId }),
  /** Waits until the exchange's subscriptions are confirmed by the broker. */
  settled: () => runtime.runPromise(settledEffect),
  /** `count` broadcasts to the whole namespace, `perTurn` of them per event-loop turn. */
  broadcast: async ({ count, perTurn, size }: { count: number; perTurn: number; size: number }) => {
    const startMs = monoMs()
    let failed = 0
    for (let sent = 0; sent < count; await nextTurn()) {
      const turn: Array<Promise<boolean>> = []
      for (let k = 0; k < perTurn && sent < count; k++, sent++) turn.push(broadcastOnce(sent, size))
      for (const ok of await Promise.all(turn)) if (!ok) failed++
    }
    return { startMs, endMs: monoMs(), failed }
  },
  /**
   * A steady stream: broadcast number `seq` every `intervalMs` for `durationMs`. Returns when each was
   * made and whether the exchange took it (false while the broker is down).
   */
  stream: async ({ intervalMs, durationMs, size }: { intervalMs: number; durationMs: number; size: number }) => {
    const startMs = monoMs()
    const sent: Array<{ seq: number; atMs: number; ok: boolean }> = []
    const max = Math.ceil(durationMs / intervalMs) + 1
    for (let seq = 0; seq < max && monoMs() - startMs < durationMs; seq++) {
      const atMs = monoMs()
      sent.push({ seq, atMs, ok: await broadcastOnce(seq, size) })
      const next = startMs + (seq + 1) * intervalMs
      const wait = next - monoMs()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    }
    return sent
  },
  /**
   * `concurrency` loops each sending to (or asking) a random id of `ids` (connections of other instances)
   * and waiting for the outcome, for `durationMs`: rate and latency of the whole operation.
   */
  targeted: async ({ concurrency, durationMs, ids, kind, maxOps }: TargetedRun) => {
    const latencies = new Float64Array(maxOps)
    let ops = 0
    let errors = 0
    let firstError: string | undefined
    const startMs = monoMs()
    const deadline = startMs + durationMs
    const one = (id: string) =>
      kind === "send"
        ? srv.send(id, { namespace, event: broadcastEvent, body: "s" })
        : Effect.asVoid(srv.ask({ to: id, namespace, event: "ping", body: "p" }, { timeout: "5 seconds" }))
    const lane = async () => {
      while (monoMs() < deadline && ops + errors < maxOps) {
        const id = ids[Math.floor(Math.random() * ids.length)]
        const t0 = monoMs()
        const exit = await runtime.runPromiseExit(one(id))
        if (exit._tag === "Success") latencies[ops++] = monoMs() - t0
        else {
          errors++
          firstError ??= String(exit.cause)
        }
      }
    }
    await Promise.all(Array.from({ length: concurrency }, lane))
    const elapsedMs = monoMs() - startMs
    const sorted = latencies.subarray(0, ops).sort()
    return { ops, errors, firstError, elapsedMs, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99) }
  },
  ...processProbes,
  connections: () => runtime.runPromise(srv.connectionCount)
}

export type ScaleServerApi = typeof api

// exit at once (a CPU profile is written on exit): the broker forgets this instance's subscriptions with
// its connections, and the prefix is the run's own
process.on("SIGTERM", () => process.exit(0))
serve(api)
