/**
 * Facts about the machine the numbers come from, and the limits that shape the run.
 */
import { execFileSync } from "node:child_process"
import * as os from "node:os"

const shell = (command: string): string | undefined => {
  try {
    return execFileSync("sh", ["-c", command], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return undefined
  }
}

export interface Machine {
  readonly cpuModel: string
  readonly cores: number
  readonly node: string
  readonly platform: string
  /** Server on CPU 0, load generator on CPU 1, when taskset exists and there are two CPUs. */
  readonly pinned: boolean
  /** The soft open-files limit every child inherits. */
  readonly openFilesLimit: number
}

export const machine = (): Machine => {
  const cpus = os.cpus()
  const limit = shell("ulimit -n")
  return {
    cpuModel: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    pinned: cpus.length >= 2 && shell("command -v taskset") !== undefined,
    openFilesLimit: limit === undefined || limit === "unlimited" ? Infinity : Number(limit)
  }
}

/** Descriptors a process keeps besides its sockets (stdio, IPC, epoll, the listener, module files). */
const fdHeadroom = 256

/**
 * The most connections the run may hold at once: the server and the load generator each hold one
 * socket per connection, in separate processes, so each needs that many descriptors plus headroom.
 */
export const connectionCap = (m: Machine): number => Math.max(0, m.openFilesLimit - fdHeadroom)
