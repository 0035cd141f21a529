/**
 * Brokers for the cluster bench: whether the shared ones answer, and a private `redis-server` or
 * `nats-server` on a free port that the broker-restart scenario may kill and start again. The shared
 * brokers are never touched beyond a probe; a private one is ended by its own pid.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as net from "node:net"
import { sleep } from "../lib/time.js"

export type Backend = "redis" | "nats"

/**
 * Whether a broker answers on `port` within `timeoutMs`: Redis must answer `PING` with `+PONG`, NATS
 * greets every connection with `INFO`. Resolves with the reason when it does not.
 */
export const probe = (backend: Backend, port: number, timeoutMs = 1500): Promise<string | undefined> =>
  new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    let text = ""
    const done = (reason: string | undefined) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(reason)
    }
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs)
    socket.on("error", (error) => done(error.message))
    socket.on("connect", () => {
      if (backend === "redis") socket.write("PING\r\n")
    })
    socket.on("data", (data) => {
      text += data.toString()
      if (backend === "redis" && text.includes("\r\n")) {
        done(text.startsWith("+PONG") ? undefined : `unexpected answer ${JSON.stringify(text.slice(0, 60))}`)
      }
      if (backend === "nats" && text.includes("\r\n")) {
        done(text.startsWith("INFO") ? undefined : `unexpected greeting ${JSON.stringify(text.slice(0, 60))}`)
      }
    })
  })

const binaries: Record<Backend, string> = { redis: "redis-server", nats: "nats-server" }

export const hasBinary = (backend: Backend): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${binaries[backend]}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** A port nobody listens on now (the OS's choice, released at once). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const running = new Set<ChildProcess>()

/** Kills every private broker still running (by its pid); safe in an `exit` handler. */
export const killBrokers = () => {
  for (const child of running) child.kill("SIGKILL")
}

export interface PrivateBroker {
  readonly backend: Backend
  readonly port: number
  readonly url: string
  /** Starts the broker (again) and resolves once it answers, with the time that took. */
  readonly start: () => Promise<number>
  /** Kills the broker with SIGKILL, as a crash would, and resolves once the process is gone. */
  readonly kill: () => Promise<void>
}

export const privateBroker = async (backend: Backend): Promise<PrivateBroker> => {
  const port = await freePort()
  let child: ChildProcess | undefined
  const args = backend === "redis"
    ? ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]
    : ["-a", "127.0.0.1", "-p", String(port)]
  const start = async () => {
    const t0 = Date.now()
    const proc = spawn(binaries[backend], args, { stdio: "ignore" })
    child = proc
    running.add(proc)
    proc.once("exit", () => running.delete(proc))
    for (let i = 0; i < 100; i++) {
      if (await probe(backend, port, 500) === undefined) return Date.now() - t0
      if (proc.exitCode !== null) break
      await sleep(50)
    }
    proc.kill("SIGKILL")
    throw new Error(`${binaries[backend]} on port ${port} did not come up`)
  }
  const kill = async () => {
    const proc = child
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const gone = new Promise<void>((resolve) => proc.once("exit", () => resolve()))
    proc.kill("SIGKILL")
    await Promise.race([gone, sleep(5000)])
  }
  return {
    backend,
    port,
    url: backend === "redis" ? `redis://127.0.0.1:${port}` : `127.0.0.1:${port}`,
    start,
    kill
  }
}
