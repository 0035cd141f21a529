/**
 * A load-generator process of the cluster bench: plain `ws` clients speaking neffos (handshake `M`,
 * namespace connect), each with the connection id it asks for in its URL. They count the events
 * the servers send them (broadcasts and sends), answer the servers' asks by echoing them, and in a
 * stream measurement note which broadcast numbers arrived.
 */
import { WebSocket } from "ws"
import { serve } from "../lib/ipc.js"
import { monoMs } from "../lib/time.js"
import { namespace } from "../lib/wire.js"

/** Connections opened at once per process. */
const concurrency = 64
const connectTimeoutMs = 15_000
/** Broadcast numbers a stream measurement may track. */
const maxStreamSeq = 1_000_000

const eventPrefix = `;${namespace};`
const connectFrame = `$c;${namespace};;_OnNamespaceConnect;0;0;`

let sockets: Array<WebSocket> = []
let epoch = 0
let delivered = 0
let target = Infinity
let armedMs = 0
let firstMs = 0
let lastMs = 0
let onTarget: (() => void) | undefined
let asksAnswered = 0
/** In a stream measurement: deliveries per broadcast number, and when each number first arrived. */
let streamCounts: Uint32Array | undefined
let streamFirst: Float64Array | undefined

/** The broadcast number in a body written by `broadcastBody` (`b<seq>xxx…`), after the sixth `;`. */
const seqOf = (frame: string): number => {
  let at = 0
  for (let k = 0; k < 6; k++) at = frame.indexOf(";", at) + 1
  if (frame.charCodeAt(at) !== 98) return -1
  let n = 0
  for (let i = at + 1; i < frame.length; i++) {
    const c = frame.charCodeAt(i) - 48
    if (c < 0 || c > 9) break
    n = n * 10 + c
  }
  return n
}

const onEvent = (frame: string) => {
  const now = monoMs()
  if (delivered === 0) firstMs = now
  lastMs = now
  if (streamCounts !== undefined) {
    const seq = seqOf(frame)
    if (seq >= 0 && seq < streamCounts.length) {
      if (streamCounts[seq]++ === 0) streamFirst![seq] = now
    }
  }
  if (++delivered === target) onTarget?.()
}

/** Opens one client with this id and resolves once its namespace is connected. */
const open = (url: string, id: string): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?id=${encodeURIComponent(id)}`, {
      perMessageDeflate: false,
      skipUTF8Validation: true
    })
    let step = 0
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error(`connect ${id}: no namespace connect within ${connectTimeoutMs} ms`))
    }, connectTimeoutMs)
    ws.on("open", () => ws.send("M"))
    ws.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    ws.on("close", () => {
      clearTimeout(timer)
      reject(new Error("closed"))
    })
    ws.on("message", (data: Buffer) => {
      const frame = data.toString()
      if (step === 0) {
        step = 1
        return ws.send(connectFrame)
      }
      if (step === 1) {
        step = 2
        clearTimeout(timer)
        return resolve(ws)
      }
      if (frame.startsWith(eventPrefix)) return onEvent(frame)
      const c = frame.charCodeAt(0)
      // a server's ask carries a numeric token: the reply is the same frame
      if (c >= 48 && c <= 57) {
        asksAnswered++
        ws.send(frame)
      }
    })
  })

const api = {
  /** Opens `count` clients with ids `<idPrefix><from>` … `<idPrefix><from + count - 1>`. */
  connect: async ({ count, from, idPrefix, url }: { url: string; count: number; from: number; idPrefix: string }) => {
    const started = epoch
    const errors: Array<unknown> = []
    let next = 0
    const startMs = monoMs()
    const lane = async () => {
      while (next < count) {
        const i = next++
        await open(url, idPrefix + (from + i)).then(
          (ws) => (epoch === started ? sockets.push(ws) : ws.terminate()),
          (error: unknown) => errors.push(error)
        )
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane))
    if (errors.length > 0) {
      throw new Error(`${errors.length} of ${count} connections failed, first: ${String(errors[0])}`)
    }
    return { elapsedMs: monoMs() - startMs }
  },
  /** Counts events from zero towards `expected`; with `streamSize`, also per broadcast number. */
  arm: ({ expected, streamSize }: { expected: number; streamSize?: number }) => {
    delivered = 0
    target = expected
    armedMs = firstMs = lastMs = monoMs()
    const size = Math.min(streamSize ?? 0, maxStreamSeq)
    streamCounts = size > 0 ? new Uint32Array(size) : undefined
    streamFirst = size > 0 ? new Float64Array(size) : undefined
  },
  /**
   * Waits until the armed count arrived, or nothing arrived for `idleMs` since the later of the last
   * event and `quietFromMs`, or `maxMs` passed since arming.
   */
  deliveries: ({ idleMs, maxMs, quietFromMs }: { idleMs: number; maxMs: number; quietFromMs: number }) =>
    new Promise<{ delivered: number; firstMs: number; lastMs: number }>((resolve) => {
      const finish = () => {
        clearInterval(timer)
        onTarget = undefined
        resolve({ delivered, firstMs, lastMs })
      }
      const timer = setInterval(() => {
        const now = monoMs()
        if (now - Math.max(lastMs, quietFromMs) > idleMs || now - armedMs > maxMs) finish()
      }, 20)
      if (delivered >= target) finish()
      else onTarget = finish
    }),
  /** Per broadcast number of the armed stream: deliveries, and when the first arrived. */
  streamReport: () => ({
    counts: Array.from(streamCounts ?? []),
    first: Array.from(streamFirst ?? [])
  }),
  asksAnswered: () => asksAnswered,
  cpu: () => {
    const usage = process.cpuUsage()
    return usage.user + usage.system
  },
  closeAll: () => {
    epoch++
    for (const ws of sockets) ws.terminate()
    sockets = []
  }
}

export type ScaleLoadApi = typeof api

serve(api)
