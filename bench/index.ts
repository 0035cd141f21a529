import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { printCluster, runCluster } from "./cluster.js"
import { printCodec, runCodec } from "./codec.js"
import { type Config, full, quick, smoke } from "./config.js"
import type { HistoryMemory } from "./history.js"
import { killAll, spawnWorker } from "./lib/ipc.js"
import { connectionCap, machine } from "./lib/machine.js"
import {
  printBaseline,
  printContractCost,
  printFlushCost,
  printHistoryCost,
  printObserveCost,
  printSummary
} from "./lib/report.js"
import { printPresence, runPresence } from "./presence.js"
import { runSuite, servers } from "./suite.js"

process.on("exit", killAll)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => process.exit(130))
}

const startedAt = new Date()
const chosen = process.argv.includes("--full") ? full : process.argv.includes("--smoke") ? smoke : quick
// `--servers=neffos,neffos contract` runs only those (ratios need their references in the same run)
const only = process.argv.find((arg) => arg.startsWith("--servers="))?.slice("--servers=".length).split(",")
const named = only === undefined ? servers : servers.filter((spec) => only.includes(spec.name))
// `--baseline=<checkout>` adds that checkout's build (another worktree, say) as "neffos baseline",
// measured in the same interleaved trials: the before/after of a change on the same machine
const baselineArg = process.argv.find((arg) => arg.startsWith("--baseline="))?.slice("--baseline=".length)
const baseline = baselineArg === undefined ? undefined : path.resolve(baselineArg)
const chosenServers = baseline === undefined ? named : [...named, {
  name: "neffos baseline",
  file: "servers/effect-neffos.ts",
  wire: "neffos" as const,
  args: ["default", "metrics", `--dist=${path.join(baseline, "dist")}`]
}]
const facts = machine()
const cap = connectionCap(facts)
const config: Config = {
  ...chosen,
  fanout: chosen.fanout.map((group) => ({ ...group, clients: Math.min(group.clients, cap) }))
}

console.log(`effect-neffos benchmarks (${config.mode}) — node ${facts.node}, ${facts.cores} x ${facts.cpuModel}`)
console.log(`  ${facts.platform}; open files limit ${facts.openFilesLimit}`)
console.log(
  facts.pinned
    ? "  taskset pinning: servers on CPU 0, load generator on CPU 1"
    : "  no taskset pinning (taskset missing or fewer than 2 CPUs): servers and load share the CPUs"
)
if (config.fanout.some((group, i) => group.clients < chosen.fanout[i].clients)) {
  console.log(`  open files limit too low: fan-out capped at ${cap} clients`)
}

// the effect-neffos servers run the compiled package, as its users do (tsx adds its own costs)
execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" })
if (baseline !== undefined) {
  console.log(
    `  baseline: ${baseline} (${
      execFileSync("git", ["-C", baseline, "log", "-1", "--format=%h %s"]).toString().trim()
    })`
  )
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit", cwd: baseline })
}

const codec = config.mode === "smoke" ? undefined : runCodec({ durationMs: 300, trials: 3 })
if (codec !== undefined) printCodec(codec)

console.log(`\nServers: ${config.trials} interleaved trials, each server started afresh per trial`)
const run = await runSuite(config, facts, console.log, chosenServers)
const summary = run.results.summary(chosenServers.map((s) => s.name))
console.log("\nMedians over trials; ×ws and ×sio are medians of per-trial ratios to raw ws and Socket.IO.")
console.log("srv µs = server process CPU time (user + system) per delivery, reply or connection.")
printSummary(summary)
printBaseline(summary)
printContractCost(summary)
printObserveCost(summary)
printHistoryCost(summary)
printFlushCost(summary)

/** Heap per recoverable room (in-memory history), in a worker of its own with --expose-gc. */
const runHistoryMemory = async (): Promise<HistoryMemory | undefined> => {
  const worker = await spawnWorker<
    { measure: (arg: { rooms: number; messages: number; size: number }) => HistoryMemory }
  >(
    "history.ts",
    { cpu: undefined, nodeFlags: ["--expose-gc"] }
  )
  try {
    return await worker.call("measure", { rooms: config.mode === "smoke" ? 100 : 1000, messages: 100, size: 100 })
  } catch (error) {
    console.log(`  history memory skipped: ${error instanceof Error ? error.message : String(error)}`)
    return undefined
  } finally {
    await worker.stop()
  }
}
const historyMemory = await runHistoryMemory()
if (historyMemory !== undefined) {
  const kb = (bytes: number) => `${(bytes / 1e3).toFixed(1)} kB`
  console.log(
    `\nMemory per recoverable room (in-memory history, ${historyMemory.rooms} rooms of ${historyMemory.messages} ` +
      `messages of ${historyMemory.size} bytes, heap after GC): ${kb(historyMemory.perRoom)} per room, ` +
      `${historyMemory.perMessage.toFixed(0)} bytes per message, ${historyMemory.perEmptyRoom.toFixed(0)} bytes per ` +
      `room record without messages`
  )
}
if (run.notes.length > 0) console.log(`\nNotes:\n${run.notes.map((n) => `  - ${n}`).join("\n")}`)

const runClusterPart = async () => {
  console.log("\nTwo instances through a stack exchange (Redis), one process: a room split between them")
  return runCluster({ backend: "redis" }).catch((error: unknown) => {
    console.log(`  skipped: ${error instanceof Error ? error.message : String(error)}`)
    return undefined
  })
}
const cluster = config.mode === "smoke" ? undefined : await runClusterPart()
if (cluster !== undefined) printCluster(cluster)

const runPresencePart = async () => {
  console.log("\nPresence: the cost of a room join and leave with presence on, next to off (Redis of its own)")
  const sizes = config.mode === "smoke"
    ? { cycles: 200, trials: 1 }
    : config.mode === "quick"
    ? { cycles: 2000, trials: 3 }
    : { cycles: 10000, trials: 5 }
  return runPresence({ backend: "redis", ...sizes }).catch((error: unknown) => {
    console.log(`  skipped: ${error instanceof Error ? error.message : String(error)}`)
    return undefined
  })
}
const presence = await runPresencePart()
if (presence !== undefined) printPresence(presence)

const elapsedS = (Date.now() - startedAt.getTime()) / 1e3
const outName = `results/${config.mode === "smoke" ? "smoke" : "latest"}.json`
const out = new URL(outName, import.meta.url)
fs.mkdirSync(new URL(".", out), { recursive: true })
fs.writeFileSync(
  out,
  JSON.stringify(
    {
      startedAt,
      elapsedS,
      machine: facts,
      config,
      codec,
      notes: run.notes,
      scenarios: summary,
      cluster,
      presence,
      historyMemory
    },
    null,
    2
  )
)
console.log(`\nDone in ${elapsedS.toFixed(0)} s; results in bench/${outName}`)
