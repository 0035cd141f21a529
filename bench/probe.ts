/**
 * A/B probe, not part of the suite: churn, ask/echo at 100 clients and idle memory, interleaved, for
 * servers given as `name=file[:arg,arg]` (file relative to bench/; another checkout's server compares
 * two builds). `--prof=DIR` writes a CPU profile of every server (`node --cpu-prof`).
 *
 *   npx tsx bench/probe.ts --trials=3 --scen=churn,echo,memory ws=servers/ws.ts \
 *     neffos=servers/effect-neffos.ts:default router=servers/effect-neffos.ts:default,metrics,router
 */
import type { ServerApi } from "./lib/host.js"
import { killAll, spawnWorker, type Worker } from "./lib/ipc.js"
import { monoMs, sleep } from "./lib/time.js"
import type { LoadApi } from "./load/main.js"
import type { WireName } from "./load/wires.js"

process.on("exit", killAll)
const argv = process.argv.slice(2)
const opt = (k: string, d: string) => argv.find((a) => a.startsWith(`--${k}=`))?.split("=")[1] ?? d
const trials = Number(opt("trials", "3"))
const scenarios = opt("scen", "churn,echo,memory").split(",")
const churnMs = Number(opt("churnMs", "2000"))
const echoMs = Number(opt("echoMs", "2000"))
const memConns = Number(opt("mem", "5000"))
const prof = opt("prof", "")
// a profile is written at exit, which SIGTERM's default skips
const exitOnTerm = "data:text/javascript,process.on('SIGTERM',()=>process.exit(0))"
const specs = argv.filter((a) => !a.startsWith("--")).map((s) => {
  const [name, rest] = s.split("=")
  const [file, args] = rest.split(":")
  const wire: WireName = file.includes("socketio") ? "socketIo" : file.endsWith("ws.ts") ? "raw" : "neffos"
  return { name, file, args: args ? args.split(",") : [], wire }
})
const load = await spawnWorker<LoadApi>("load/main.ts", { cpu: 1 })
const results: Record<string, Record<string, Array<number>>> = {}
const rec = (s: string, k: string, v: number) => ((results[s] ??= {})[k] ??= []).push(v)
const closeAll = async (server: Worker<ServerApi>) => {
  await load.call("closeAll")
  const deadline = monoMs() + 10000
  while ((await server.call("connections")) > 0 && monoMs() < deadline) await sleep(50)
}
for (let t = 0; t < trials; t++) {
  for (const spec of specs) {
    const flags = ["--expose-gc"]
    if (prof) flags.push("--cpu-prof", `--cpu-prof-dir=${prof}/${spec.name}`, "--import", exitOnTerm)
    const server = await spawnWorker<ServerApi>(spec.file, { cpu: 0, nodeFlags: flags, args: spec.args })
    const info = await server.call("info")
    const target = { wire: spec.wire, url: `ws://127.0.0.1:${info.port}${info.path}` }
    if (scenarios.includes("memory")) {
      const base = await server.call("memory")
      await load.call("connect", { ...target, count: memConns })
      const idle = await server.call("memory")
      rec(spec.name, "rss/conn", (idle.rss - base.rss) / memConns)
      rec(spec.name, "heap/conn", (idle.heapUsed - base.heapUsed) / memConns)
      await closeAll(server)
    }
    if (scenarios.includes("echo")) {
      await load.call("connect", { ...target, count: 100 })
      await load.call("echo", { clients: 100, durationMs: 300 })
      const c0 = await server.call("cpu")
      const run = await load.call("echo", { clients: 100, durationMs: echoMs })
      const c1 = await server.call("cpu")
      rec(spec.name, "echo/s", (run.replies / run.elapsedMs) * 1e3)
      rec(spec.name, "echo µs", (c1 - c0) / run.replies)
      await closeAll(server)
    }
    if (scenarios.includes("churn")) {
      await load.call("churn", { ...target, durationMs: 300 })
      await closeAll(server)
      const c0 = await server.call("cpu")
      const run = await load.call("churn", { ...target, durationMs: churnMs })
      await closeAll(server)
      const c1 = await server.call("cpu")
      rec(spec.name, "conn/s", (run.connects / run.elapsedMs) * 1e3)
      rec(spec.name, "conn µs", (c1 - c0) / run.connects)
    }
    await server.stop()
  }
}
const med = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
for (const [name, ms] of Object.entries(results)) {
  console.log(
    name.padEnd(14),
    Object.entries(ms).map(([k, xs]) =>
      `${k} ${med(xs).toFixed(k.includes("µs") ? 2 : 0)} [${
        xs.map((x) => x.toFixed(k.includes("µs") ? 1 : 0)).join(" ")
      }]`
    ).join("  |  ")
  )
}
await load.stop()
process.exit(0)
