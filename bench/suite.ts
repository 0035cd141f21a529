/**
 * Runs every scenario against every server in interleaved trials (A, B, C, A, B, C, ...): each trial
 * starts each server afresh in its own process, pinned to CPU 0, while one load generator on CPU 1
 * plays all the clients.
 */
import type { Config } from "./config.js"
import type { ServerApi } from "./lib/host.js"
import { spawnWorker, type Worker } from "./lib/ipc.js"
import type { Machine } from "./lib/machine.js"
import { Results } from "./lib/report.js"
import type { LoadApi } from "./load/main.js"
import type { WireName } from "./load/wires.js"
import {
  churnPhases,
  type Context,
  contractPhases,
  fanoutPhases,
  historyPhases,
  type Phases,
  phases
} from "./scenarios.js"

export interface ServerSpec {
  readonly name: string
  /** Relative to bench/. */
  readonly file: string
  readonly wire: WireName
  readonly args?: ReadonlyArray<string>
  /** The scenarios it runs; default all of them. */
  readonly phases?: Phases
}

const neffosFile = "servers/effect-neffos.ts"

export const servers: ReadonlyArray<ServerSpec> = [
  { name: "ws", file: "servers/ws.ts", wire: "raw" },
  { name: "socket.io", file: "servers/socketio.ts", wire: "socketIo" },
  { name: "neffos", file: neffosFile, wire: "neffos", args: ["default"] },
  { name: "neffos strict", file: neffosFile, wire: "neffos", args: ["strict"] },
  { name: "neffos contract", file: "servers/effect-neffos-contract.ts", wire: "neffos", phases: contractPhases },
  // what observability costs: metrics on ("neffos") and a tracer installed, against neither
  { name: "neffos bare", file: neffosFile, wire: "neffos", args: ["default", "bare"], phases: contractPhases },
  {
    name: "neffos noop tracer",
    file: neffosFile,
    wire: "neffos",
    args: ["default", "noop-tracer"],
    phases: contractPhases
  },
  // a write coalescing window of 2 ms (outbox.flushInterval): fan-out only
  { name: "neffos flush-2ms", file: neffosFile, wire: "neffos", args: ["flush-2ms"], phases: fanoutPhases },
  // the endpoint mounted on an HttpRouter (NodeServer.endpoint on layerHttpServer): what connection setup costs there
  {
    name: "neffos router",
    file: neffosFile,
    wire: "neffos",
    args: ["default", "metrics", "router"],
    phases: churnPhases
  },
  // the fan-out room recoverable, its clients asking for positions as this package's client does
  { name: "neffos history", file: neffosFile, wire: "neffosRecovery", args: ["history"], phases: historyPhases }
]

export interface Run {
  readonly results: Results
  readonly notes: Array<string>
}

const serverCpu = 0
const loadCpu = 1

/** Starts the server, runs one phase's steps against it, and stops it. */
const runPhase = async (
  spec: ServerSpec,
  phase: ReadonlyArray<(ctx: Context) => Promise<void>>,
  base: Omit<Context, "server" | "target">,
  pinned: boolean
) => {
  const server = await spawnWorker<ServerApi>(spec.file, {
    cpu: pinned ? serverCpu : undefined,
    nodeFlags: ["--expose-gc"],
    args: spec.args ?? []
  })
  try {
    const info = await server.call("info")
    const ctx: Context = {
      ...base,
      server,
      target: { wire: spec.wire, url: `ws://127.0.0.1:${info.port}${info.path}` }
    }
    for (const step of phase) await step(ctx)
  } finally {
    await base.load.call("closeAll").catch(() => undefined)
    await server.stop()
  }
}

export const runSuite = async (
  config: Config,
  machine: Machine,
  log: (line: string) => void,
  chosen: ReadonlyArray<ServerSpec> = servers
): Promise<Run> => {
  const notes: Array<string> = []
  const results = new Results()
  const load: Worker<LoadApi> = await spawnWorker<LoadApi>("load/main.ts", {
    cpu: machine.pinned ? loadCpu : undefined
  })
  try {
    for (let trial = 1; trial <= config.trials; trial++) {
      for (const spec of chosen) {
        const started = Date.now()
        const warn = (message: string) => notes.push(`${spec.name}, trial ${trial}: ${message}`)
        const record: Context["record"] = (scenario, values) =>
          results.record(scenario, { server: spec.name, trial, values })
        try {
          for (const phase of spec.phases ?? phases) {
            await runPhase(spec, phase, { config, load, warn, record }, machine.pinned)
          }
        } catch (error) {
          warn(`failed: ${error instanceof Error ? error.message : String(error)}`)
        }
        log(`  trial ${trial}/${config.trials} ${spec.name}: ${((Date.now() - started) / 1e3).toFixed(1)} s`)
      }
    }
  } finally {
    await load.stop()
  }
  return { results, notes }
}
