/**
 * Local fan-out: a broadcast's frame is encoded once and offered to every
 * receiver's outbox in one synchronous step, so two broadcasts reach every
 * receiver in the same relative order and nobody waits for a slow receiver. In
 * strict mode the broadcaster waits for room instead of dropping (one strict
 * broadcast at a time, so that strict broadcasts keep one order too); a receiver
 * still full after `writeTimeout` is closed as a slow consumer.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import type * as Message from "../Message.js"
import * as msg from "./message.js"
import { frameLength, type Observer } from "./observe.js"
import type { Frame, Outbox } from "./outbox.js"
import { type Member, type Snapshot, targets } from "./registry.js"
import { SharedText } from "./transport.js"

/** What a broadcast needs of a receiving connection. @internal */
export interface Receiver extends Member {
  readonly outbox: Outbox
  /** offers a frame to the outbox (its policy applies when full); false when closed */
  write(frame: Frame): boolean
  unsafeClose(code: number, reason: string, drain?: boolean): void
}

/** Who a delivery skips: one exact connection (by key) and/or every connection with an id. @internal */
export interface Skip {
  readonly key: number
  readonly id: string | undefined
}

/** @internal */
export const noSkip: Skip = { key: -1, id: undefined }

/** @internal */
export interface Broadcaster<C extends Receiver> {
  /** Like `deliver`, not strict: done when it returns. */
  readonly fanOut: (s: Snapshot<C>, message: Message.Message, to: string | undefined, skip: Skip) => number
  /**
   * Offers the message to the local receivers (the members of its namespace or
   * room, narrowed to id `to`); returns how many it was offered to.
   */
  readonly deliver: (
    s: Snapshot<C>,
    message: Message.Message,
    to: string | undefined,
    skip: Skip,
    strict: boolean
  ) => Effect.Effect<number>
  /**
   * Like `deliver`, with the frame of each receiver chosen by `frameFor` (called
   * once per receiver; `undefined` skips it): a recoverable room's receivers get
   * its message with or without its position (recovery.ts).
   */
  readonly deliverEach: (
    members: Iterable<C>,
    frameFor: (conn: C) => Frame | undefined,
    strict: boolean
  ) => Effect.Effect<number>
}

/** @internal */
export const make = <C extends Receiver>(
  writeTimeout: Duration.Duration,
  observe?: Observer | undefined
): Effect.Effect<Broadcaster<C>> =>
  Effect.map(Effect.makeSemaphore(1), (strictLock) => {
    /** Waits until the frame fits in the receiver's outbox; a receiver still full after writeTimeout is closed. */
    const strictWrite = (conn: C, frame: Frame): Effect.Effect<void> =>
      Effect.async<void>((resume) => {
        let waiting = true
        const attempt = () => {
          if (!waiting) return
          if (conn.outbox.offerIfRoom(frame)) resume(Effect.void)
          else conn.outbox.onRoom(attempt, frame)
        }
        conn.outbox.onRoom(attempt, frame)
        return Effect.sync(() => {
          waiting = false
        })
      }).pipe(
        Effect.timeoutOption(writeTimeout),
        Effect.map((written) => {
          if (Option.isNone(written)) conn.unsafeClose(1008, "slow consumer", false)
        })
      )

    const frameOf = (message: Message.Message): Frame => {
      const encoded = msg.encode(message)
      return typeof encoded === "string" ? new SharedText(encoded) : encoded
    }

    const fanOut = (s: Snapshot<C>, message: Message.Message, to: string | undefined, skip: Skip): number => {
      const members = targets(s, message.namespace, message.room, to)
      if (members === undefined || HashMap.isEmpty(members)) return 0
      const frame = frameOf(message)
      let count = 0
      for (const conn of HashMap.values(members)) {
        if (conn.key !== skip.key && conn.id !== skip.id) {
          conn.write(frame)
          count++
        }
      }
      // counted once per broadcast, never per receiver
      if (observe !== undefined) observe.onSent(message.namespace, count, count * frameLength(frame))
      return count
    }

    const deliver = (
      s: Snapshot<C>,
      message: Message.Message,
      to: string | undefined,
      skip: Skip,
      strict: boolean
    ): Effect.Effect<number> => {
      if (!strict) return Effect.sync(() => fanOut(s, message, to, skip))
      const members = targets(s, message.namespace, message.room, to)
      if (members === undefined || HashMap.isEmpty(members)) return Effect.succeed(0)
      const frame = frameOf(message)
      return strictLock.withPermits(1)(Effect.suspend(() => {
        const waiting: Array<C> = []
        let count = 0
        for (const conn of HashMap.values(members)) {
          if (conn.key === skip.key || conn.id === skip.id) continue
          count++
          if (!conn.outbox.offerIfRoom(frame)) waiting.push(conn)
        }
        if (observe !== undefined) observe.onSent(message.namespace, count, count * frameLength(frame))
        if (waiting.length === 0) return Effect.succeed(count)
        if (observe !== undefined) observe.onStrictWaits(waiting.length)
        return Effect.as(
          Effect.forEach(waiting, (conn) => strictWrite(conn, frame), { concurrency: "unbounded", discard: true }),
          count
        )
      }))
    }

    const deliverEach = (
      members: Iterable<C>,
      frameFor: (conn: C) => Frame | undefined,
      strict: boolean
    ): Effect.Effect<number> => {
      if (!strict) {
        return Effect.sync(() => {
          let count = 0
          for (const conn of members) {
            const frame = frameFor(conn)
            if (frame !== undefined) {
              conn.write(frame)
              count++
            }
          }
          return count
        })
      }
      return strictLock.withPermits(1)(Effect.suspend(() => {
        const waiting: Array<readonly [C, Frame]> = []
        let count = 0
        for (const conn of members) {
          const frame = frameFor(conn)
          if (frame === undefined) continue
          count++
          if (!conn.outbox.offerIfRoom(frame)) waiting.push([conn, frame])
        }
        if (waiting.length === 0) return Effect.succeed(count)
        return Effect.as(
          Effect.forEach(waiting, ([conn, frame]) => strictWrite(conn, frame), {
            concurrency: "unbounded",
            discard: true
          }),
          count
        )
      }))
    }

    return { fanOut, deliver, deliverEach }
  })
