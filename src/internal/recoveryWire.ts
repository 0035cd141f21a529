/**
 * The wire of recoverable rooms, which only connections that asked for positions
 * (`X-Neffos-Recovery: 1`) ever see, and the rule a resume is judged by.
 *
 * - A message of a recoverable room carries `!<offset>:<prev>:<epoch>` in its
 *   `wait` field (a neffos broadcast's is empty); a message the connection is
 *   excluded from comes as a marker: only that, `isNoOp` set, no event or body.
 * - A join request whose body is `neffos-resume:<offset>:<epoch>` resumes from
 *   there (also for a room already joined: a resync after a gap).
 * - The join's reply body is `neffos-recovery:` and `fresh:<offset>:<epoch>` (live
 *   from this position), `recovered:<offset>:<epoch>:<count>` (from the client's
 *   position; `count` replayed messages follow), `<reason>:<offset>:<epoch>` (not
 *   recovered; live from this position) or `storeDown` (no position).
 *
 * @internal
 */
import type * as History from "../History.js"
import type * as Message from "../Message.js"
import type { Position, Read, Settings, Stored } from "./historyStore.js"
import * as msg from "./message.js"
import { SharedText } from "./transport.js"

/** The request header by which a client asks for positions. @internal */
export const header = "x-neffos-recovery"

export const resumePrefix = "neffos-resume:"
export const replyPrefix = "neffos-recovery:"

/** The `wait` field of a message with its position. @internal */
export const positionToken = (stored: Stored): string => `!${stored.offset}:${stored.prev}:${stored.epoch}`

/** @internal */
export const shared = (encoded: string | Uint8Array) => typeof encoded === "string" ? new SharedText(encoded) : encoded

/** A message with its position, framed once for its receivers. @internal */
export const withPosition = (m: Message.Message, stored: Stored) =>
  shared(msg.encode(msg.unsafeMake(
    m.namespace,
    m.room,
    m.event,
    m.body,
    m.error,
    m.binary,
    positionToken(stored),
    false,
    false
  )))

/** The marker of a message the connection is excluded from. @internal */
export const marker = (m: Message.Message, stored: Stored) =>
  msg.encode(msg.unsafeMake(m.namespace, m.room, "", "", undefined, false, positionToken(stored), true, false))

/** `neffos-resume:<offset>:<epoch>`, or undefined. @internal */
export const parseResume = (body: string | Uint8Array): Position | undefined => {
  if (typeof body !== "string" || !body.startsWith(resumePrefix)) return undefined
  const rest = body.slice(resumePrefix.length)
  const colon = rest.indexOf(":")
  const offset = Number(rest.slice(0, colon))
  if (colon === -1 || !Number.isSafeInteger(offset) || offset < 0) return undefined
  return { epoch: rest.slice(colon + 1), offset }
}

/**
 * The join reply's body: `fresh:<offset>:<epoch>` (live from this position),
 * `recovered:<offset>:<epoch>:<count>` (from the client's position, `count`
 * replayed messages follow), `<reason>:<offset>:<epoch>` (not recovered; live from
 * this position) or `storeDown` (no position), each after `neffos-recovery:`.
 */
export const replyBody = (status: string, position?: Position, count?: number) =>
  replyPrefix + status + (position === undefined ? "" : `:${position.offset}:${position.epoch}`) +
  (count === undefined ? "" : `:${count}`)

/**
 * Whether what follows `since` is recovered (undefined) or why not: the epoch
 * must match, the store must vouch that nothing is missing, and the gap must fit
 * the room's `size`, `ttl` and the replay limit.
 *
 * @internal
 */
export const decide = (
  since: Position,
  read: Read,
  settings: Settings,
  limit: number,
  now: number
): History.NotRecoveredReason | undefined => {
  if (read.position.epoch !== since.epoch || since.offset > read.position.offset) return "epochChanged"
  if (since.offset === read.position.offset && read.entries.length === 0) return read.covered ? undefined : "trimmed"
  if (!read.covered) return "trimmed"
  if (read.count !== undefined && read.count > settings.size) return "trimmed"
  if (read.entries.length > limit) return limit < settings.size ? "tooMany" : "trimmed"
  const oldest = now - settings.ttl
  for (const entry of read.entries) if (entry.stored.time < oldest) return "trimmed"
  return undefined
}
