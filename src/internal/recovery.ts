/**
 * Recoverable rooms, the server's side: which rooms keep a history (a cheap
 * lookup per broadcast, cached per room), storing a broadcast and delivering it
 * with its position to the connections that asked for positions (the others get
 * the frame they always got), and answering a join that resumes: live messages
 * for the joining connection wait while the history is read, the answer says what
 * was recovered, the missed messages follow in order, then the waiting ones
 * (duplicates dropped by offset), then live. The wire is in recoveryWire.ts, the
 * stores in historyStore.ts (memory) and below the exchange (Redis, JetStream).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Conn from "../Conn.js"
import * as Errors from "../Errors.js"
import type * as History from "../History.js"
import type * as Message from "../Message.js"
import type * as StackExchange from "../StackExchange.js"
import type { Broadcaster, Receiver, Skip } from "./broadcast.js"
import type { JoinRecovery } from "./connConfig.js"
import {
  type Cursor,
  MemoryStore,
  type Pending,
  type Position,
  type Read,
  roomKey,
  type Settings,
  type Stored,
  type StoredMessage
} from "./historyStore.js"
import * as msg from "./message.js"
import type { Frame } from "./outbox.js"
import { decide, header, marker, parseResume, replyBody, shared, withPosition } from "./recoveryWire.js"
import { type Registry, targets } from "./registry.js"
import type { SharedText } from "./transport.js"

/** @internal */
export const metrics = {
  recoveries: Metric.counter("effect_neffos_recoveries", {
    description: "resumes of recoverable rooms, by outcome (recovered or why not)",
    incremental: true
  }),
  replayed: Metric.histogram(
    "effect_neffos_recovery_replayed_messages",
    MetricBoundaries.exponential({ start: 1, factor: 2, count: 14 }),
    "messages replayed by a recovered resume"
  )
}

const defaults = {
  maxBytes: 64 * 1024 * 1024,
  maxRooms: 100_000,
  /** rooms whose setting is remembered; beyond it the cache starts again */
  cacheSize: 16_384,
  /** how long a resume waits for the exchange's subscriptions to be live */
  settleTimeout: Duration.seconds(1)
}

const toSettings = (settings: History.Settings | undefined): Settings | undefined =>
  settings === undefined ? undefined : {
    size: Math.max(1, Math.floor(settings.size)),
    ttl: Duration.toMillis(Duration.decode(settings.ttl))
  }

const matches = (pattern: string | RegExp, name: string): boolean => {
  if (typeof pattern === "string") return pattern === name
  pattern.lastIndex = 0
  return pattern.test(name)
}

/** The rules as one function of (namespace, room). */
const compile = (rooms: History.Rooms) => {
  if (typeof rooms === "function") return (namespace: string, room: string) => toSettings(rooms(namespace, room))
  const rules = rooms.map((rule) => ({ rule, settings: toSettings(rule)! }))
  return (namespace: string, room: string) => {
    for (const { rule, settings } of rules) {
      if ((rule.namespace === undefined || matches(rule.namespace, namespace)) && matches(rule.room, room)) {
        return settings
      }
    }
    return undefined
  }
}

/** A server connection as recovery sees it (serverConn.ts). @internal */
export interface RecoveringConn extends Receiver {
  /** set when the client asked for positions: its place in every recoverable room it is in */
  readonly recovery: Map<string, Cursor> | undefined
  readonly closed: boolean
  /** a join's answer: it does not wait for a flush window */
  writeExpedited(frame: Frame): boolean
}

/** @internal */
export interface Recovery<C extends RecoveringConn> {
  /** the history setting of a broadcast's room; undefined when it keeps none (or the broadcast has a `to`) */
  readonly settingsFor: (message: Message.Message, to: string | undefined) => Settings | undefined
  /** whether a connection asked for positions */
  readonly recovers: (request: Conn.Request) => boolean
  /**
   * This instance's broadcast into a recoverable room: stored and delivered here
   * (in memory), or left to the exchange (shared: it comes back from the broker
   * with its position).
   */
  readonly deliver: (message: Message.Message, settings: Settings, skip: Skip, strict: boolean) => Effect.Effect<number>
  /** whether the exchange carries the history (then `publish` it with its settings) */
  readonly isShared: () => boolean
  /**
   * A broadcast from the exchange: stored by the shared store (`stored`), or
   * another instance's broadcast into a room this one keeps in memory. Returns
   * how many it was offered to, or -1 when it is not for a recoverable room.
   */
  readonly deliverRemote: (
    message: Message.Message,
    to: string | undefined,
    skip: Skip,
    stored: Stored | undefined
  ) => number
  readonly joinRecovery: (conn: C, m: Message.Message) => JoinRecovery | undefined
  readonly history: (
    namespace: string,
    room: string,
    options?: History.ReadOptions
  ) => Effect.Effect<History.Page, Errors.HistoryUnavailable>
  readonly attach: (bridge: StackExchange.Bridge) => void
  readonly store: MemoryStore
}

/** @internal */
export const make = <C extends RecoveringConn>(
  options: History.Options,
  broadcaster: Broadcaster<C>,
  registry: Registry<C>,
  writeTimeout: Duration.Duration
): Effect.Effect<Recovery<C>> =>
  Effect.map(Effect.clock, (clock) => {
    const now = () => clock.unsafeCurrentTimeMillis()
    const settingsOf = compile(options.rooms)
    const cache = new Map<string, Settings | null>()
    const cached = (namespace: string, room: string): Settings | undefined => {
      const key = roomKey(namespace, room)
      const known = cache.get(key)
      if (known !== undefined) return known ?? undefined
      if (cache.size >= defaults.cacheSize) cache.clear()
      const settings = settingsOf(namespace, room)
      cache.set(key, settings ?? null)
      return settings
    }
    const maxReplay = Math.max(1, options.maxReplay ?? Infinity)
    const store = new MemoryStore({
      maxBytes: Math.max(4096, options.maxBytes ?? defaults.maxBytes),
      maxRooms: Math.max(1, options.maxRooms ?? defaults.maxRooms)
    }, now)
    let bridge: StackExchange.Bridge | undefined
    const sharedHistory = () => bridge?.history

    /** The frame of one receiver of a stored message (undefined: none now; it waits, or it is a duplicate). */
    const frameFor = (entry: StoredMessage, skipKey: number, key: string) => {
      const { message, stored } = entry
      let plain: SharedText | Uint8Array | undefined
      let positioned: SharedText | Uint8Array | undefined
      let skipped: string | Uint8Array | undefined
      return (conn: C) => {
        const excluded = conn.key === skipKey || (entry.exceptId !== undefined && conn.id === entry.exceptId)
        const cursors = conn.recovery
        if (cursors === undefined) return excluded ? undefined : (plain ??= shared(msg.encode(message)))
        const cursor = cursors.get(key)
        if (cursor !== undefined) {
          if (cursor.pending !== undefined) {
            if (cursor.pending.length - cursor.index >= cursor.limit) conn.unsafeClose(1008, "slow consumer", false)
            else cursor.pending.push({ entry, skipKey })
            return undefined
          }
          if (cursor.epoch === stored.epoch && stored.offset <= cursor.last) return undefined
          cursor.epoch = stored.epoch
          cursor.last = stored.offset
        }
        return excluded ? (skipped ??= marker(message, stored)) : (positioned ??= withPosition(message, stored))
      }
    }

    const membersOf = (message: Message.Message) => {
      const members = targets(registry.snapshot, message.namespace, message.room, undefined)
      return members === undefined || HashMap.isEmpty(members) ? undefined : HashMap.values(members)
    }

    const fanOutNow = (entry: StoredMessage, skipKey: number): number => {
      const members = membersOf(entry.message)
      if (members === undefined) return 0
      const frame = frameFor(entry, skipKey, roomKey(entry.message.namespace, entry.message.room))
      let count = 0
      for (const conn of members) {
        const chosen = frame(conn)
        if (chosen !== undefined) {
          conn.write(chosen)
          count++
        }
      }
      return count
    }

    const deliver = (message: Message.Message, settings: Settings, skip: Skip, strict: boolean) => {
      if (sharedHistory() !== undefined) return Effect.succeed(0)
      const entry = store.append(message.namespace, message.room, settings, message, skip.id)
      if (!strict) return Effect.sync(() => fanOutNow(entry, skip.key))
      const members = membersOf(message)
      if (members === undefined) return Effect.succeed(0)
      return broadcaster.deliverEach(members, frameFor(entry, skip.key, roomKey(message.namespace, message.room)), true)
    }

    const deliverRemote = (
      message: Message.Message,
      to: string | undefined,
      skip: Skip,
      stored: Stored | undefined
    ): number => {
      if (stored !== undefined) return fanOutNow({ stored, message, exceptId: skip.id }, skip.key)
      if (sharedHistory() !== undefined) return -1
      const settings = message.room.length === 0 || to !== undefined
        ? undefined
        : cached(message.namespace, message.room)
      if (settings === undefined) return -1
      return fanOutNow(store.append(message.namespace, message.room, settings, message, skip.id), skip.key)
    }

    const read = (
      namespace: string,
      room: string,
      settings: Settings,
      since: Position | undefined,
      limit: number
    ): Effect.Effect<Read, Errors.StackExchangeError> => {
      const history = sharedHistory()
      if (history === undefined) return Effect.sync(() => store.read(namespace, room, settings, since, limit))
      return history.read(namespace, room, settings, since, limit)
    }

    // -------------------------------------------------------------------------
    // a join that resumes
    // -------------------------------------------------------------------------

    /** Writes what waits for the connection, without dropping; returns the frame it waits to write, if any. */
    const writeSome = (conn: C, cursor: Cursor): string | Uint8Array | SharedText | undefined => {
      const pending = cursor.pending
      if (pending === undefined) return undefined
      while (cursor.index < pending.length) {
        const { entry, skipKey } = pending[cursor.index]
        const stored = entry.stored
        if (stored.epoch === cursor.epoch && stored.offset <= cursor.last) {
          cursor.index++
          continue
        }
        const excluded = conn.key === skipKey || (entry.exceptId !== undefined && conn.id === entry.exceptId)
        const frame = excluded ? marker(entry.message, stored) : withPosition(entry.message, stored)
        if (!conn.outbox.offerIfRoom(frame)) return frame
        cursor.epoch = stored.epoch
        cursor.last = stored.offset
        cursor.index++
      }
      // caught up: live messages are written as they come
      cursor.pending = undefined
      cursor.index = 0
      return undefined
    }

    const drain = (conn: C, cursor: Cursor): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (conn.closed) return Effect.void
        const blocked = writeSome(conn, cursor)
        if (blocked === undefined) return Effect.void
        return Effect.async<void>((resume) => conn.outbox.onRoom(() => resume(Effect.void), blocked)).pipe(
          Effect.timeoutOption(writeTimeout),
          Effect.flatMap((room) =>
            Option.isNone(room)
              ? Effect.sync(() => conn.unsafeClose(1008, "slow consumer", false))
              : drain(conn, cursor)
          )
        )
      })

    const outcome = (label: string) => metrics.recoveries.unsafeUpdate(1, [MetricLabel.make("outcome", label)])

    const answer = (
      conn: C,
      key: string,
      m: { readonly namespace: string; readonly room: string; readonly wait: string },
      settings: Settings,
      since: Position | undefined
    ): Effect.Effect<void> =>
      Effect.gen(function*() {
        const settled = bridge?.settled
        // a message published before the room's subscription is live would be missed live
        if (sharedHistory() !== undefined && settled !== undefined) {
          yield* Effect.ignore(Effect.timeout(settled, defaults.settleTimeout))
        }
        const limit = Math.min(settings.size, maxReplay)
        const result = yield* Effect.either(read(m.namespace, m.room, settings, since, since === undefined ? 0 : limit))
        if (conn.closed) return
        const cursor = conn.recovery?.get(key)
        if (cursor === undefined || cursor.pending === undefined) {
          // the room was left while its history was read: the join is answered all the same
          conn.writeExpedited(msg.encode(msg.unsafeMake("", "", "", "", undefined, false, m.wait, false, false)))
          return
        }
        let body: string
        let replay: ReadonlyArray<StoredMessage> = []
        if (result._tag === "Left") {
          body = replyBody("storeDown")
          cursor.epoch = ""
          cursor.last = -1
          if (since !== undefined) outcome("storeDown")
        } else {
          const position = result.right.position
          const reason = since === undefined ? "fresh" : decide(since, result.right, settings, limit, now())
          if (reason === undefined) {
            replay = result.right.entries
            body = replyBody("recovered", since, replay.length)
            cursor.epoch = since!.epoch
            cursor.last = since!.offset
            outcome("recovered")
            metrics.replayed.unsafeUpdate(replay.length, [])
          } else {
            // live from the room's position; what waited since the join began comes after it, even if the read saw it
            let offset = position.offset
            for (let i = cursor.index; i < cursor.pending.length; i++) {
              const stored = cursor.pending[i].entry.stored
              if (stored.epoch === position.epoch) {
                offset = Math.min(offset, stored.offset - 1)
                break
              }
            }
            const start = { epoch: position.epoch, offset }
            body = replyBody(reason, start)
            cursor.epoch = start.epoch
            cursor.last = start.offset
            if (reason !== "fresh") outcome(reason)
          }
        }
        conn.writeExpedited(msg.encode(msg.unsafeMake("", "", "", body, undefined, false, m.wait, false, false)))
        const waiting = cursor.pending.slice(cursor.index)
        cursor.pending = replay.length === 0
          ? waiting
          : replay.map((entry): Pending => ({ entry, skipKey: -1 })).concat(waiting)
        cursor.index = 0
        yield* drain(conn, cursor)
      })

    const joinRecovery = (conn: C, m: Message.Message): JoinRecovery | undefined => {
      const cursors = conn.recovery
      if (cursors === undefined || m.room.length === 0) return undefined
      const settings = cached(m.namespace, m.room)
      if (settings === undefined) return undefined
      const key = roomKey(m.namespace, m.room)
      return {
        begin: () => {
          cursors.set(key, { epoch: "", last: -1, pending: [], index: 0, limit: Math.max(1024, 2 * settings.size) })
        },
        answer: (wait) =>
          answer(conn, key, { namespace: m.namespace, room: m.room, wait }, settings, parseResume(m.body))
      }
    }

    // -------------------------------------------------------------------------
    // server.history
    // -------------------------------------------------------------------------

    const history = (
      namespace: string,
      room: string,
      readOptions?: History.ReadOptions
    ): Effect.Effect<History.Page, Errors.HistoryUnavailable> =>
      Effect.suspend(() => {
        const settings = cached(namespace, room)
        if (settings === undefined) {
          return Effect.fail(new Errors.HistoryUnavailable({ namespace, room, reason: "NotRecoverable" }))
        }
        const limit = Math.max(0, Math.floor(readOptions?.limit ?? settings.size))
        const since = readOptions?.since
        const page = (read: Read, complete: boolean, entries: ReadonlyArray<StoredMessage>): History.Page => ({
          position: read.position,
          complete,
          entries: entries.map(({ message, stored }) => ({
            position: { epoch: stored.epoch, offset: stored.offset },
            message,
            time: stored.time
          }))
        })
        const latest = Effect.map(read(namespace, room, settings, undefined, limit), (read) => {
          const fresh = read.entries.filter((entry) => entry.stored.time >= now() - settings.ttl)
          return page(read, false, fresh.slice(Math.max(0, fresh.length - limit)))
        })
        const result = since === undefined ? latest : Effect.map(
          read(namespace, room, settings, since, limit),
          (read) => page(read, decide(since, read, settings, limit, now()) === undefined, read.entries.slice(0, limit))
        )
        return Effect.mapError(
          result,
          (cause) => new Errors.HistoryUnavailable({ namespace, room, reason: "StoreDown", cause })
        )
      })

    return {
      settingsFor: (message, to) =>
        message.room.length === 0 || to !== undefined ? undefined : cached(message.namespace, message.room),
      recovers: (request) => request.headers[header] === "1",
      deliver,
      isShared: () => sharedHistory() !== undefined,
      deliverRemote,
      joinRecovery,
      history,
      attach: (attached) => {
        bridge = attached
      },
      store
    }
  })
