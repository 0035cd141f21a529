/**
 * The load generator process: holds the benchmark's client connections and runs the client side of
 * every scenario on the benchmark's command.
 */
import { serve } from "../lib/ipc.js"
import { monoMs, quantile } from "../lib/time.js"
import { stampOf } from "../lib/wire.js"
import { connect, type Session } from "./session.js"
import { type WireName, wires } from "./wires.js"

/** Connections opened at once; stays well below the servers' listen backlog. */
const concurrency = 100
/** Connect-and-drop loops running side by side in the churn scenario. */
const churnLanes = 50
const maxLatencySamples = 1_000_000
const maxChurnConnects = 1_000_000

let sessions: Array<Session> = []
/** Bumped by closeAll, so a connection wave still running from an abandoned request cannot leak clients. */
let epoch = 0
let delivered = 0
let target = Infinity
let armedMs = 0
let lastMs = 0
let onTarget: (() => void) | undefined
/** Delivery latencies of the armed round (receive time minus the time the server was asked to send). */
const deliveryLatencies = new Float64Array(maxLatencySamples)

const onBroadcast = (session: Session, frame: string) => {
  if (!session.counting) return
  lastMs = monoMs()
  if (delivered < maxLatencySamples) deliveryLatencies[delivered] = lastMs - stampOf(frame)
  if (++delivered === target) onTarget?.()
}

/** Runs `task` for 0..count-1 with at most `width` in flight; resolves with the failures. */
const pool = async (count: number, width: number, task: (i: number) => Promise<void>) => {
  const errors: Array<unknown> = []
  let next = 0
  const lane = async () => {
    while (next < count) {
      await task(next++).catch((error: unknown) => errors.push(error))
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, count) }, lane))
  return errors
}

const throwIfAny = (errors: ReadonlyArray<unknown>, what: string) => {
  if (errors.length > 0) throw new Error(`${errors.length} ${what} failed, first: ${String(errors[0])}`)
}

interface Quiet {
  readonly idleMs: number
  readonly maxMs: number
  readonly quietFromMs: number
}

export interface Target {
  readonly wire: WireName
  readonly url: string
}

const api = {
  /** Opens `count` more clients, each ready for events. */
  connect: async ({ count, url, wire }: Target & { readonly count: number }) => {
    const started = epoch
    const errors = await pool(count, concurrency, async () => {
      const session = await connect(wires[wire], url, onBroadcast)
      if (epoch === started) sessions.push(session)
      else session.terminate()
    })
    throwIfAny(errors, `of ${count} connections`)
  },
  join: async ({ room }: { readonly room: string }) => {
    const errors = await pool(sessions.length, concurrency, (i) => sessions[i].wire.join(sessions[i], room))
    throwIfAny(errors, "room joins")
  },
  /** Starts counting broadcasts from zero towards `expected`. */
  arm: ({ expected }: { readonly expected: number }) => {
    delivered = 0
    target = expected
    armedMs = lastMs = monoMs()
  },
  /**
   * Waits until the armed count arrived, or nothing arrived for `idleMs` since the later of the last
   * delivery and `quietFromMs` (when the server finished sending), or `maxMs` passed since arming.
   */
  deliveries: ({ idleMs, maxMs, quietFromMs }: Quiet) =>
    new Promise<{ delivered: number; lastMs: number; p50Us: number; p99Us: number }>((resolve) => {
      const finish = () => {
        clearInterval(timer)
        onTarget = undefined
        const sorted = deliveryLatencies.subarray(0, Math.min(delivered, maxLatencySamples)).sort()
        resolve({ delivered, lastMs, p50Us: quantile(sorted, 0.5) * 1e3, p99Us: quantile(sorted, 0.99) * 1e3 })
      }
      const timer = setInterval(() => {
        const now = monoMs()
        if (now - Math.max(lastMs, quietFromMs) > idleMs || now - armedMs > maxMs) finish()
      }, 20)
      if (delivered >= target) finish()
      else onTarget = finish
    }),
  /** The first `clients` clients each keep one echo request in flight for `durationMs`. */
  echo: async ({ clients, durationMs }: { readonly clients: number; readonly durationMs: number }) => {
    const chosen = sessions.slice(0, clients)
    const latencies = new Float64Array(maxLatencySamples)
    let replies = 0
    const startMs = monoMs()
    const deadline = startMs + durationMs
    // a reply that never comes ends its client's loop by closing it
    const watchdog = setTimeout(() => chosen.forEach((s) => s.terminate()), durationMs + 10_000)
    const errors = await pool(chosen.length, chosen.length, async (i) => {
      while (monoMs() < deadline) {
        const sentMs = monoMs()
        await chosen[i].wire.echo(chosen[i])
        if (replies < latencies.length) latencies[replies] = monoMs() - sentMs
        replies++
      }
    })
    const elapsedMs = monoMs() - startMs
    clearTimeout(watchdog)
    throwIfAny(errors, "echo clients")
    const sorted = latencies.subarray(0, Math.min(replies, latencies.length)).sort()
    return { replies, elapsedMs, p50Us: quantile(sorted, 0.5) * 1e3, p99Us: quantile(sorted, 0.99) * 1e3 }
  },
  pause: ({ index }: { readonly index: number }) => sessions[index].pause(),
  closeAll: () => {
    epoch++
    for (const session of sessions) session.terminate()
    sessions = []
  },
  /** Connects (handshake and namespace connect) and drops clients in a loop for `durationMs`. */
  churn: async ({ durationMs, url, wire }: Target & { readonly durationMs: number }) => {
    const startMs = monoMs()
    const deadline = startMs + durationMs
    let connects = 0
    let attempts = 0
    const errors = await pool(churnLanes, churnLanes, async () => {
      while (monoMs() < deadline && attempts++ < maxChurnConnects) {
        const session = await connect(wires[wire], url, onBroadcast)
        session.terminate()
        connects++
      }
    })
    throwIfAny(errors, "churn lanes")
    return { connects, elapsedMs: monoMs() - startMs }
  }
}

export type LoadApi = typeof api

serve(api)
