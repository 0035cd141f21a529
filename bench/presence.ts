/**
 * What presence costs a room join and leave: two instances through a stack exchange on a broker of
 * the benchmark's own, websocket clients on the first one joining and leaving rooms (each request
 * waits for its reply), with `presence` off, on, and on with one diff per event-loop turn
 * (`diffInterval: 0`), in turn. Per operation: the client's round-trip latency, the process's CPU
 * time, and what the broker took (its own counters: published messages, bytes in).
 *
 * Every room keeps one member throughout, so no join or leave changes the broker subscriptions, and
 * heartbeats are put off beyond the measurement: what differs between the modes is presence's
 * diffs alone. Servers, exchange and clients share this process, so the latency includes the other
 * instance's work of applying the diffs.
 *
 *   npx tsx bench/presence.ts [--nats] [--cycles N] [--clients N] [--trials N]
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import * as ChildProcess from "node:child_process"
import * as Net from "node:net"
import WebSocket from "ws"
import * as Events from "../src/Events.js"
import * as wire from "../src/internal/clusterWire.js"
import * as envelope from "../src/internal/envelope.js"
import * as NatsStackExchange from "../src/NatsStackExchange.js"
import * as NodeServer from "../src/NodeServer.js"
import * as RedisStackExchange from "../src/RedisStackExchange.js"
import * as Server from "../src/Server.js"
import * as StackExchange from "../src/StackExchange.js"
import { median, monoMs, quantile } from "./lib/time.js"
import { namespace } from "./lib/wire.js"

export interface PresenceOptions {
  readonly backend?: "redis" | "nats" | undefined
  /** join+leave cycles per measurement; default 2,000 */
  readonly cycles?: number | undefined
  /** clients cycling at once; each runs its cycles one after the other; default 1 and 20 */
  readonly clients?: ReadonlyArray<number> | undefined
  /** alternating trials per mode; default 3 */
  readonly trials?: number | undefined
}

/** presence off, on (its default 10 ms gathering of diffs), or on with one diff per event-loop turn */
export type Mode = "off" | "on" | "on, per turn"

const modes: ReadonlyArray<Mode> = ["off", "on", "on, per turn"]

const presenceOf = (mode: Mode) => mode === "off" ? false : mode === "on" ? true : { diffInterval: 0 }

export interface PresenceSide {
  readonly mode: Mode
  readonly clients: number
  readonly cycles: number
  readonly opsPerSecond: number
  /** CPU time of this whole process (both instances, the clients, the broker clients) per join or leave */
  readonly cpuUsPerOp: number
  readonly joinP50Us: number
  readonly joinP99Us: number
  readonly leaveP50Us: number
  readonly leaveP99Us: number
  /** messages the broker took per join or leave (no heartbeat falls within a measurement) */
  readonly messagesPerOp: number
  /** bytes the broker received per join or leave, from every client */
  readonly bytesPerOp: number
}

export interface PresenceResult {
  readonly backend: "redis" | "nats"
  readonly rooms: number
  readonly heartbeatBytes: number
  readonly sides: ReadonlyArray<PresenceSide>
  /** per client count and mode: the median over trials of ops/s in that mode to ops/s without presence */
  readonly ratios: ReadonlyArray<{ readonly clients: number; readonly mode: Mode; readonly opsRatio: number }>
}

const rooms = 10
const events = Events.namespaces({ [namespace]: {} })

export interface Broker {
  readonly url: string
  /** what the broker took so far: published messages and bytes received from all its clients */
  readonly stats: Effect.Effect<{ readonly messages: number; readonly bytes: number }>
}

const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * A broker process of the benchmark's own, so that its counters see nothing else: redis-server
 * (`INFO commandstats` and `INFO stats`) or nats-server (the `/varz` monitoring endpoint).
 */
const ownBroker = (backend: "redis" | "nats"): Effect.Effect<Broker, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* freePort
    const monitoring = yield* freePort
    const [command, args, ready] = backend === "redis"
      ? ["redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], /Ready/]
      : [
        "nats-server",
        ["-a", "127.0.0.1", "-p", String(port), "-m", String(monitoring)],
        /Server is ready/
      ] as const
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        ChildProcess.spawn(command, [...args], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/usr/local/sbin` }
        })
      ),
      (child) => Effect.sync(() => child.kill("SIGKILL"))
    )
    yield* Effect.async<void, Error>((resume) => {
      let log = ""
      const onData = (chunk: Buffer) => {
        log += chunk.toString("utf8")
        if (ready.test(log)) resume(Effect.void)
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      child.once("error", (error) => resume(Effect.fail(error)))
      child.once("exit", (code) => resume(Effect.fail(new Error(`${command} exited with ${code}: ${log}`))))
    }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`${command} did not start`) }))
    if (backend === "redis") {
      const redis = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis(port, "127.0.0.1")),
        (redis) => Effect.sync(() => redis.disconnect())
      )
      return {
        url: `redis://127.0.0.1:${port}`,
        stats: Effect.promise(async () => {
          const commands = await redis.info("commandstats")
          const stats = await redis.info("stats")
          return {
            messages: Number(/cmdstat_publish:calls=(\d+)/.exec(commands)?.[1] ?? 0),
            bytes: Number(/total_net_input_bytes:(\d+)/.exec(stats)?.[1] ?? 0)
          }
        })
      }
    }
    return {
      url: `127.0.0.1:${port}`,
      stats: Effect.promise(async () => {
        const varz = await (await fetch(`http://127.0.0.1:${monitoring}/varz`)).json() as {
          readonly in_msgs: number
          readonly in_bytes: number
        }
        return { messages: varz.in_msgs, bytes: varz.in_bytes }
      })
    }
  })

/** A raw neffos client connected to the namespace; `request` sends a join or leave and waits for its reply. */
const member = (url: string) =>
  Effect.acquireRelease(
    Effect.async<{ ws: WebSocket; request: (event: string, room: string) => Promise<void> }, Error>((resume) => {
      const ws = new WebSocket(url)
      const waiting = new Map<string, () => void>()
      let token = 0
      const request = (event: string, room: string) =>
        new Promise<void>((resolve) => {
          const wait = `$b${++token}`
          waiting.set(wait, resolve)
          ws.send(`${wait};${namespace};${room};${event};0;0;`)
        })
      let step = 0
      ws.on("open", () => ws.send("M"))
      ws.on("error", (error) => resume(Effect.fail(error)))
      ws.on("message", (data: Buffer) => {
        const text = data.toString("utf8")
        if (step === 0) {
          step = 1
          waiting.set("$c", () => resume(Effect.succeed({ ws, request })))
          return ws.send(`$c;${namespace};;_OnNamespaceConnect;0;0;`)
        }
        const wait = text.slice(0, text.indexOf(";"))
        const done = waiting.get(wait)
        waiting.delete(wait)
        done?.()
      })
    }),
    ({ ws }) => Effect.sync(() => ws.terminate())
  )

const instance = (exchange: Layer.Layer<StackExchange.StackExchange, unknown>, mode: Mode) =>
  Effect.map(
    Layer.build(
      NodeServer.layer({ port: 0 }).pipe(
        Layer.provideMerge(Server.layer({
          events,
          presence: presenceOf(mode),
          // no heartbeat within a measurement: what is counted is presence's own traffic
          cluster: { heartbeatInterval: "1 hour", instanceTtl: "2 hours" }
        })),
        Layer.provideMerge(exchange)
      )
    ),
    (context) => ({
      url: Context.get(context, NodeServer.NodeServer).url,
      exchange: Context.get(context, StackExchange.StackExchange)
    })
  )

const trial = (
  backend: "redis" | "nats",
  broker: Broker,
  mode: Mode,
  clients: number,
  cycles: number
): Effect.Effect<PresenceSide, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = `bench-presence-${modes.indexOf(mode)}-${Date.now().toString(36)}`
    const exchange = () =>
      backend === "nats"
        ? NatsStackExchange.layer({ servers: broker.url, prefix })
        : RedisStackExchange.layer({ url: broker.url, prefix })
    const a = yield* instance(exchange(), mode)
    yield* instance(exchange(), mode)
    // a member in every room for the whole trial: no join or leave changes a subscription
    const keeper = yield* member(a.url)
    for (let r = 0; r < rooms; r++) yield* Effect.promise(() => keeper.request("_OnRoomJoin", `room-${r}`))
    const members = yield* Effect.forEach(Array.from({ length: clients }), () => member(a.url))
    yield* a.exchange.settled

    const joins: Array<number> = []
    const leaves: Array<number> = []
    const run = (count: number, record: boolean) =>
      Effect.promise(() =>
        Promise.all(members.map(async (m, c) => {
          for (let i = c; i < count; i += clients) {
            const room = `room-${i % rooms}`
            const t0 = monoMs()
            await m.request("_OnRoomJoin", room)
            const t1 = monoMs()
            await m.request("_OnRoomLeave", room)
            const t2 = monoMs()
            if (record) {
              joins.push((t1 - t0) * 1e3)
              leaves.push((t2 - t1) * 1e3)
            }
          }
        }))
      )
    yield* run(Math.max(clients, Math.ceil(cycles / 10)), false)
    // what the warm-up published has left: the diffs go at the end of the turn, before any confirmation
    yield* Effect.sleep("50 millis")
    const before = yield* broker.stats
    const started = monoMs()
    const cpu = process.cpuUsage()
    yield* run(cycles, true)
    const ms = monoMs() - started
    const { system, user } = process.cpuUsage(cpu)
    yield* Effect.sleep("50 millis")
    const after = yield* broker.stats
    const ops = 2 * cycles
    joins.sort((x, y) => x - y)
    leaves.sort((x, y) => x - y)
    return {
      mode,
      clients,
      cycles,
      opsPerSecond: ops / ms * 1e3,
      cpuUsPerOp: (user + system) / ops,
      joinP50Us: quantile(joins, 0.5),
      joinP99Us: quantile(joins, 0.99),
      leaveP50Us: quantile(leaves, 0.5),
      leaveP99Us: quantile(leaves, 0.99),
      messagesPerOp: (after.messages - before.messages) / ops,
      bytesPerOp: (after.bytes - before.bytes) / ops
    }
  })

const medianSide = (sides: ReadonlyArray<PresenceSide>): PresenceSide => {
  const m = (f: (side: PresenceSide) => number) => median(sides.map(f))
  return {
    mode: sides[0].mode,
    clients: sides[0].clients,
    cycles: sides[0].cycles,
    opsPerSecond: m((s) => s.opsPerSecond),
    cpuUsPerOp: m((s) => s.cpuUsPerOp),
    joinP50Us: m((s) => s.joinP50Us),
    joinP99Us: m((s) => s.joinP99Us),
    leaveP50Us: m((s) => s.leaveP50Us),
    leaveP99Us: m((s) => s.leaveP99Us),
    messagesPerOp: m((s) => s.messagesPerOp),
    bytesPerOp: m((s) => s.bytesPerOp)
  }
}

/** The bytes of one heartbeat envelope: an instance sends one a second, whatever it does. */
const heartbeatBytes = envelope.encode({
  _tag: "Cluster",
  origin: crypto.randomUUID(),
  to: undefined,
  payload: wire.encode({ k: "h", s: 123456 })
}).byteLength

/** Runs the trials on a broker of its own, the modes in turn; the medians per mode and client count. */
export const runPresence = (options: PresenceOptions = {}): Promise<PresenceResult> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const backend = options.backend ?? "redis"
    const cycles = options.cycles ?? 2000
    const trials = options.trials ?? 3
    const broker = yield* ownBroker(backend)
    const sides: Array<PresenceSide> = []
    const ratios: Array<{ clients: number; mode: Mode; opsRatio: number }> = []
    for (const clients of options.clients ?? [1, 20]) {
      const results = new Map<Mode, Array<PresenceSide>>(modes.map((mode) => [mode, []]))
      for (let t = 0; t < trials; t++) {
        for (const mode of modes) {
          results.get(mode)!.push(yield* Effect.scoped(trial(backend, broker, mode, clients, cycles)))
        }
      }
      const off = results.get("off")!
      for (const mode of modes) {
        const list = results.get(mode)!
        sides.push(medianSide(list))
        if (mode !== "off") {
          ratios.push({
            clients,
            mode,
            opsRatio: median(list.map((side, t) => side.opsPerSecond / off[t].opsPerSecond))
          })
        }
      }
    }
    return { backend, rooms, heartbeatBytes, sides, ratios }
  })))

export const printPresence = (result: PresenceResult, log: (line: string) => void = console.log) => {
  log(
    `Presence cost: room join and leave on one of two instances through ${
      result.backend === "nats" ? "NATS" : "Redis"
    } (${result.rooms} rooms, each always with a member), medians of alternating trials`
  )
  log(
    "  presence      clients   ops/s  CPU µs/op   join p50 / p99 µs   leave p50 / p99 µs   broker msgs/op  broker bytes/op"
  )
  for (const s of result.sides) {
    log(
      `  ${s.mode.padEnd(12)}  ${String(s.clients).padStart(7)}  ${
        Math.round(s.opsPerSecond).toLocaleString("en-US").padStart(6)
      }  ${s.cpuUsPerOp.toFixed(1).padStart(9)}  ${
        `${s.joinP50Us.toFixed(0)} / ${s.joinP99Us.toFixed(0)}`.padStart(18)
      }  ${`${s.leaveP50Us.toFixed(0)} / ${s.leaveP99Us.toFixed(0)}`.padStart(19)}  ${
        s.messagesPerOp.toFixed(3).padStart(15)
      }  ${s.bytesPerOp.toFixed(0).padStart(15)}`
    )
  }
  for (const { clients, mode, opsRatio } of result.ratios) {
    log(`  ops/s, presence ${mode} / off, ${clients} client(s): ${opsRatio.toFixed(2)}x (median of per-trial ratios)`)
  }
  log(`  and, on or off, one heartbeat per instance per second (${result.heartbeatBytes} bytes)`)
}

const arg = (name: string) => {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : Number(process.argv[i + 1])
}

if (import.meta.url === new URL(process.argv[1] ?? "", "file://").href) {
  const clients = arg("--clients")
  printPresence(
    await runPresence({
      backend: process.argv.includes("--nats") ? "nats" : "redis",
      cycles: arg("--cycles"),
      trials: arg("--trials"),
      clients: clients === undefined ? undefined : [clients]
    })
  )
}
