/**
 * The server side of the control channel: every server script builds its server and hands it to
 * `host`, which answers the benchmark's commands (broadcast, CPU time, memory, connection count).
 */
import type * as http from "node:http"
import type { AddressInfo } from "node:net"
import { serve } from "./ipc.js"
import { monoMs, nextTurn, sleep } from "./time.js"
import { stampedBody } from "./wire.js"

export interface BenchServer {
  readonly port: number
  /** The HTTP path clients upgrade on. */
  readonly path: string
  /** Sends `body` to every client, or to the members of `room` when not empty. */
  readonly broadcast: (room: string, body: string) => void | Promise<void>
  readonly connections: () => number
}

export interface BroadcastCommand {
  readonly room: string
  readonly count: number
  /** Body size in bytes. */
  readonly size: number
  /** Broadcasts per event-loop turn. */
  readonly perTurn: number
  /** When set, waits this long between turns (a paced load) instead of one event-loop turn. */
  readonly intervalMs?: number | undefined
}

const collectGarbage = async () => {
  if (!globalThis.gc) throw new Error("start servers with --expose-gc")
  globalThis.gc()
  await nextTurn()
  globalThis.gc()
}

/** What every benchmark server process reports of itself: its CPU time and its memory after GC. */
export const processProbes = {
  /** Process CPU time (user + system) in µs. */
  cpu: () => {
    const usage = process.cpuUsage()
    return usage.user + usage.system
  },
  /** RSS and heap after a full GC, in bytes. */
  memory: async () => {
    await collectGarbage()
    const usage = process.memoryUsage()
    return { rss: usage.rss, heapUsed: usage.heapUsed }
  }
}

const api = (server: BenchServer) => ({
  info: () => ({ port: server.port, path: server.path }),
  broadcast: async (command: BroadcastCommand) => {
    const startMs = monoMs()
    const pace = command.intervalMs === undefined ? nextTurn : () => sleep(command.intervalMs!)
    for (let sent = 0; sent < command.count; await pace()) {
      for (let k = 0; k < command.perTurn && sent < command.count; k++, sent++) {
        const pending = server.broadcast(command.room, stampedBody(command.size, sent, monoMs()))
        if (pending) await pending
      }
    }
    return { startMs, endMs: monoMs() }
  },
  ...processProbes,
  connections: () => server.connections()
})

export type ServerApi = ReturnType<typeof api>

/** Listens on an OS-chosen port of 127.0.0.1 and resolves with the port. */
export const listen = (server: http.Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port))
  })

export const host = (start: () => Promise<BenchServer>): void => {
  start().then((server) => serve(api(server)), (error: unknown) => {
    console.error(error)
    process.exit(1)
  })
}
