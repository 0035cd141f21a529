/**
 * The multi-process cluster bench (`npm run bench:cluster`): effect-neffos instances, each its own
 * Node process running the compiled package, sharing Redis or NATS through a stack exchange, with
 * load-generator processes holding the clients. Scenarios:
 *
 *   fanout   3 instances × 5,000 clients, one broadcast to all per turn from one instance, next to a
 *            single instance with 5,000 clients (deliveries/s and server CPU per delivery);
 *   batch    a burst of broadcasts from one instance to a few clients on another: cross-instance
 *            deliveries/s, for this build and, with `--before <dist>`, another one (issue 17 item 5);
 *   targeted `send` and `ask` to ids connected to another instance: rate, p50 / p99;
 *   idle     100,000 idle clients over 6 instances: memory per connection, time to connect them, and
 *            one broadcast to all of them: time until the last client has it, and how many it missed;
 *   restart  a private broker killed and restarted during a steady cross-instance stream: how long
 *            delivery stopped, and what was lost (at most once: what was published meanwhile is).
 *
 *   npm run bench:cluster [-- --smoke] [--only=fanout,batch,targeted,idle,restart] [--backends=redis,nats]
 *                         [--dist <dir>] [--before <dir>] [--idle-backend=redis|nats] [--idle-clients=N]
 *                         [--redis-port=6379] [--nats-port=4222] [--profile]
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { killAll, spawnWorker, type Worker } from "../lib/ipc.js"
import { machine } from "../lib/machine.js"
import { median, monoMs, sleep } from "../lib/time.js"
import { type Backend, hasBinary, killBrokers, privateBroker, probe } from "./broker.js"
import type { ScaleLoadApi } from "./load.js"
import type { ScaleServerApi } from "./server.js"

// ---------------------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------------------

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const option = (name: string): string | undefined => {
  const eq = argv.find((a) => a.startsWith(`--${name}=`))
  if (eq !== undefined) return eq.slice(name.length + 3)
  const i = argv.indexOf(`--${name}`)
  return i === -1 ? undefined : argv[i + 1]
}
const list = (name: string, all: ReadonlyArray<string>) => option(name)?.split(",") ?? all

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const smoke = flag("smoke")
const dist = path.resolve(option("dist") ?? path.join(root, "dist"))
const before = option("before") === undefined ? undefined : path.resolve(option("before")!)
const scenarios = list("only", ["fanout", "batch", "targeted", "idle", "restart"])
const backends = list("backends", ["redis", "nats"]) as Array<Backend>
const idleBackend = (option("idle-backend") ?? "redis") as Backend
/** `--profile`: every instance writes a CPU profile (`node --cpu-prof`) to .prof/cluster when it stops. */
const profileDir = flag("profile") ? path.join(root, ".prof", "cluster") : undefined

/** Counts sized for 2 cores and 15 minutes in all; `--smoke` only checks that everything runs. */
const sizes = smoke
  ? {
    fanout: { instances: 3, clients: 300, broadcasts: 5, trials: 1 },
    batch: { clients: 5, broadcasts: 1000, perTurn: 20, trials: 1 },
    targeted: { clients: 20, durationMs: 500, concurrency: 8 },
    idle: { instances: 6, clients: 1200 },
    restart: { clients: 10, intervalMs: 10, durationMs: 3000, killAtMs: 800, downMs: 500 }
  }
  : {
    fanout: { instances: 3, clients: 5000, broadcasts: 20, trials: 2 },
    batch: { clients: 10, broadcasts: 10_000, perTurn: 20, trials: 3 },
    targeted: { clients: 100, durationMs: 3000, concurrency: 16 },
    idle: { instances: 6, clients: Number(option("idle-clients") ?? 100_000) },
    restart: { clients: 50, intervalMs: 10, durationMs: 8000, killAtMs: 2000, downMs: 1000 }
  }

/** The whole run must end within 15 minutes; this is the hard stop. */
const runDeadlineMs = 14.5 * 60_000

// ---------------------------------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------------------------------

const facts = machine()
const cpuOf = (i: number) => (facts.pinned ? i % 2 : undefined)

const cleanup = () => {
  killAll()
  killBrokers()
}
process.on("exit", cleanup)
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    console.log(`\n${signal}: stopping every child`)
    process.exit(130)
  })
}
const deadline = setTimeout(() => {
  console.log(`\nthe run passed its ${runDeadlineMs / 60_000} minute deadline: stopping every child`)
  process.exit(1)
}, runDeadlineMs)
deadline.unref()

interface Instance {
  readonly worker: Worker<ScaleServerApi>
  readonly url: string
}

let prefixCounter = 0
const freshPrefix = () => `bc${process.pid.toString(36)}x${(prefixCounter++).toString(36)}`

/** Starts `n` instances on `backend` (none: no exchange), spread over the CPUs from `cpuOffset`. */
const startInstances = async (
  n: number,
  backend: Backend | "none",
  url: string,
  options: { readonly dist?: string; readonly cpuOffset?: number } = {}
): Promise<Array<Instance>> => {
  const prefix = freshPrefix()
  const workers = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      spawnWorker<ScaleServerApi>("scale/server.ts", {
        cpu: cpuOf(i + (options.cpuOffset ?? 0)),
        nodeFlags: profileDir === undefined
          ? ["--expose-gc"]
          : ["--expose-gc", "--cpu-prof", `--cpu-prof-dir=${path.join(profileDir, `${prefix}-${i}`)}`],
        args: [options.dist ?? dist, backend, url, prefix]
      }))
  )
  return Promise.all(workers.map(async (worker) => {
    const info = await worker.call("info")
    return { worker, url: `ws://127.0.0.1:${info.port}${info.path}` }
  }))
}

/** Load generators start on the other CPU than the instance of the same index. */
const startLoads = (n: number): Promise<Array<Worker<ScaleLoadApi>>> =>
  Promise.all(Array.from({ length: n }, (_, i) => spawnWorker<ScaleLoadApi>("scale/load.ts", { cpu: cpuOf(i + 1) })))

const stopAll = (workers: ReadonlyArray<{ readonly stop: () => Promise<void> }>) =>
  Promise.all(workers.map((w) => w.stop()))

/** Connects `count` clients of `load` to `url`, in calls of at most 4,000 (each call has a 2-minute limit). */
const connectClients = async (load: Worker<ScaleLoadApi>, url: string, count: number, idPrefix: string) => {
  for (let from = 0; from < count; from += 4000) {
    await load.call("connect", { url, count: Math.min(4000, count - from), from, idPrefix })
  }
}

/** The shared brokers' ports on 127.0.0.1 (`--redis-port`, `--nats-port`). */
const brokerPort = (backend: Backend) => Number(option(`${backend}-port`) ?? (backend === "redis" ? 6379 : 4222))
const brokerUrl = (backend: Backend) =>
  backend === "redis" ? `redis://127.0.0.1:${brokerPort(backend)}` : `127.0.0.1:${brokerPort(backend)}`

// ---------------------------------------------------------------------------------------------------
// measurements
// ---------------------------------------------------------------------------------------------------

interface Delivery {
  readonly delivered: number
  readonly expected: number
  /** deliveries per second, from the first broadcast to the last delivery */
  readonly rate: number
  /** server CPU µs per delivery (the instance these clients are on) */
  readonly cpuUs: number
  /** first and last delivery, in ms after the first broadcast was made */
  readonly firstAfterMs: number
  readonly lastAfterMs: number
  /** CPU time of the instance and of the load generator over the measurement, ms */
  readonly serverCpuMs: number
  readonly loadCpuMs: number
  readonly lastMs: number
}

/**
 * `broadcasts` broadcasts from `from` to everyone, `perTurn` per turn; every load counts its clients'
 * deliveries (load i's clients are on instance i).
 */
const measureBroadcast = async (
  from: Instance,
  instances: ReadonlyArray<Instance>,
  loads: ReadonlyArray<Worker<ScaleLoadApi>>,
  clients: ReadonlyArray<number>,
  broadcasts: number,
  perTurn: number,
  maxMs = 60_000
) => {
  await Promise.all(loads.map((load, i) => load.call("arm", { expected: clients[i] * broadcasts })))
  const cpu0 = await Promise.all(instances.map((s) => s.worker.call("cpu")))
  const loadCpu0 = await Promise.all(loads.map((l) => l.call("cpu")))
  const sent = await from.worker.call("broadcast", { count: broadcasts, perTurn, size: 100 })
  const got = await Promise.all(
    loads.map((load) => load.call("deliveries", { idleMs: 2000, maxMs, quietFromMs: sent.endMs }))
  )
  const cpu1 = await Promise.all(instances.map((s) => s.worker.call("cpu")))
  const loadCpu1 = await Promise.all(loads.map((l) => l.call("cpu")))
  return {
    sent,
    sides: got.map((g, i): Delivery => {
      const ms = g.lastMs - sent.startMs
      return {
        delivered: g.delivered,
        expected: clients[i] * broadcasts,
        rate: g.delivered > 0 ? g.delivered / ms * 1e3 : 0,
        cpuUs: g.delivered > 0 ? (cpu1[i] - cpu0[i]) / g.delivered : NaN,
        firstAfterMs: g.firstMs - sent.startMs,
        lastAfterMs: g.lastMs - sent.startMs,
        serverCpuMs: (cpu1[i] - cpu0[i]) / 1e3,
        loadCpuMs: (loadCpu1[i] - loadCpu0[i]) / 1e3,
        lastMs: g.lastMs
      }
    })
  }
}

// ---------------------------------------------------------------------------------------------------
// scenarios
// ---------------------------------------------------------------------------------------------------

interface FanoutResult {
  readonly backend: Backend
  readonly clientsPerInstance: number
  readonly broadcasts: number
  readonly single: ReadonlyArray<Delivery>
  /** per trial, per instance (instance 0 publishes) */
  readonly cluster: ReadonlyArray<ReadonlyArray<Delivery>>
}

/** One instance, no exchange, `clients` clients: the reference of the fan-out ratio. */
const singleFanout = async (clients: number, broadcasts: number, trials: number) => {
  const [instance] = await startInstances(1, "none", "")
  const loads = await startLoads(1)
  try {
    await connectClients(loads[0], instance.url, clients, "s")
    await measureBroadcast(instance, [instance], loads, [clients], 2, 1)
    const out: Array<Delivery> = []
    for (let t = 0; t < trials; t++) {
      out.push((await measureBroadcast(instance, [instance], loads, [clients], broadcasts, 1)).sides[0])
    }
    return out
  } finally {
    await stopAll([...loads, instance.worker])
  }
}

const clusterFanout = async (backend: Backend, single: ReadonlyArray<Delivery>): Promise<FanoutResult> => {
  const { broadcasts, clients, instances: n, trials } = sizes.fanout
  const instances = await startInstances(n, backend, brokerUrl(backend))
  const loads = await startLoads(n)
  try {
    await Promise.all(loads.map((load, i) => connectClients(load, instances[i].url, clients, `f${i}-`)))
    await Promise.all(instances.map((s) => s.worker.call("settled")))
    const counts = instances.map(() => clients)
    await measureBroadcast(instances[0], instances, loads, counts, 2, 1)
    const cluster: Array<ReadonlyArray<Delivery>> = []
    for (let t = 0; t < trials; t++) {
      cluster.push((await measureBroadcast(instances[0], instances, loads, counts, broadcasts, 1)).sides)
    }
    return { backend, clientsPerInstance: clients, broadcasts, single, cluster }
  } finally {
    await stopAll([...loads, ...instances.map((s) => s.worker)])
  }
}

interface BatchTrial {
  readonly build: "before" | "after"
  /** deliveries/s on the receiving instance */
  readonly rate: number
  readonly delivered: number
  readonly expected: number
  /** publishing instance's CPU per broadcast, µs */
  readonly publisherCpuUs: number
  /** receiving instance's CPU per delivery, µs */
  readonly receiverCpuUs: number
  /** broadcasts the exchange refused (counted by the publisher) */
  readonly refused: number
}

/**
 * A burst of broadcasts (`perTurn` per turn) from an instance without clients to a few clients on
 * another: everything crosses the broker. With `--before`, the same against the other build,
 * interleaved trial by trial, each with fresh processes.
 */
const batch = async (backend: Backend): Promise<ReadonlyArray<BatchTrial>> => {
  const { broadcasts, clients, perTurn, trials } = sizes.batch
  const builds = before === undefined
    ? [["after", dist] as const]
    : [["before", before] as const, ["after", dist] as const]
  const out: Array<BatchTrial> = []
  for (let t = 0; t < trials; t++) {
    for (const [build, dir] of builds) {
      const instances = await startInstances(2, backend, brokerUrl(backend), { dist: dir })
      const [load] = await startLoads(1)
      try {
        // instance 1 holds the clients; the load's index 0 pairs it with instance 1
        await connectClients(load, instances[1].url, clients, "b")
        await Promise.all(instances.map((s) => s.worker.call("settled")))
        // warm-up
        await measureBroadcast(instances[0], [instances[1]], [load], [clients], 200, perTurn)
        const cpuA0 = await instances[0].worker.call("cpu")
        const m = await measureBroadcast(instances[0], [instances[1]], [load], [clients], broadcasts, perTurn)
        const cpuA1 = await instances[0].worker.call("cpu")
        const side = m.sides[0]
        out.push({
          build,
          rate: side.rate,
          delivered: side.delivered,
          expected: side.expected,
          publisherCpuUs: (cpuA1 - cpuA0) / broadcasts,
          receiverCpuUs: side.cpuUs,
          refused: m.sent.failed
        })
      } finally {
        await stopAll([load, ...instances.map((s) => s.worker)])
      }
    }
  }
  return out
}

interface TargetedResult {
  readonly kind: "send" | "ask"
  readonly ops: number
  readonly errors: number
  readonly firstError: string | undefined
  readonly rate: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** CPU per operation of the calling instance and of the one holding the connection, µs */
  readonly callerCpuUs: number
  readonly holderCpuUs: number
}

/** `send` and `ask` from instance 0 to ids whose connections are on instance 1. */
const targeted = async (backend: Backend): Promise<ReadonlyArray<TargetedResult>> => {
  const { clients, concurrency, durationMs } = sizes.targeted
  const instances = await startInstances(2, backend, brokerUrl(backend))
  const [load] = await startLoads(1)
  try {
    await connectClients(load, instances[1].url, clients, "t")
    await Promise.all(instances.map((s) => s.worker.call("settled")))
    const ids = Array.from({ length: clients }, (_, i) => `t${i}`)
    const out: Array<TargetedResult> = []
    for (const kind of ["send", "ask"] as const) {
      // a short warm-up, then the measurement
      await instances[0].worker.call("targeted", { kind, ids, durationMs: 300, concurrency, maxOps: 100_000 })
      const cpu0 = await Promise.all(instances.map((s) => s.worker.call("cpu")))
      const r = await instances[0].worker.call("targeted", { kind, ids, durationMs, concurrency, maxOps: 1_000_000 })
      const cpu1 = await Promise.all(instances.map((s) => s.worker.call("cpu")))
      const perOp = (i: number) => (cpu1[i] - cpu0[i]) / Math.max(1, r.ops)
      out.push({ kind, ...r, rate: r.ops / r.elapsedMs * 1e3, callerCpuUs: perOp(0), holderCpuUs: perOp(1) })
    }
    return out
  } finally {
    await stopAll([load, ...instances.map((s) => s.worker)])
  }
}

interface IdleResult {
  readonly backend: Backend
  readonly instances: number
  readonly clients: number
  readonly connectMs: number
  /** per instance: RSS and heap after GC, before and with the clients, and the connections it held */
  readonly memory: ReadonlyArray<{ rss0: number; heap0: number; rss: number; heap: number; connections: number }>
  readonly rssPerConn: number
  readonly heapPerConn: number
  /** one broadcast to all: from the call to the last client's delivery */
  readonly lastDeliveryMs: number
  readonly delivered: number
  readonly lost: number
  /** per instance: when its clients had it, and the CPU its server and load generator spent meanwhile */
  readonly sides: ReadonlyArray<Delivery>
  /** when the broadcast was made (monotonic ms, to find it in a CPU profile) */
  readonly broadcastStartMs: number
}

const idle = async (backend: Backend): Promise<IdleResult> => {
  const { clients: total, instances: n } = sizes.idle
  const per = Math.ceil(total / n)
  if (per > facts.openFilesLimit - 300) {
    throw new Error(`${per} clients per process exceed the open files limit (${facts.openFilesLimit})`)
  }
  const instances = await startInstances(n, backend, brokerUrl(backend))
  const loads = await startLoads(n)
  try {
    const base = await Promise.all(instances.map((s) => s.worker.call("memory")))
    const counts = instances.map((_, i) => Math.min(per, total - i * per))
    const t0 = monoMs()
    await Promise.all(loads.map((load, i) => connectClients(load, instances[i].url, counts[i], `i${i}-`)))
    const connectMs = monoMs() - t0
    await Promise.all(instances.map((s) => s.worker.call("settled")))
    const held = await Promise.all(instances.map((s) => s.worker.call("connections")))
    const mem = await Promise.all(instances.map((s) => s.worker.call("memory")))
    const memory = instances.map((_, i) => ({
      rss0: base[i].rss,
      heap0: base[i].heapUsed,
      rss: mem[i].rss,
      heap: mem[i].heapUsed,
      connections: held[i]
    }))
    const perConn = (k: "rss" | "heap") =>
      median(memory.map((m) => (m[k] - m[k === "rss" ? "rss0" : "heap0"]) / Math.max(1, m.connections)))
    const m = await measureBroadcast(instances[0], instances, loads, counts, 1, 1, 20_000)
    const delivered = m.sides.reduce((a, s) => a + s.delivered, 0)
    return {
      backend,
      instances: n,
      clients: total,
      connectMs,
      memory,
      rssPerConn: perConn("rss"),
      heapPerConn: perConn("heap"),
      lastDeliveryMs: Math.max(...m.sides.map((s) => s.lastMs)) - m.sent.startMs,
      delivered,
      lost: total - delivered,
      sides: m.sides,
      broadcastStartMs: m.sent.startMs
    }
  } finally {
    await Promise.all(loads.map((l) => l.call("closeAll").catch(() => undefined)))
    await stopAll([...loads, ...instances.map((s) => s.worker)])
  }
}

interface RestartResult {
  readonly backend: Backend
  readonly clients: number
  readonly intervalMs: number
  readonly broadcasts: number
  /** broadcasts the publishing instance's exchange refused (it knew the broker was down) */
  readonly refused: number
  /** broadcasts that reached no client of the other instance / all of them */
  readonly missedAll: number
  readonly missedSome: number
  readonly deliveriesLost: number
  /** the broker was killed at 0; it answered again at `upMs` */
  readonly upMs: number
  /** the last broadcast delivered before the kill was made at `lastBeforeMs` (≤ 0) */
  readonly lastBeforeMs: number
  /** first delivery after the kill of a broadcast made after the kill, relative to the kill */
  readonly resumedMs: number
}

const restart = async (backend: Backend): Promise<RestartResult> => {
  const { clients, downMs, durationMs, intervalMs, killAtMs } = sizes.restart
  const broker = await privateBroker(backend)
  await broker.start()
  const instances = await startInstances(2, backend, broker.url)
  const [load] = await startLoads(1)
  try {
    await connectClients(load, instances[1].url, clients, "r")
    await Promise.all(instances.map((s) => s.worker.call("settled")))
    const max = Math.ceil(durationMs / intervalMs) + 1
    await load.call("arm", { expected: Infinity, streamSize: max })
    const streaming = instances[0].worker.call("stream", { intervalMs, durationMs, size: 100 })
    await sleep(killAtMs)
    const killMs = monoMs()
    await broker.kill()
    await sleep(downMs)
    await broker.start()
    const upMs = monoMs() - killMs
    const sent = await streaming
    await load.call("deliveries", { idleMs: 1000, maxMs: 5000, quietFromMs: monoMs() })
    const report = await load.call("streamReport")
    let missedAll = 0
    let missedSome = 0
    let deliveriesLost = 0
    let lastBefore = -Infinity
    let resumed = Infinity
    for (const s of sent) {
      const got = report.counts[s.seq] ?? 0
      if (got === 0) missedAll++
      else if (got < clients) missedSome++
      deliveriesLost += clients - Math.min(clients, got)
      if (got > 0 && s.atMs < killMs) lastBefore = Math.max(lastBefore, s.atMs - killMs)
      if (got > 0 && s.atMs >= killMs) resumed = Math.min(resumed, report.first[s.seq] - killMs)
    }
    return {
      backend,
      clients,
      intervalMs,
      broadcasts: sent.length,
      refused: sent.filter((s) => !s.ok).length,
      missedAll,
      missedSome,
      deliveriesLost,
      upMs,
      lastBeforeMs: lastBefore,
      resumedMs: resumed
    }
  } finally {
    await stopAll([load, ...instances.map((s) => s.worker)])
    await broker.kill()
  }
}

// ---------------------------------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------------------------------

const k = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0))
const ms = (n: number) => (Number.isFinite(n) ? `${n.toFixed(n < 10 ? 2 : 0)} ms` : "—")
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`
const row = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`

const startedAt = new Date()
const t0 = monoMs()
console.log(`effect-neffos cluster bench${smoke ? " (smoke: the numbers are not figures)" : ""}`)
console.log(
  `  node ${facts.node}, ${facts.cores} x ${facts.cpuModel}, ${facts.platform}, ${k(os.totalmem() / 2 ** 30)} GiB`
)
console.log(
  facts.pinned
    ? "  pinned with taskset: instance i on CPU i % 2, the load generator next to it on the other CPU"
    : "  no taskset pinning (taskset missing or one CPU)"
)
console.log(`  open files limit ${facts.openFilesLimit} per process; build under test: ${dist}`)
if (before !== undefined) console.log(`  before/after runs against: ${before}`)

if (dist === path.join(root, "dist")) {
  // the instances run the compiled package, as its users do
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" })
} else if (!fs.existsSync(path.join(dist, "index.js"))) {
  throw new Error(`no build at ${dist} (run npx tsc -p tsconfig.build.json there)`)
}
if (before !== undefined && !fs.existsSync(path.join(before, "index.js"))) {
  throw new Error(`no build at ${before} (run npx tsc -p tsconfig.build.json there)`)
}

const skipped: Array<string> = []
const available: Array<Backend> = []
for (const backend of backends) {
  const port = brokerPort(backend)
  const why = await probe(backend, port)
  if (why === undefined) available.push(backend)
  else {
    skipped.push(
      `${backend} is not reachable at 127.0.0.1:${port} (${why}): its scenarios are skipped ` +
        `(start it, or pass --${backend}-port)`
    )
  }
}
for (const s of skipped) console.log(`  ${s}`)

const results: Record<string, unknown> = {}
const notes: Array<string> = [...skipped]
const section = async <A>(name: string, label: string, f: () => Promise<A>): Promise<A | undefined> => {
  const s = monoMs()
  console.log(`\n${label}`)
  try {
    const r = await f()
    console.log(`  (${((monoMs() - s) / 1e3).toFixed(0)} s)`)
    return r
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error)
    console.log(`  failed: ${text.split("\n")[0]}`)
    notes.push(`${name}: ${text.split("\n")[0]}`)
    return undefined
  }
}

if (scenarios.includes("fanout") && available.length > 0) {
  const { broadcasts, clients, instances, trials } = sizes.fanout
  const single = await section(
    "fanout-single",
    `Fan-out reference: one instance, no exchange, ${clients} clients, ${broadcasts} broadcasts, one per turn`,
    () => singleFanout(clients, broadcasts, trials)
  )
  const fan: Array<FanoutResult> = []
  for (const backend of available) {
    if (single === undefined) break
    const r = await section(
      `fanout-${backend}`,
      `Fan-out: ${instances} instances × ${clients} clients on ${backend}, ${broadcasts} broadcasts from instance 0`,
      () => clusterFanout(backend, single)
    )
    if (r !== undefined) fan.push(r)
  }
  if (single !== undefined) {
    const singleRate = median(single.map((s) => s.rate))
    const singleCpu = median(single.map((s) => s.cpuUs))
    console.log(
      "\n" +
        row([
          "fan-out, 1 broadcast per turn",
          "deliveries/s per instance",
          "ratio to single",
          "CPU µs/delivery",
          "delivered"
        ])
    )
    console.log(row(["---", "---", "---", "---", "---"]))
    console.log(row(["single instance, no exchange", k(singleRate), "1.00x", singleCpu.toFixed(2), "100%"]))
    for (const r of fan) {
      for (let i = 0; i < r.cluster[0].length; i++) {
        const rate = median(r.cluster.map((t) => t[i].rate))
        const cpu = median(r.cluster.map((t) => t[i].cpuUs))
        const del = r.cluster.reduce((a, t) => a + t[i].delivered, 0) / r.cluster.reduce((a, t) => a + t[i].expected, 0)
        console.log(row([
          `${r.backend}: instance ${i}${i === 0 ? " (publishes)" : ""}`,
          k(rate),
          `${(rate / singleRate).toFixed(2)}x`,
          `${cpu.toFixed(2)} (${(cpu / singleCpu).toFixed(2)}x)`,
          `${(del * 100).toFixed(1)}%`
        ]))
      }
    }
    results.fanout = { single, clusters: fan }
  }
}

if (scenarios.includes("batch")) {
  const out: Record<string, ReadonlyArray<BatchTrial>> = {}
  for (const backend of available) {
    const { broadcasts, clients, perTurn, trials } = sizes.batch
    const r = await section(
      `batch-${backend}`,
      `Broker batching (${backend}): ${broadcasts} broadcasts, ${perTurn} per turn, from an instance without clients ` +
        `to ${clients} clients on another; ${trials} trial(s)${
          before === undefined ? "" : ", before/after interleaved"
        }`,
      () => batch(backend)
    )
    if (r !== undefined) out[backend] = r
  }
  if (Object.keys(out).length > 0) {
    console.log(
      "\n" +
        row([
          "cross-instance burst",
          "build",
          "deliveries/s",
          "publisher CPU µs/broadcast",
          "receiver CPU µs/delivery",
          "delivered",
          "refused"
        ])
    )
    console.log(row(["---", "---", "---", "---", "---", "---", "---"]))
    for (const [backend, trials] of Object.entries(out)) {
      for (const build of ["before", "after"] as const) {
        const ts = trials.filter((t) => t.build === build)
        if (ts.length === 0) continue
        console.log(row([
          backend,
          build === "before" ? `before (${before})` : "this build",
          `${k(median(ts.map((t) => t.rate)))} (${ts.map((t) => k(t.rate)).join(", ")})`,
          median(ts.map((t) => t.publisherCpuUs)).toFixed(1),
          median(ts.map((t) => t.receiverCpuUs)).toFixed(1),
          `${((ts.reduce((a, t) => a + t.delivered, 0) / ts.reduce((a, t) => a + t.expected, 0)) * 100).toFixed(1)}%`,
          String(ts.reduce((a, t) => a + t.refused, 0))
        ]))
      }
    }
    results.batch = out
  }
}

if (scenarios.includes("targeted")) {
  const out: Record<string, ReadonlyArray<TargetedResult>> = {}
  for (const backend of available) {
    const { clients, concurrency, durationMs } = sizes.targeted
    const r = await section(
      `targeted-${backend}`,
      `Targeted (${backend}): send and ask from instance 0 to ${clients} ids on instance 1, ${concurrency} in flight, ` +
        `${durationMs} ms each`,
      () => targeted(backend)
    )
    if (r !== undefined) out[backend] = r
  }
  if (Object.keys(out).length > 0) {
    console.log(
      "\n" + row(["to an id on another instance", "ops/s", "p50", "p99", "CPU µs/op caller / holder", "errors"])
    )
    console.log(row(["---", "---", "---", "---", "---", "---"]))
    for (const [backend, rs] of Object.entries(out)) {
      for (const r of rs) {
        console.log(
          row([
            `${backend}: ${r.kind}`,
            k(r.rate),
            ms(r.p50Ms),
            ms(r.p99Ms),
            `${r.callerCpuUs.toFixed(0)} / ${r.holderCpuUs.toFixed(0)}`,
            `${r.errors}${r.firstError ? ` (${r.firstError.slice(0, 60)})` : ""}`
          ])
        )
      }
    }
    results.targeted = out
  }
}

if (scenarios.includes("idle")) {
  if (!available.includes(idleBackend)) {
    notes.push(`idle: ${idleBackend} is not reachable, skipped`)
  } else {
    const { clients, instances } = sizes.idle
    const r = await section(
      "idle",
      `Idle: ${clients} clients over ${instances} instances on ${idleBackend}, then one broadcast to all of them`,
      () => idle(idleBackend)
    )
    if (r !== undefined) {
      console.log(
        "\n" + row(["idle clients", "connect all", "RSS / heap per connection", "one broadcast: last delivery", "lost"])
      )
      console.log(row(["---", "---", "---", "---", "---"]))
      console.log(row([
        `${k(r.clients)} over ${r.instances} (${idleBackend})`,
        `${(r.connectMs / 1e3).toFixed(1)} s (${k(r.clients / r.connectMs * 1e3)}/s)`,
        `${kb(r.rssPerConn)} / ${kb(r.heapPerConn)}`,
        ms(r.lastDeliveryMs),
        String(r.lost)
      ]))
      for (const [i, side] of r.sides.entries()) {
        console.log(
          `  instance ${i}: first delivery ${ms(side.firstAfterMs)}, last ${ms(side.lastAfterMs)}; CPU meanwhile: ` +
            `server ${ms(side.serverCpuMs)}, load generator ${ms(side.loadCpuMs)}`
        )
      }
      results.idle = r
    }
  }
}

if (scenarios.includes("restart")) {
  const out: Array<RestartResult> = []
  for (const backend of backends) {
    if (!hasBinary(backend)) {
      notes.push(`restart (${backend}): ${backend === "redis" ? "redis-server" : "nats-server"} not found, skipped`)
      continue
    }
    const { clients, downMs, intervalMs, killAtMs } = sizes.restart
    const r = await section(
      `restart-${backend}`,
      `Broker restart (${backend}, a private one): a broadcast every ${intervalMs} ms to ${clients} clients on ` +
        `another instance; killed (SIGKILL) after ${killAtMs} ms, started again ${downMs} ms later`,
      () => restart(backend)
    )
    if (r !== undefined) out.push(r)
  }
  if (out.length > 0) {
    console.log(
      "\n" +
        row([
          "broker restart",
          "broker back",
          "delivery resumed",
          "broadcasts lost (refused)",
          "deliveries lost",
          "partly delivered"
        ])
    )
    console.log(row(["---", "---", "---", "---", "---", "---"]))
    for (const r of out) {
      console.log(row([
        `${r.backend}: ${r.broadcasts} broadcasts`,
        `${ms(r.upMs)} after the kill`,
        `${ms(r.resumedMs)} after the kill`,
        `${r.missedAll} (${r.refused})`,
        String(r.deliveriesLost),
        String(r.missedSome)
      ]))
    }
    results.restart = out
  }
}

const elapsedS = (monoMs() - t0) / 1e3
const out = path.join(root, "bench", "results", smoke ? "cluster-smoke.json" : "cluster.json")
fs.mkdirSync(path.dirname(out), { recursive: true })
fs.writeFileSync(
  out,
  JSON.stringify(
    { startedAt, elapsedS, smoke, machine: facts, dist, before, sizes, skipped, notes, ...results },
    null,
    2
  )
)
if (notes.length > 0) console.log(`\nNotes:\n${notes.map((n) => `  - ${n}`).join("\n")}`)
console.log(`\nDone in ${elapsedS.toFixed(0)} s; results in ${path.relative(root, out)}`)
process.exit(0)
