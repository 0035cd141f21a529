/**
 * The scenarios, as steps run against one freshly started server within one trial. Each step drives
 * the server and the load generator over their control channels and records one sample per scenario.
 */
import type { Config } from "./config.js"
import type { BroadcastCommand, ServerApi } from "./lib/host.js"
import type { Worker } from "./lib/ipc.js"
import type { Metric, Scenario } from "./lib/report.js"
import { monoMs, sleep } from "./lib/time.js"
import { room } from "./lib/wire.js"
import type { LoadApi, Target } from "./load/main.js"

export interface Context {
  readonly config: Config
  readonly server: Worker<ServerApi>
  readonly load: Worker<LoadApi>
  readonly target: Target
  readonly record: (scenario: Scenario, values: Record<string, number>) => void
  readonly warn: (message: string) => void
}

/** Body size of the fan-out, burst and echo scenarios. */
const messageSize = 100
const maxRoundMs = 60_000
/** A round is over when nothing arrived for this long after the server finished sending. */
const idleMs = 1000

const fanoutMetrics: ReadonlyArray<Metric> = [
  { key: "rate", label: "deliveries/s", unit: "rate", paired: true },
  { key: "cpuUs", label: "srv µs/dlv", unit: "us", paired: true },
  { key: "delivered", label: "delivered", unit: "pct", paired: false },
  { key: "p50Us", label: "p50 µs", unit: "us", paired: false },
  { key: "p99Us", label: "p99 µs", unit: "us", paired: false }
]

const perTurn = (n: number) => (n === 1 ? "1 broadcast per turn" : `${n} broadcasts per turn`)

const fanoutScenario = (clients: number, toRoom: boolean, command: BroadcastCommand): Scenario => ({
  id: `fanout-${toRoom ? "room" : "all"}-${clients}-${command.perTurn}`,
  title:
    `Fan-out to ${toRoom ? "a room of" : "all"} ${clients} clients, ${perTurn(command.perTurn)}, ${command.count} ` +
    `broadcasts of ${command.size} bytes`,
  metrics: fanoutMetrics
})

/** Broadcasts and counts what the clients received until all arrived or the flow stopped. */
const round = async (ctx: Context, command: BroadcastCommand, expected: number, quietMs = idleMs) => {
  await ctx.load.call("arm", { expected })
  const sent = await ctx.server.call("broadcast", command)
  const got = await ctx.load.call("deliveries", { idleMs: quietMs, maxMs: maxRoundMs, quietFromMs: sent.endMs })
  return {
    delivered: got.delivered,
    ms: got.lastMs - sent.startMs,
    fraction: got.delivered / expected,
    p50Us: got.p50Us,
    p99Us: got.p99Us
  }
}

const rate = (count: number, ms: number) => (count > 0 && ms > 0 ? (count / ms) * 1e3 : 0)

const perUnit = (cpuUs: number, count: number) => (count > 0 ? cpuUs / count : NaN)

/** A warm-up round of a tenth of the broadcasts, then the measured round with server CPU time. */
const fanout = async (ctx: Context, clients: number, command: BroadcastCommand) => {
  const warmup = Math.max(command.perTurn, Math.ceil(command.count / 10))
  await round(ctx, { ...command, count: warmup }, clients * warmup)
  const cpuStart = await ctx.server.call("cpu")
  const measured = await round(ctx, command, clients * command.count)
  const cpuUs = (await ctx.server.call("cpu")) - cpuStart
  return {
    rate: rate(measured.delivered, measured.ms),
    cpuUs: perUnit(cpuUs, measured.delivered),
    delivered: measured.fraction,
    p50Us: measured.p50Us,
    p99Us: measured.p99Us
  }
}

/**
 * A paced fan-out: one broadcast every `intervalMs`, well below what any server can send, so the
 * delivery latency is the server's own and not a backlog's, and CPU per delivery is compared at
 * the same load.
 */
const paced = async (ctx: Context) => {
  const { broadcasts, clients, intervalMs } = ctx.config.paced
  const command = { room: "", count: broadcasts, perTurn: 1, size: messageSize, intervalMs }
  await round(ctx, { ...command, count: Math.max(1, Math.ceil(broadcasts / 10)) }, clients)
  const cpuStart = await ctx.server.call("cpu")
  const measured = await round(ctx, command, clients * broadcasts)
  const cpuUs = (await ctx.server.call("cpu")) - cpuStart
  ctx.record({
    id: `fanout-paced-${clients}`,
    title: `Paced fan-out to all ${clients} clients, one broadcast every ${intervalMs} ms, ${broadcasts} broadcasts ` +
      `of ${messageSize} bytes: delivery latency`,
    metrics: [
      { key: "p50Us", label: "p50 µs", unit: "us", paired: true },
      { key: "p99Us", label: "p99 µs", unit: "us", paired: true },
      { key: "cpuUs", label: "srv µs/dlv", unit: "us", paired: true },
      { key: "delivered", label: "delivered", unit: "pct", paired: false }
    ]
  }, {
    p50Us: measured.p50Us,
    p99Us: measured.p99Us,
    cpuUs: perUnit(cpuUs, measured.delivered),
    delivered: measured.fraction
  })
}

const drainTimeoutMs = 10_000

/** Closes every client and waits until the server has let go of them too. */
const closeAll = async (ctx: Context) => {
  await ctx.load.call("closeAll")
  const deadline = monoMs() + drainTimeoutMs
  for (let open = await ctx.server.call("connections"); open > 0; open = await ctx.server.call("connections")) {
    if (monoMs() > deadline) return ctx.warn(`${open} server connections still open ${drainTimeoutMs} ms after close`)
    await sleep(50)
  }
}

const connect = (ctx: Context, count: number) => ctx.load.call("connect", { ...ctx.target, count })

/**
 * Fan-out groups, largest first so the idle-memory sample of the largest group sees a fresh process:
 * connect, measure idle memory (largest group only), join everyone to one room, then broadcast to
 * all, to the room and, in the burst group, in bursts.
 */
const fanoutGroups = async (ctx: Context) => {
  const groups = [...ctx.config.fanout].sort((a, b) => b.clients - a.clients)
  const baseline = await ctx.server.call("memory")
  for (const [index, { broadcasts, clients }] of groups.entries()) {
    await connect(ctx, clients)
    if (index === 0) {
      const idle = await ctx.server.call("memory")
      ctx.record({
        id: `memory-${clients}`,
        title: `Idle memory per connection at ${clients} connections (after GC, minus 0 connections)`,
        metrics: [
          { key: "rss", label: "RSS/conn", unit: "bytes", paired: true },
          { key: "heap", label: "heap/conn", unit: "bytes", paired: true }
        ]
      }, { rss: (idle.rss - baseline.rss) / clients, heap: (idle.heapUsed - baseline.heapUsed) / clients })
    }
    await ctx.load.call("join", { room })
    for (const target of ["", room]) {
      const command = { room: target, count: broadcasts, perTurn: 1, size: messageSize }
      ctx.record(fanoutScenario(clients, target !== "", command), await fanout(ctx, clients, command))
    }
    if (clients === ctx.config.burst.clients) {
      const command = {
        room: "",
        count: ctx.config.burst.broadcasts,
        perTurn: ctx.config.burst.perTurn,
        size: messageSize
      }
      ctx.record(fanoutScenario(clients, false, command), await fanout(ctx, clients, command))
    }
    if (clients === ctx.config.paced.clients) await paced(ctx)
    await closeAll(ctx)
  }
}

/** Each of n clients keeps one echo request in flight; a short warm-up run comes first. */
const echo = async (ctx: Context) => {
  const { clients, durationMs } = ctx.config.echo
  await connect(ctx, Math.max(...clients))
  for (const n of clients) {
    await ctx.load.call("echo", { clients: n, durationMs: durationMs / 5 })
    const cpuStart = await ctx.server.call("cpu")
    const run = await ctx.load.call("echo", { clients: n, durationMs })
    const cpuUs = (await ctx.server.call("cpu")) - cpuStart
    ctx.record({
      id: `echo-${n}`,
      title: `Ask/echo round trip, ${n} clients with one request each in flight, 100-byte body`,
      metrics: [
        { key: "rate", label: "replies/s", unit: "rate", paired: true },
        { key: "p50Us", label: "p50 µs", unit: "us", paired: true },
        { key: "p99Us", label: "p99 µs", unit: "us", paired: true },
        { key: "cpuUs", label: "srv µs/reply", unit: "us", paired: true }
      ]
    }, {
      rate: rate(run.replies, run.elapsedMs),
      p50Us: run.p50Us,
      p99Us: run.p99Us,
      cpuUs: perUnit(cpuUs, run.replies)
    })
  }
  await closeAll(ctx)
}

/**
 * Readers' throughput with one extra client that stopped reading, then without it. Run first in a
 * fresh server, so the RSS growth is not hidden by memory the allocator kept from earlier work.
 */
const paused = async (ctx: Context) => {
  const { broadcasts, readers, size } = ctx.config.paused
  const command = { room: "", count: broadcasts, perTurn: 1, size }
  await connect(ctx, readers + 1)
  await ctx.load.call("pause", { index: readers })
  const before = await ctx.server.call("memory")
  const withPaused = await fanout(ctx, readers, command)
  const after = await ctx.server.call("memory")
  await closeAll(ctx)
  await connect(ctx, readers)
  const alone = await round(ctx, command, readers * broadcasts)
  ctx.record({
    id: `paused-${readers}`,
    title: `One paused client among ${readers} readers, ${broadcasts} broadcasts of ${size} bytes, 1 per turn`,
    metrics: [
      { key: "rate", label: "readers dlv/s", unit: "rate", paired: true },
      { key: "vsUnpaused", label: "vs unpaused", unit: "ratio", paired: false },
      { key: "delivered", label: "delivered", unit: "pct", paired: false },
      { key: "rssGrowth", label: "RSS growth", unit: "bytes", paired: false },
      { key: "heapGrowth", label: "heap growth", unit: "bytes", paired: false }
    ]
  }, {
    rate: withPaused.rate,
    vsUnpaused: withPaused.rate / rate(alone.delivered, alone.ms),
    delivered: withPaused.delivered,
    rssGrowth: after.rss - before.rss,
    heapGrowth: after.heapUsed - before.heapUsed
  })
  await closeAll(ctx)
}

/** Connect (handshake and namespace connect) and drop, as fast as 50 parallel loops go. */
const churn = async (ctx: Context) => {
  const cpuStart = await ctx.server.call("cpu")
  const run = await ctx.load.call("churn", { ...ctx.target, durationMs: ctx.config.churnMs })
  await closeAll(ctx)
  const cpuUs = (await ctx.server.call("cpu")) - cpuStart
  ctx.record({
    id: "churn",
    title: "Connection churn: open, handshake, connect the namespace, drop",
    metrics: [
      { key: "rate", label: "connects/s", unit: "rate", paired: true },
      { key: "cpuUs", label: "srv µs/conn", unit: "us", paired: true }
    ]
  }, { rate: rate(run.connects, run.elapsedMs), cpuUs: perUnit(cpuUs, run.connects) })
}

export type Phases = ReadonlyArray<ReadonlyArray<(ctx: Context) => Promise<void>>>

/** Each phase runs in its own freshly started server process, because both measure memory first. */
export const phases: Phases = [
  [fanoutGroups, echo, churn],
  [paused]
]

/** What a typed contract costs shows in fan-out (an encode per broadcast) and ask/echo (a decode and an encode). */
export const contractPhases: Phases = [[fanoutGroups, echo]]

/** A write coalescing window shows in fan-out: deliveries/s, CPU per delivery, the latency it adds. */
export const fanoutPhases: Phases = [[fanoutGroups]]

/** Connection setup through the endpoint mounted on an HttpRouter: the churn alone. */
export const churnPhases: Phases = [[churn]]

/** What a recoverable room costs shows in the fan-out into the room (stored, framed with its position). */
export const historyPhases: Phases = [[fanoutGroups]]
