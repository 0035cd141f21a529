/**
 * What instances tell each other about the cluster: heartbeats, presence diffs
 * and snapshots, goodbyes, and remote control requests and answers. They travel
 * as the payload of the exchange's `Cluster` envelope, as compact JSON (metadata
 * is JSON anyway); a message of an unknown kind or shape decodes to `undefined`
 * and is ignored, so a newer instance can add kinds.
 *
 * @internal
 */
import type * as Presence from "../Presence.js"

/** A presence change of the sending instance: join, leave, metadata update. @internal */
export type Op =
  | readonly [op: "j", key: number, id: string, namespace: string, room: string, at: number, meta: Meta]
  | readonly [op: "l", key: number, namespace: string, room: string]
  | readonly [op: "u", key: number, meta: Meta]

type Meta = Presence.Metadata | null

/** A connection in a snapshot: its members as `[namespace, room, joinedAt]`. @internal */
export type WireConn = readonly [key: number, id: string, meta: Meta, entries: ReadonlyArray<WireEntry>]

/** @internal */
export type WireEntry = readonly [namespace: string, room: string, at: number]

/** Whom a remote operation is for. @internal */
export interface WireTarget {
  readonly i?: string
  readonly n?: string
  readonly r?: string
}

/** A remote operation: join or leave room `r`, disconnect with a code and reason, describe. @internal */
export type WireOp =
  | { readonly o: "j"; readonly r: string }
  | { readonly o: "l"; readonly r: string }
  | { readonly o: "d"; readonly c: number; readonly w: string }
  | { readonly o: "i" }

/** @internal */
export type Wire =
  /** heartbeat, with the number of the last diff sent */
  | { readonly k: "h"; readonly s: number }
  /** send me your snapshot */
  | { readonly k: "q" }
  /** diff number `s` */
  | { readonly k: "d"; readonly s: number; readonly o: ReadonlyArray<Op> }
  /** part `p` of `n` of a snapshot taken after diff `s` */
  | { readonly k: "s"; readonly s: number; readonly p: number; readonly n: number; readonly c: ReadonlyArray<WireConn> }
  /** the sender is shutting down */
  | { readonly k: "b" }
  /** remote operation request `c` with a budget of `ms` milliseconds */
  | { readonly k: "r"; readonly c: number; readonly t: WireTarget; readonly op: WireOp; readonly ms: number }
  /** the answer to request `c`: its value, or why it failed */
  | { readonly k: "a"; readonly c: number; readonly ok?: unknown; readonly err?: string }

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** @internal */
export const encode = (wire: Wire): Uint8Array => encoder.encode(JSON.stringify(wire))

const isString = (u: unknown): u is string => typeof u === "string"
const isNumber = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)
const isMeta = (u: unknown): u is Meta => u === null || (typeof u === "object" && !Array.isArray(u))

const isOp = (u: unknown): u is Op => {
  if (!Array.isArray(u)) return false
  switch (u[0]) {
    case "j":
      return u.length === 7 && isNumber(u[1]) && isString(u[2]) && isString(u[3]) && isString(u[4]) &&
        isNumber(u[5]) && isMeta(u[6])
    case "l":
      return u.length === 4 && isNumber(u[1]) && isString(u[2]) && isString(u[3])
    case "u":
      return u.length === 3 && isNumber(u[1]) && isMeta(u[2])
    default:
      return false
  }
}

const isEntry = (u: unknown): u is WireEntry =>
  Array.isArray(u) && u.length === 3 && isString(u[0]) && isString(u[1]) && isNumber(u[2])

const isConn = (u: unknown): u is WireConn =>
  Array.isArray(u) && u.length === 4 && isNumber(u[0]) && isString(u[1]) && isMeta(u[2]) && Array.isArray(u[3]) &&
  u[3].every(isEntry)

const isTarget = (u: unknown): u is WireTarget => {
  if (typeof u !== "object" || u === null) return false
  const t = u as Record<string, unknown>
  return (t.i === undefined || isString(t.i)) && (t.n === undefined || isString(t.n)) &&
    (t.r === undefined || isString(t.r))
}

const isWireOp = (u: unknown): u is WireOp => {
  if (typeof u !== "object" || u === null) return false
  const op = u as Record<string, unknown>
  switch (op.o) {
    case "j":
    case "l":
      return isString(op.r)
    case "d":
      return isNumber(op.c) && isString(op.w)
    case "i":
      return true
    default:
      return false
  }
}

/**
 * Decodes a cluster payload; anything else (garbage, an unknown kind or shape) is `undefined`.
 *
 * @internal
 */
export const decode = (payload: Uint8Array): Wire | undefined => {
  let u: unknown
  try {
    u = JSON.parse(decoder.decode(payload))
  } catch {
    return undefined
  }
  if (typeof u !== "object" || u === null) return undefined
  const w = u as Record<string, unknown>
  switch (w.k) {
    case "h":
      return isNumber(w.s) ? { k: "h", s: w.s } : undefined
    case "q":
      return { k: "q" }
    case "b":
      return { k: "b" }
    case "d":
      return isNumber(w.s) && Array.isArray(w.o) && w.o.every(isOp) ? { k: "d", s: w.s, o: w.o } : undefined
    case "s":
      return isNumber(w.s) && isNumber(w.p) && isNumber(w.n) && Array.isArray(w.c) && w.c.every(isConn)
        ? { k: "s", s: w.s, p: w.p, n: w.n, c: w.c }
        : undefined
    case "r":
      return isNumber(w.c) && isTarget(w.t) && isWireOp(w.op) && isNumber(w.ms)
        ? { k: "r", c: w.c, t: w.t, op: w.op, ms: w.ms }
        : undefined
    case "a":
      return isNumber(w.c) && (w.err === undefined || isString(w.err))
        ? { k: "a", c: w.c, ok: w.ok, ...(isString(w.err) ? { err: w.err } : {}) }
        : undefined
    default:
      return undefined
  }
}

/** The most JSON characters of connections one snapshot part carries (NATS's default payload limit is 1 MiB). */
const maxPartChars = 128 * 1024

/**
 * A snapshot taken after diff `seq`, split into parts that each stay well under
 * a broker's message size limit (at least one part, even when empty).
 *
 * @internal
 */
export const snapshotParts = (seq: number, conns: ReadonlyArray<WireConn>): ReadonlyArray<Uint8Array> => {
  const parts: Array<Array<WireConn>> = [[]]
  let size = 0
  for (const conn of conns) {
    const chars = JSON.stringify(conn).length
    if (size > 0 && size + chars > maxPartChars) {
      parts.push([])
      size = 0
    }
    parts[parts.length - 1].push(conn)
    size += chars
  }
  return parts.map((c, p) => encode({ k: "s", s: seq, p, n: parts.length, c }))
}
