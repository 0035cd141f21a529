/**
 * Presence pushed to clients, for the rooms the application opted in: changes are
 * gathered for `pushInterval`, then every room that changed gets one frame per
 * connection of this instance — a `state` for the connections that joined since
 * the last frame, a `diff` for the others — each frame encoded once. Every
 * instance pushes to its own connections from its own replica.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Queue from "effect/Queue"
import type * as Presence from "../Presence.js"
import * as msg from "./message.js"
import { entryKey, refOf, type Replica } from "./presence.js"
import { type Registry, targets } from "./registry.js"
import type { ServerConn } from "./serverConn.js"
import { SharedText } from "./transport.js"

interface Batch {
  readonly namespace: string
  readonly room: string
  /** every member that changed, as it was before the first change of this batch (undefined: absent) */
  readonly before: Map<string, Presence.Member | undefined>
  /** local connections (by ref) that joined during this batch */
  readonly newcomers: Set<string>
}

const toPush = (member: Presence.Member): Presence.PushMember =>
  member.metadata === undefined
    ? { ref: member.ref, id: member.id, joinedAt: member.joinedAt }
    : { ref: member.ref, id: member.id, joinedAt: member.joinedAt, meta: member.metadata }

const same = (a: Presence.Member, b: Presence.Member) =>
  a.joinedAt === b.joinedAt && JSON.stringify(a.metadata) === JSON.stringify(b.metadata)

/** @internal */
export interface Pusher {
  readonly onChange: (change: Presence.Change) => void
  /** gathers and pushes, for as long as it runs */
  readonly run: Effect.Effect<never>
}

/** @internal */
export const make = (
  options: {
    readonly push: (namespace: string, room: string) => boolean
    readonly event: string
    readonly interval: Duration.Duration
    readonly self: string
  },
  replica: Replica,
  registry: Registry<ServerConn>
): Effect.Effect<Pusher> =>
  Effect.map(Queue.sliding<void>(1), (dirty) => {
    let batches = new Map<string, Batch>()

    const onChange = (change: Presence.Change): void => {
      const member = change.member
      if (!options.push(member.namespace, member.room)) return
      const key = entryKey(member.namespace, member.room)
      let batch = batches.get(key)
      if (batch === undefined) {
        batch = { namespace: member.namespace, room: member.room, before: new Map(), newcomers: new Set() }
        batches.set(key, batch)
        if (batches.size === 1) dirty.unsafeOffer(undefined)
      }
      if (!batch.before.has(member.ref)) {
        batch.before.set(
          member.ref,
          change._tag === "Join"
            ? undefined
            : change._tag === "Leave"
            ? member
            : { ...member, metadata: change.previous }
        )
      }
      if (change._tag === "Join" && member.instance === options.self) batch.newcomers.add(member.ref)
    }

    const frame = (batch: Batch, body: Presence.PushFrame) =>
      new SharedText(
        msg.encode(
          msg.unsafeMake(
            batch.namespace,
            batch.room,
            options.event,
            JSON.stringify(body),
            undefined,
            false,
            "",
            false,
            false
          )
        ) as string
      )

    const flushBatch = (batch: Batch) => {
      const local = targets(registry.snapshot, batch.namespace, batch.room, undefined)
      if (local === undefined || HashMap.isEmpty(local)) return
      const group = replica.group(batch.namespace, batch.room)
      const joins: Array<Presence.PushMember> = []
      const leaves: Array<Presence.PushMember> = []
      const updates: Array<Presence.PushMember> = []
      for (const [ref, before] of batch.before) {
        const now = group?.members.get(ref)
        if (before === undefined) {
          if (now !== undefined) joins.push(toPush(now))
        } else if (now === undefined) {
          leaves.push(toPush(before))
        } else if (!same(before, now)) {
          updates.push(toPush(now))
        }
      }
      const count = replica.count(batch.namespace, batch.room)
      let diff: SharedText | undefined
      let state: SharedText | undefined
      for (const conn of HashMap.values(local)) {
        if (batch.newcomers.has(refOf(options.self, conn.key))) {
          state ??= frame(batch, {
            type: "state",
            members: replica.members(batch.namespace, batch.room).map(toPush),
            count
          })
          conn.write(state)
        } else if (joins.length + leaves.length + updates.length > 0) {
          diff ??= frame(batch, { type: "diff", joins, leaves, updates, count })
          conn.write(diff)
        }
      }
    }

    const flush = Effect.sync(() => {
      const current = batches
      batches = new Map()
      for (const batch of current.values()) flushBatch(batch)
    })

    return {
      onChange,
      run: Effect.forever(Effect.zipRight(Effect.zipRight(Queue.take(dirty), Effect.sleep(options.interval)), flush))
    }
  })

/** @internal */
export const defaults = {
  event: "_OnPresence",
  interval: Duration.millis(50)
}
